"""`ictal view` refuses what it cannot serve, with exit status 2 and a message naming it."""

from __future__ import annotations

from ictal.cli import main


def test_view_needs_a_file_or_a_daemon_config(capsys):
    assert main(["view"]) == 2
    assert "either FILE.edf --checkpoint DIR (offline) or --config" in capsys.readouterr().err


def test_a_file_needs_a_checkpoint(tmp_path, capsys):
    assert main(["view", str(tmp_path / "x.edf")]) == 2
    assert "needs --checkpoint" in capsys.readouterr().err


def test_an_open_bind_without_tls_is_refused(tmp_path, capsys, repo_root):
    assert main(["view", str(tmp_path / "x.edf"), "--checkpoint", str(repo_root / "checkpoints/demo"),
                 "--host", "0.0.0.0"]) == 2
    assert "not a loopback address" in capsys.readouterr().err


def test_a_missing_file_is_named(tmp_path, capsys, repo_root):
    missing = tmp_path / "missing.edf"
    assert main(["view", str(missing), "--checkpoint", str(repo_root / "checkpoints/demo"), "--device", "cpu"]) == 2
    assert str(missing) in capsys.readouterr().err
