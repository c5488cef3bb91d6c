"""The alarm journal's default place (issue 18 item 5): a state directory, never the working directory."""

from __future__ import annotations

from pathlib import Path

from ictal.alarms.config import JournalConfig, default_journal_path


def test_systemd_state_directory_comes_first(tmp_path, monkeypatch):
    monkeypatch.setenv("STATE_DIRECTORY", f"{tmp_path}/a:{tmp_path}/b")  # systemd lists several with ':'
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_journal_path() == tmp_path / "a" / "ictal-journal.sqlite3"
    assert JournalConfig().path == tmp_path / "a" / "ictal-journal.sqlite3"


def test_xdg_state_home_then_home(tmp_path, monkeypatch):
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_journal_path() == tmp_path / "xdg" / "ictal" / "ictal-journal.sqlite3"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/dir")  # the XDG spec: a relative path is ignored
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_journal_path() == tmp_path / "home" / ".local" / "state" / "ictal" / "ictal-journal.sqlite3"


def test_never_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = JournalConfig().path
    assert path.is_absolute() and path.parent != Path.cwd()
    assert JournalConfig(path="here.sqlite3").path == Path("here.sqlite3")  # an explicit path is kept as given
