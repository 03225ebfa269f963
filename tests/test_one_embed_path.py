"""One way to embed: every embedding command takes --runtime, reuses vectors by content hash across data sets,
and shows its progress on stderr also when that is not a terminal."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from painterid.cli import app
from painterid.embedding.embedder import Embedder, EmbeddingConfig
from painterid.embedding.pipeline import embed_data
from painterid.store.feature_store import FeatureStore

CONFIG = EmbeddingConfig(backbone="efficientnet_lite0", view="center", pool="style")


def _subset(src: Path, dst: Path, rows: list[dict], extra: bytes = b"") -> Path:
    """A Kaggle-layout copy of some of `src`'s paintings (copies: other paths, same content unless `extra`)."""
    (dst / "train").mkdir(parents=True)
    with open(dst / "train_info.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    for r in rows:
        (dst / "train" / r["filename"]).write_bytes((src / "train" / r["filename"]).read_bytes() + extra)
    return dst


class Counting:
    """An embedder that records the files it is asked to embed (and embeds them with the real one)."""

    def __init__(self, inner):
        self.inner, self.asked = inner, []
        self.fingerprint, self.runtime = inner.fingerprint, getattr(inner, "runtime", None)

    def iter_files(self, paths, progress=None):
        self.asked.extend(Path(p).name for p in paths)
        yield from self.inner.iter_files(paths, progress)


def test_a_second_data_set_sharing_files_embeds_only_the_new_ones(tmp_path, synthetic_data, monkeypatch):
    """Two data folders (two stores) sharing 12 paintings by content: the second embeds only its 4 new files,
    and its store holds the same vectors for the shared ones.  A store keyed by folder alone embeds all 16."""
    monkeypatch.setenv("PAINTERID_CACHE", str(tmp_path / "cache"))
    rows = list(csv.DictReader(open(synthetic_data / "train_info.csv")))
    first = _subset(synthetic_data, tmp_path / "first", rows[:12])
    second = _subset(synthetic_data, tmp_path / "second", rows[:16])
    inner = Embedder(CONFIG, num_workers=0)
    one, two = Counting(inner), Counting(inner)
    store_a, _, _ = embed_data(first, one, tmp_path / "a")
    assert sorted(one.asked) == sorted(r["filename"] for r in rows[:12])
    store_b, _, failures = embed_data(second, two, tmp_path / "b")
    assert not failures and sorted(two.asked) == sorted(r["filename"] for r in rows[12:16])
    a, b = FeatureStore.open(tmp_path / "a"), FeatureStore.open(tmp_path / "b")
    assert len(b) == 16
    for r in rows[:12]:
        i = a.select([str(first / "train" / r["filename"])])[0]
        j = b.select([str(second / "train" / r["filename"])])[0]
        assert (a.vectors[i] == b.vectors[j]).all()
    # the same content with a byte changed is new content: embedded again
    third = _subset(synthetic_data, tmp_path / "third", rows[:3], extra=b"\0")
    three = Counting(inner)
    embed_data(third, three, tmp_path / "c")
    assert len(three.asked) == 3


def test_progress_is_printed_as_lines_when_stderr_is_not_a_terminal(tmp_path, synthetic_data):
    """`embed` with stderr a pipe: a line at the start and every few per cent up to 100%, with the rate (new
    content, so that the shared cache cannot serve it)."""
    rows = list(csv.DictReader(open(synthetic_data / "train_info.csv")))[:12]
    data = _subset(synthetic_data, tmp_path / "data", rows, extra=str(tmp_path).encode())
    res = CliRunner().invoke(app, ["embed", str(data), "--out", str(tmp_path / "store"), "--backbone",
                                   "efficientnet_lite0", "--view", "center", "--pool", "style", "--batch-size", "2",
                                   "--runtime", "torch", "--workers", "0"], catch_exceptions=False)
    assert res.exit_code == 0, res.stderr[-2000:]
    lines = re.findall(r"painterid: embedding (\d+)/12 img \((\d+)%", res.stderr)
    done = [int(d) for d, _ in lines]
    assert len(lines) >= 6 and done == sorted(done) and done[-1] == 12 and int(lines[-1][1]) == 100
    assert "img/s" in res.stderr


def test_progress_lines_come_every_few_per_cent_not_every_update(capsys):
    from painterid.cli.common import _Lines

    lines = _Lines("embedding", "img", step=5)
    for done in range(0, 1001):
        lines.update(done, 1000)
    printed = capsys.readouterr().err.strip().splitlines()
    assert len(printed) == 21  # 0%, 5%, ..., 100%
    assert printed[0].startswith("painterid: embedding 0/1000 img (0%") and "(100%" in printed[-1]


EMBEDDING_COMMANDS = [["embed"], ["train"], ["evaluate"], ["index", "build"], ["cohort", "set"], ["calibrate"],
                      ["compare"], ["identify"], ["verify"], ["benchmark"]]


@pytest.mark.parametrize("command", EMBEDDING_COMMANDS, ids=" ".join)
def test_every_embedding_command_takes_runtime(command):
    res = CliRunner().invoke(app, [*command, "--help"], terminal_width=200)
    assert res.exit_code == 0 and "--runtime" in res.stdout
    text = " ".join(res.stdout.replace("│", " ").split())
    assert "'fast' extra of painterid" in text  # rich markup once ate "[fast]": "when installed, painterid, else"


@pytest.mark.parametrize("runtime,made_by", [("torch", "torch"), ("onnx", "onnxruntime")])
def test_index_build_embeds_data_with_the_runtime_asked(tmp_path, synthetic_data, monkeypatch, runtime, made_by):
    """`index build --data DATA --runtime R`: the store of DATA records R as what embedded its vectors (a fresh
    cache each time, so nothing is reused)."""
    if runtime == "onnx":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnx")
    monkeypatch.setenv("PAINTERID_CACHE", str(tmp_path / "cache"))
    rows = list(csv.DictReader(open(synthetic_data / "train_info.csv")))[:12]
    data = _subset(synthetic_data, tmp_path / "data", rows)
    res = CliRunner().invoke(app, ["index", "build", "--data", str(data), "--out", str(tmp_path / "idx"),
                                   "--backbone", "efficientnet_lite0", "--view", "center", "--pool", "style",
                                   "--store", str(tmp_path / "store"), "--runtime", runtime], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    made = FeatureStore.open(tmp_path / "store").runtimes()
    assert sum(made.values()) == 12 and all(k.startswith(made_by) for k in made), made
