"""Shared fixtures: the real EEG of ../shared/data (tests skip with a reason when it is absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ICTAL_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data; skips the test when the folder is absent (a user's fresh clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real EEG folder {SHARED_DATA} is absent (set ICTAL_SHARED_DATA to point at it)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (configs/, checkpoints/ live there)."""
    return REPO_ROOT


@pytest.fixture(autouse=True)
def _private_state_directory(tmp_path, monkeypatch):
    """Each test gets its own state directory: a daemon config without ``alarms.journal.path`` puts its
    journal in ``$XDG_STATE_HOME/ictal`` (alarms.config.default_journal_path), never in the user's."""
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
