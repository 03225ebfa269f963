"""Every fixed-choice option of every command rejects a bad value: exit 2, one line on stderr, no traceback.

The commands and options are found by introspecting the Typer app, so a new command or option is covered
without editing this file."""

from __future__ import annotations

import enum
import subprocess
import sys
import typing

import pytest
import typer.main

from painterid import cli


def _fixed_choice(param) -> bool:
    if param.name in ("device", "normaliser"):
        return True
    if hasattr(param.type, "choices"):  # typer < 0.29 (pyproject's pin): an Enum becomes a Choice type
        return True
    desc = getattr(param, "type_descriptor", None)  # typer 0.29: the annotation is kept on the parameter
    ann = getattr(desc, "annotation", None)
    kinds = [ann, *typing.get_args(ann)]
    return any(isinstance(k, type) and issubclass(k, enum.Enum) for k in kinds)


def _cases():
    cases = []

    def walk(cmd, path):
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])
            return
        for p in cmd.params:
            if getattr(p, "opts", None) and p.opts[0].startswith("--") and _fixed_choice(p):
                cases.append((path, p.opts[0]))

    walk(typer.main.get_command(cli.app), [])
    return cases


CASES = _cases()


def _run_main(monkeypatch, capsys, argv):
    monkeypatch.setattr(sys, "argv", ["painterid", *argv])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


def test_the_walk_finds_the_known_fixed_choice_options():
    found = {(" ".join(p), o) for p, o in CASES}
    for expected in [("train", "--method"), ("train", "--view"), ("train", "--pool"), ("train", "--loss"),
                     ("train", "--normaliser"), ("train", "--device"), ("embed", "--view"), ("embed", "--device"),
                     ("evaluate", "--split"), ("evaluate", "--protocol"), ("compare", "--format"),
                     ("index build", "--kind"), ("index build", "--view"), ("explain", "--device")]:
        assert expected in found, expected
    assert len(CASES) >= 20


@pytest.mark.parametrize("path,option", CASES, ids=[f"{' '.join(p)} {o}" for p, o in CASES])
def test_bad_value_is_one_line_and_exit_2(monkeypatch, capsys, path, option):
    code, out, err = _run_main(monkeypatch, capsys, [*path, option, "no-such-value"])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("painterid: error: ") and option in lines[0]
    assert "no-such-value" in lines[0]
    assert "Traceback" not in err + out


def test_good_device_strings_pass_and_auto_means_default():
    assert cli.check_device("cuda:1") == "cuda:1"
    assert cli.check_device("cpu") == "cpu"
    assert cli.check_device("auto") is None
    with pytest.raises(typer.BadParameter):
        cli.check_device("cuda:x")


def test_choices_come_from_the_registries():
    from painterid.embedding.images import VIEW_REGISTRY
    from painterid.embedding.pools import POOL_REGISTRY
    from painterid.scoring.methods import LOSS_REGISTRY, METHOD_REGISTRY

    assert [v.value for v in cli.View] == list(VIEW_REGISTRY.names())
    assert [v.value for v in cli.Pool] == list(POOL_REGISTRY.names())
    assert [v.value for v in cli.Method] == list(METHOD_REGISTRY.names())
    assert [v.value for v in cli.Loss] == list(LOSS_REGISTRY.names())


def test_usage_errors_are_one_line(monkeypatch, capsys):
    code, _, err = _run_main(monkeypatch, capsys, ["train", "--data", "x"])
    assert code == 2 and err.strip().splitlines() == ["painterid: error: Missing option '--out'."]
    code, _, err = _run_main(monkeypatch, capsys, ["no-such-command"])
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_bad_view_in_a_real_process_has_no_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "painterid", "embed", str(tmp_path), "--out", str(tmp_path / "s"),
                        "--view", "bogus"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr and "--view" in r.stderr
