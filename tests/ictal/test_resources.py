"""ictal.resources: the shipped files are found through the package, and `checkpoints/demo` outside a
checkout names the installed demo checkpoint (issue 18 item 5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ictal import resources
from ictal.config import load_config


def test_shipped_files_exist():
    assert (resources.demo_checkpoint() / "metadata.json").is_file()
    assert resources.default_daemon_config().name == "daemon.yaml"
    assert resources.systemd_unit().read_text().startswith("# ictal")
    assert resources.model_preset("tiny_bimamba2").is_file()
    with pytest.raises(FileNotFoundError, match="no_such_preset.yaml is missing"):
        resources.model_preset("no_such_preset")


def test_demo_name_resolves_outside_a_checkout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resources.resolve_checkpoint(Path("checkpoints/demo")) == resources.demo_checkpoint()
    config = load_config(resources.default_daemon_config(), kind="daemon")
    assert config.detector.checkpoint == resources.demo_checkpoint()
    assert resources.resolve_checkpoint(Path("checkpoints/other")) == Path("checkpoints/other")
    (tmp_path / "checkpoints" / "demo").mkdir(parents=True)  # a local folder of that name wins: it is asked for
    assert resources.resolve_checkpoint(Path("checkpoints/demo")) == Path("checkpoints/demo")
