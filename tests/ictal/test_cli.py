"""The `ictal` command line: help, config check, doctor, and honest 'not built' answers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ictal.cli import build_parser, main
from ictal.commands import COMMAND_MODULES

SUBCOMMANDS = ["serve", "replay", "demo", "alarms", "train", "evaluate", "score", "tune", "bench",
               "doctor", "config", "view"]


def test_every_promised_subcommand_is_registered():
    parser = build_parser()
    choices = parser._subparsers._group_actions[0].choices
    assert sorted(choices) == sorted(SUBCOMMANDS)
    assert len(COMMAND_MODULES) == len(SUBCOMMANDS)


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_help_of_every_subcommand_exits_zero(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: ictal " + command in capsys.readouterr().out


def test_config_check_prints_resolved_defaults(repo_root, capsys):
    # --no-preflight: this is about the printed config (the pre-flight binds the shipped default ports,
    # which another process on a CI machine may hold; tests/ictal/test_preflight.py covers it)
    assert main(["config", "check", "--no-preflight", str(repo_root / "configs" / "daemon.yaml")]) == 0
    out = capsys.readouterr().out
    assert "valid daemon config" in out
    assert "refractory_s:" in out  # a default that the file does not set


def test_config_check_names_typo_and_fails(tmp_path, capsys):
    bad = tmp_path / "daemon.yaml"
    bad.write_text("kind: daemon\nschedular:\n  hop_s: 2\n")
    assert main(["config", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "schedular" in err and str(bad) in err


def test_console_script_runs_doctor(repo_root):
    result = subprocess.run(
        [sys.executable, "-m", "ictal", "doctor", "--config", str(repo_root / "configs" / "daemon.yaml")],
        capture_output=True, text=True, timeout=120, cwd=repo_root,
    )
    assert "torch" in result.stdout
    assert "liblsl" in result.stdout
    assert "mamba_ssm" in result.stdout and "fla" in result.stdout
    assert "alarm PUB tcp://127.0.0.1:5556" in result.stdout


def test_a_closed_stdout_ends_the_command_quietly_like_a_unix_tool(repo_root):
    # the reader goes away before the command writes (as `ictal config check ... | head -0` would)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ictal", "config", "check", str(repo_root / "configs" / "daemon.yaml")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr


def test_help_texts_name_no_source_file_and_tune_states_its_real_grid(capsys):
    import re

    from ictal.training.tune import GAPS, MIN_DURATIONS_S

    for command in ("demo", "score", "tune", "replay", "alarms", "train", "bench", "doctor", "config"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert not re.search(r"\b[\w/]+\.py\b", text), (command, text)
        if command == "tune":
            flat = " ".join(text.split())
            assert ", ".join(f"{g:g}" for g in GAPS) in flat
            assert ", ".join(f"{m:g}" for m in MIN_DURATIONS_S) + " s" in flat
