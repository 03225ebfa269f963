"""Concurrency and faults (issue 14): shared stores and caches, compaction, full disks, signals, read-only folders.

The store-level tests run in-process; the acceptance tests start real `painterid` processes (efficientnet_lite0,
small synthetic images): 8 parallel `compare` on one cache, 2 parallel `embed` into one store, a file-size limit
(RLIMIT_FSIZE) in a child, SIGTERM mid-`embed`, a read-only output folder.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from painterid.core.locking import locked
from painterid.scoring.loading import load_model
from painterid.store.feature_store import COMPACT_AT, FeatureStore, Row, file_sha256

REPO = Path(__file__).resolve().parent.parent
LITE0 = "efficientnet_lite0"
EMB = {"backbone": "x", "weights_id": "w", "view": "center", "pool": "gap", "n_patches": None,
       "input_size": [3, 8, 8], "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bicubic",
       "crop_pct": 0.875, "dim": 4}


def vec(i: float) -> np.ndarray:
    return np.full((1, 4), i, np.float32)


PROGRESS = re.compile(r"painterid: [\w ]+ \d+/\d+ \w+ \(\d+%")  # progress lines on a non-terminal stderr


def assert_one_line(stderr: str, *needles: str) -> str:
    """One error line (the progress lines printed before it aside)."""
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip() and not PROGRESS.match(ln)]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert len(lines) == 1, stderr[-3000:]
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def chunk_files(root: Path) -> list[str]:
    return sorted(p.name for p in root.glob("shard-*"))


# ------------------------------------------------------------------------------ the store, in-process
def test_two_writers_opened_together_both_commit_under_different_names(tmp_path):
    """The bug of issue 14: both wrote shard-00000 and the last rename won."""
    a = FeatureStore.create_or_open(tmp_path / "s", EMB)
    b = FeatureStore.open(tmp_path / "s")  # read before a commits, as a parallel process would
    assert a.append([Row("a.jpg", "ha")], vec(1)) == 1
    assert b.append([Row("b.jpg", "hb")], vec(2)) == 1
    assert chunk_files(tmp_path / "s") == ["shard-00000.csv", "shard-00000.safetensors",
                                           "shard-00001.csv", "shard-00001.safetensors"]
    back = FeatureStore.open(tmp_path / "s")
    assert back.paths == ["a.jpg", "b.jpg"]
    np.testing.assert_array_equal(back.vectors[:, 0], [1, 2])
    assert b.paths == ["a.jpg", "b.jpg"]  # the writer took in what the other committed


def test_the_same_row_committed_by_two_writers_is_stored_once(tmp_path):
    a = FeatureStore.create_or_open(tmp_path / "s", EMB)
    b = FeatureStore.open(tmp_path / "s")
    assert a.append([Row("a.jpg", "ha"), Row("c.jpg", "hc")], np.concatenate([vec(1), vec(3)])) == 2
    assert b.append([Row("a.jpg", "ha"), Row("b.jpg", "hb"), Row("b.jpg", "hb")],
                    np.concatenate([vec(1), vec(2), vec(2)])) == 1
    assert b.append([Row("c.jpg", "hc")], vec(3)) == 0  # nothing new: no chunk
    assert len(chunk_files(tmp_path / "s")) == 4
    assert FeatureStore.open(tmp_path / "s").paths == ["a.jpg", "c.jpg", "b.jpg"]
    # a data set store keeps one row per (path, content): the same picture under two names stays twice
    assert a.append([Row("copy-of-a.jpg", "ha")], vec(1)) == 1
    # a cache keeps one row per content, whatever the path
    cache = FeatureStore.create_or_open(tmp_path / "c", EMB, unique="sha256")
    other = FeatureStore.open(tmp_path / "c")  # opened without saying: the store's config says it
    cache.append([Row("ref.jpg", "h0")], vec(0))
    assert other.append([Row("/elsewhere/ref-copy.jpg", "h0"), Row("x.jpg", "h1")],
                        np.concatenate([vec(0), vec(1)])) == 1
    assert FeatureStore.open(tmp_path / "c").paths == ["ref.jpg", "x.jpg"]


def test_old_layouts_load_in_a_fixed_order_and_duplicates_load_once(tmp_path):
    """Stores written before the lock: plain and rank chunks, and the same row twice (the old race)."""
    root = tmp_path / "s"
    FeatureStore.create_or_open(root, EMB)
    from painterid.store.feature_store import _write_chunk

    _write_chunk(root / "shard-r1-00000", [Row("c", "hc"), Row("a", "ha")], np.concatenate([vec(3), vec(1)]))
    _write_chunk(root / "shard-00001", [Row("d", "hd")], vec(4))
    _write_chunk(root / "shard-00000", [Row("a", "ha"), Row("b", "hb")], np.concatenate([vec(1), vec(2)]))
    _write_chunk(root / "shard-r0-00000", [Row("e", "he")], vec(5))
    store = FeatureStore.open(root)
    assert store.paths == ["a", "b", "e", "c", "d"]
    np.testing.assert_array_equal(store.vectors[:, 0], [1, 2, 5, 3, 4])
    assert store.append([Row("f", "hf")], vec(6)) == 1
    assert (root / "shard-00002.safetensors").is_file()


def test_compaction_merges_chunks_atomically_and_keeps_rows_and_order(tmp_path):
    root = tmp_path / "s"
    store = FeatureStore.create_or_open(root, EMB)
    for i in range(COMPACT_AT):
        store.append([Row(f"{i}.jpg", f"h{i}")], vec(i))
    assert len(list(root.glob("shard-*.safetensors"))) == COMPACT_AT
    reader = FeatureStore.open(root)
    (root / "shard-09999.safetensors.tmp-999999999").write_bytes(b"left by a killed writer")
    store.append([Row("last.jpg", "hl")], vec(-1))  # one past COMPACT_AT: merged into one chunk
    assert [p.name for p in root.glob("shard-*.safetensors")] == [f"shard-{COMPACT_AT + 1:05d}.safetensors"]
    assert not list(root.glob("*.tmp-*"))
    expected = [f"{i}.jpg" for i in range(COMPACT_AT)] + ["last.jpg"]
    back = FeatureStore.open(root)
    assert back.paths == expected
    np.testing.assert_array_equal(back.vectors[:, 0], list(range(COMPACT_AT)) + [-1])
    reader.append([Row("after.jpg", "ha")], vec(100))  # a writer that read before the compaction
    assert FeatureStore.open(root).paths == expected + ["after.jpg"]
    assert reader.paths == expected + ["after.jpg"]
    res = FeatureStore.open(root).compact()
    assert (res["chunks_before"], res["chunks_after"], res["rows"]) == (2, 1, COMPACT_AT + 2)


def test_readers_never_see_half_a_store_while_another_thread_compacts_and_writes(tmp_path):
    root = tmp_path / "s"
    store = FeatureStore.create_or_open(root, EMB)
    for i in range(6):
        store.append([Row(f"{i}.jpg", f"h{i}")], vec(i))
    seen, problems, stop = [], [], threading.Event()

    def read():
        while not stop.is_set():
            try:
                s = FeatureStore.open(root)
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                problems.append(repr(exc))
                return
            n = len(s)
            if s.paths != [f"{i}.jpg" for i in range(n)] or list(s.vectors[:, 0]) != list(range(n)):
                problems.append(f"rows out of order or half-read: {s.paths}")
            seen.append(n)

    t = threading.Thread(target=read)
    t.start()
    try:
        writer = FeatureStore.open(root)
        for i in range(6, 40):
            writer.append([Row(f"{i}.jpg", f"h{i}")], vec(i))
            if i % 3 == 0:
                writer.compact()
    finally:
        stop.set()
        t.join(30)
    assert not problems, problems[:3]
    assert len(seen) > 3 and seen == sorted(seen)  # every read saw a prefix that only grew
    assert FeatureStore.open(root).paths == [f"{i}.jpg" for i in range(40)]


def test_store_failing_mid_commit_leaves_no_file_behind(tmp_path, monkeypatch):
    import safetensors.numpy

    root = tmp_path / "s"
    store = FeatureStore.create_or_open(root, EMB)
    store.append([Row("a.jpg", "ha")], vec(1))
    before = sorted(p.name for p in root.iterdir())

    def full(tensors, filename, *a, **k):
        Path(filename).write_bytes(b"partial")  # what a full disk leaves: a file cut short
        raise safetensors.SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(safetensors.numpy, "save_file", full)
    with pytest.raises(OSError) as exc:
        store.append([Row("b.jpg", "hb")], vec(2))
    assert exc.value.errno == 28
    assert sorted(p.name for p in root.iterdir()) == before  # neither table nor temporary file stays
    monkeypatch.undo()
    assert FeatureStore.open(root).paths == ["a.jpg"]


def test_a_second_writer_waits_for_the_lock_says_so_once_and_then_commits(tmp_path, capfd):
    root = tmp_path / "s"
    FeatureStore.create_or_open(root, EMB)
    code = ("import sys, numpy as np; from painterid.store.feature_store import FeatureStore, Row; "
            "s = FeatureStore.open(sys.argv[1]); "
            "\nwith s.writing():\n    s.append([Row('b.jpg', 'hb')], np.ones((1, 4), np.float32))")
    with locked(root, "unused"):
        proc = subprocess.Popen([sys.executable, "-c", code, str(root)], cwd=REPO, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
        line = proc.stderr.readline()  # blocks until the child says it waits
        assert "waiting for another painterid process writing the store" in line, line
        time.sleep(0.3)
        assert proc.poll() is None and len(FeatureStore.open(root)) == 0  # still waiting, nothing written
    assert proc.wait(60) == 0, proc.stderr.read()
    assert proc.stderr.read() == ""  # said once
    assert FeatureStore.open(root).paths == ["b.jpg"]


# --------------------------------------------------------------------------- cache commands, in-process
def test_cache_info_compact_clear(tmp_path, monkeypatch, capsys):
    from tests.test_robustness import cli

    cache = tmp_path / "cache"
    monkeypatch.setenv("PAINTERID_CACHE", str(cache))
    a = FeatureStore.create_or_open(cache / "embeddings" / "k1", EMB, unique="sha256")
    for i in range(3):
        a.append([Row(f"{i}.jpg", f"h{i}")], vec(i))
    b = FeatureStore.create_or_open(cache / "stores" / "k2", EMB)
    b.append([Row("x.jpg", "hx"), Row("y.jpg", "hy")], np.concatenate([vec(7), vec(8)]))
    (cache / "patches" / "k3").mkdir(parents=True)  # per-patch vectors of two paintings (painterid.embedding.patches)
    for h in ("ha", "hb"):
        np.save(cache / "patches" / "k3" / f"{h}.npy", np.zeros((4, 8), np.float16))
    code, out, _ = cli(monkeypatch, capsys, "cache", "info", "--json")
    import json

    info = json.loads(out)
    assert code == 0 and info["location"] == str(cache)
    assert [(Path(s["store"]).name, s["rows"], s["chunks"]) for s in info["stores"]] == [("k1", 3, 3), ("k2", 2, 1)]
    assert [(Path(p["dir"]).name, p["paintings"]) for p in info["patches"]] == [("k3", 2)]
    assert info["rows"] == 5 and info["bytes"] == sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())

    code, out, _ = cli(monkeypatch, capsys, "cache", "compact", "--store", cache / "embeddings" / "k1")
    assert code == 0 and "3 → 1 chunk(s), 3 rows" in out
    again = FeatureStore.open(cache / "embeddings" / "k1")
    assert again.paths == ["0.jpg", "1.jpg", "2.jpg"] and len(again._loaded) == 1

    code, _, err = cli(monkeypatch, capsys, "cache", "clear")  # stdin is not a terminal under pytest
    assert_one_line(err, "add --yes")
    assert code == 2 and FeatureStore.is_store(cache / "stores" / "k2")
    code, _, err = cli(monkeypatch, capsys, "cache", "clear", "--yes")
    assert code == 0 and "removed 2 store(s) and 1 patch cache(s)" in err
    assert not (cache / "stores" / "k2").exists() and not (cache / "embeddings" / "k1").exists()
    assert not (cache / "patches" / "k3").exists()
    code, _, err = cli(monkeypatch, capsys, "cache", "compact", "--store", tmp_path)
    assert_one_line(err, "not a feature store")


# ------------------------------------------------------------------------- real processes (lite0)
@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from painterid.data.synthetic import make_synthetic_dataset

    return make_synthetic_dataset(tmp_path_factory.mktemp("conc") / "data", n_artists=4, per_artist=3, size=64,
                                  seed=5)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data) -> dict:
    """sha256 → vector of one uninterrupted in-process `embed` of `data`."""
    from painterid.embedding.embedder import Embedder, EmbeddingConfig
    from painterid.embedding.pipeline import embed_data

    store, _, failures = embed_data(data, Embedder(EmbeddingConfig(backbone=LITE0, view="center", pool="style"),
                                                   num_workers=0, batch_size=4),
                                    tmp_path_factory.mktemp("ref") / "store")
    assert not failures and len(store) == 12
    return {"store": store.root, "paths": sorted(store.paths), "vectors": dict(zip(store.paths, store.vectors)),
            "fingerprint": store.embedding, "by_hash": {r.sha256: v for r, v in zip(store.rows, store.vectors)}}


def embed_cmd(data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "painterid", "embed", str(data), "--out", str(out), "--backbone", LITE0,
            "--view", "center", "--pool", "style", "--workers", "0", "--batch-size", "2", "--runtime", "torch", *extra]


def child_env(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1", **extra}


def assert_equals_reference(store: FeatureStore, reference: dict) -> None:
    assert sorted(store.paths) == reference["paths"]  # every image exactly once
    for p, v in zip(store.paths, store.vectors):
        np.testing.assert_allclose(v, reference["vectors"][p], atol=1e-5)


# A `compare` process with the backbone stubbed (the cache is the point, not the embedding): each vector is
# derived from the file's bytes, so the test knows what every cached row must hold.
COMPARE_CHILD = """
import hashlib, sys, time
from pathlib import Path
import numpy as np
import painterid.tasks.compare as compare

def fake_embed(paths, fingerprint, device=None, base_dir=None, runtime=None):
    time.sleep(0.2)  # every process embeds at about the same time: the window the old cache lost rows in
    return np.stack([np.frombuffer(hashlib.sha256(Path(p).read_bytes()).digest()[:16], np.uint8) for p in paths]
                    ).astype(np.float32), "stub"

compare.embed_files = fake_embed
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.005)
fp = dict(backbone="stub", weights_id="stub", view="center", pool="gap", dim=16)
vectors = compare.embed_paths([Path(a) for a in sys.argv[2:]], fp)
print(float(vectors.sum()))
"""


def test_eight_parallel_compares_on_one_cache_keep_every_embedding_once(tmp_path, data):
    images = sorted((data / "train").glob("*.jpg"))
    ref, others = images[0], images[1:9]
    cache, go = tmp_path / "cache", tmp_path / "go"
    env = child_env(PAINTERID_CACHE=str(cache))
    procs = [subprocess.Popen([sys.executable, "-c", COMPARE_CHILD, str(go), str(ref), str(o)], cwd=tmp_path,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for o in others]
    time.sleep(0.5)
    go.touch()  # all eight start together
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0 and float(out) > 0, err[-2000:]
    [store_dir] = list((cache / "embeddings").iterdir())
    store = FeatureStore.open(store_dir)
    hashes = [r.sha256 for r in store.rows]
    assert len(hashes) == len(set(hashes)) == 9  # M + 1 embeddings, each once
    assert set(hashes) == {file_sha256(f) for f in images[:9]}
    for r, v in zip(store.rows, store.vectors):
        np.testing.assert_array_equal(v, np.frombuffer(bytes.fromhex(r.sha256)[:16], np.uint8).astype(np.float32))
    on_disk = sum(1 for c in store_dir.glob("shard-*.csv") for _ in open(c)) - len(list(store_dir.glob("shard-*.csv")))
    assert on_disk == 9  # not even a duplicate row on disk: commits drop what another process added


def test_two_parallel_embeds_into_one_store_equal_one_run(tmp_path, data, reference):
    out = tmp_path / "store"
    FeatureStore.create_or_open(out, reference["fingerprint"])
    with locked(out, "unused"):  # both start while the store is busy: both must wait and say so
        procs = [subprocess.Popen(embed_cmd(data, out, "--commit-every", "3"), cwd=REPO, env=child_env(),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        first_lines = [p.stderr.readline() for p in procs]
    errs = [line + p.communicate(timeout=600)[1] for p, line in zip(procs, first_lines)]
    for p, line, err in zip(procs, first_lines, errs):
        assert p.returncode == 0, err[-2000:]
        assert "waiting for another painterid process writing the store" in line, line
    store = FeatureStore.open(out)
    assert len(store) == 12
    assert_equals_reference(store, reference)
    # one run's chunks (12 images in batches of 2, committed at >= 3: 3 chunks of 4); the second run added none
    assert len(list(out.glob("shard-*.safetensors"))) == 3


def _limit_file_size(limit: int):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_file_size_limit_mid_embed_is_one_line_exit_2_and_the_store_still_opens(tmp_path, data, reference):
    out = tmp_path / "store"
    first = subprocess.run(embed_cmd(data / "train", out, "--commit-every", "2"), cwd=REPO, env=child_env(),
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    more = tmp_path / "more"
    more.mkdir()
    for i, src in enumerate(sorted((data / "train").glob("*.jpg"))[:4]):  # new paths: they must be embedded
        (more / "A" if i % 2 else more / "B").mkdir(exist_ok=True)
        (more / ("A" if i % 2 else "B") / f"m{i}.jpg").write_bytes(src.read_bytes())
    # 4 KiB: config and tables fit, a chunk of 2 vectors (8 KiB) does not
    run = subprocess.run(embed_cmd(more, out, "--commit-every", "2"), cwd=REPO, env=child_env(),
                         capture_output=True, text=True, timeout=600, preexec_fn=_limit_file_size(4096))
    assert run.returncode == 2, run.stderr[-2000:]
    assert_one_line(run.stderr, "painterid: error:", "File too large", "file-size limit")
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == before  # nothing half-written in place, no temporary file left
    store = FeatureStore.open(out)
    assert len(store) == 12


def test_a_file_size_limit_during_index_build_keeps_the_previous_index(tmp_path, data, reference):
    from painterid.tasks.index import ArtistIndex

    idx = tmp_path / "index"
    cmd = [sys.executable, "-m", "painterid", "index", "build", "--data", str(reference["store"]), "--out", str(idx)]
    ok = subprocess.run(cmd, cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=600)
    assert ok.returncode == 0, ok.stderr[-2000:]
    files = {p.name: p.read_bytes() for p in idx.iterdir()}
    run = subprocess.run(cmd, cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=600,
                         preexec_fn=_limit_file_size(4096))
    assert run.returncode == 2, run.stderr[-2000:]
    assert_one_line(run.stderr, "painterid: error:", "File too large")
    assert {p.name: p.read_bytes() for p in idx.iterdir()} == files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]  # no temporary sibling left
    assert ArtistIndex.load(idx).n == 12


def test_sigterm_mid_embed_stops_cleanly_and_the_next_run_resumes_to_the_same_store(tmp_path, data, reference):
    out = tmp_path / "store"
    cmd = embed_cmd(data, out, "--commit-every", "2", "--batch-size", "1")
    env = child_env(PAINTERID_CACHE=str(tmp_path / "cache"))  # a fresh content cache: every image is embedded
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not list(out.glob("shard-*.safetensors")):
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "no chunk was committed"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=120)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err[-2000:]
    assert_one_line(err, "painterid: stopped (SIGTERM)", "run the same command again")
    assert not list(out.glob("*.tmp-*"))
    before = len(FeatureStore.open(out))
    assert 2 <= before < 12, before
    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert_equals_reference(FeatureStore.open(out), reference)


def test_a_read_only_output_folder_is_one_line_exit_2(tmp_path, data, reference):
    """A folder on a read-only file system: a private mount namespace (unshare) bind-mounts it read-only for the
    child alone."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode:
        pytest.skip("needs unshare (user and mount namespaces) to make a read-only folder")
    ro = tmp_path / "ro"
    ro.mkdir()
    wrap = ["unshare", "-rm", "sh", "-c", 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && shift && '
            'exec "$@"', str(ro), "--"]
    for cmd, target in ((embed_cmd(data, ro / "store"), ro / "store"),
                        ([sys.executable, "-m", "painterid", "index", "build", "--data", str(reference["store"]),
                          "--out", str(ro / "idx")], ro / "idx")):
        run = subprocess.run(wrap + cmd, cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=600)
        assert run.returncode == 2, run.stderr[-2000:]
        assert_one_line(run.stderr, "painterid: error:", str(target), "Read-only file system")
    assert list(ro.iterdir()) == []


# ------------------------------------------------------------------- model and index directories
def test_a_model_replaced_while_read_is_read_again_with_a_notice(tmp_path, monkeypatch, capsys):
    from painterid.scoring import PairModel
    from tests.test_robustness import siamese_model

    out = tmp_path / "model"
    siamese_model(out, seed=0, threshold=0.25)
    real = PairModel._load_once.__func__
    calls = []

    def load_while_another_process_saves(cls, path):
        model = real(cls, path)
        if not calls:
            siamese_model(out, seed=1, threshold=0.75)  # the directory is swapped after this read
        calls.append(model.threshold)
        return model

    monkeypatch.setattr(PairModel, "_load_once", classmethod(load_while_another_process_saves))
    assert load_model(out).threshold == 0.75
    assert calls == [0.25, 0.75]
    assert capsys.readouterr().err.strip() == (f"painterid: {out} is being replaced by another process while read; "
                                               "reading it again")


def test_concurrent_saves_to_one_model_directory_never_fail_or_mix(tmp_path):
    from tests.test_robustness import siamese_model

    out = tmp_path / "model"
    errors = []

    def save(seed):
        try:
            for _ in range(8):
                siamese_model(out, seed=seed, threshold=seed / 10)
        except Exception as exc:  # noqa: BLE001 - any failure is the finding
            errors.append(repr(exc))

    threads = [threading.Thread(target=save, args=(s,)) for s in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    model = load_model(out)
    assert model.threshold in (0.1, 0.2, 0.3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary or old sibling left
    # never mixed: every file is the one the save with that threshold wrote (a save of the same seed, made alone,
    # is byte-identical); a directory holding one save's config beside another's weights fails here
    seed = round(model.threshold * 10)
    alone = tmp_path.parent / f"{tmp_path.name}-alone"
    siamese_model(alone, seed=seed, threshold=seed / 10)
    files = sorted(p.name for p in alone.iterdir())
    assert sorted(p.name for p in out.iterdir()) == files
    assert all((out / f).read_bytes() == (alone / f).read_bytes() for f in files), files
    import torch

    theirs = {s: {k: v.clone() for k, v in siamese_model(alone, seed=s, threshold=s / 10).head.state_dict().items()}
              for s in (1, 2, 3)}
    mine = model.head.state_dict()
    assert [s for s, sd in theirs.items() if all(torch.equal(sd[k], mine[k]) for k in sd)] == [seed]


def test_a_complete_read_only_store_is_still_usable_by_embed(tmp_path, data, reference):
    """Nothing lacking, so nothing to write: a store on a read-only mount (no lock file possible) still works."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode:
        pytest.skip("needs unshare (user and mount namespaces) to make a read-only folder")
    store = tmp_path / "store"
    shutil.copytree(reference["store"], store)
    (store / ".lock").unlink(missing_ok=True)
    code = ("import sys; from painterid.store.feature_store import FeatureStore; s = FeatureStore.open(sys.argv[1])\n"
            "with s.writing():\n    print(len(s))")
    run = subprocess.run(["unshare", "-rm", "sh", "-c", 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && '
                          'shift && exec "$@"', str(store), "--", sys.executable, "-c", code, str(store)],
                         cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "12", run.stderr[-2000:]


def test_checking_a_model_directory_while_another_save_swaps_it_never_refuses(tmp_path):
    """The check before a save looks at the folder once per question: a save swapping it in between (moved away,
    new one moved in) must read as 'look again', never as 'not a directory' or 'someone else's folder'."""
    import json

    from painterid.core.io import atomic_dir, check_replaceable

    out = tmp_path / "model"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"kind": "x"}))
    stop = threading.Event()

    def swap():
        while not stop.is_set():
            with atomic_dir(out) as tmp:
                (tmp / "config.json").write_text(json.dumps({"kind": "x"}))

    swapper = threading.Thread(target=swap)
    swapper.start()
    errors = []
    try:
        for _ in range(4000):
            try:
                check_replaceable(out, "kind", "x", "a model")
            except Exception as exc:  # noqa: BLE001 - any refusal is the finding
                errors.append(repr(exc))
    finally:
        stop.set()
        swapper.join(60)
    assert not errors, (len(errors), errors[:2])
