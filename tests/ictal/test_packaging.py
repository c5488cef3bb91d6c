"""One import name (issue 18 item 5): the design's folders install as ``ictal.detector``, ``ictal.streaming``,
``ictal.training``, ``ictal.alarms``; the wheel holds only ``ictal``, with its configs, the demo checkpoint,
the alarm JSON schema and the systemd unit; an installed ictal finds them outside a checkout."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[2]
DESIGN_FOLDERS = ("detector", "streaming", "training", "alarms")


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _source_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split()
    return [REPO / name for name in listed]


def test_every_package_folder_is_installed_under_ictal():
    setuptools = _pyproject()["tool"]["setuptools"]
    mapping = setuptools["package-dir"]
    for folder in DESIGN_FOLDERS:
        assert mapping[f"ictal.{folder}"] == folder
    found = set()
    for root in (*DESIGN_FOLDERS, "ictal"):
        for init in (REPO / root).rglob("__init__.py"):
            parts = init.parent.relative_to(REPO).parts
            found.add(".".join(parts) if root == "ictal" else ".".join(("ictal", *parts)))
    listed = set(setuptools["packages"])
    assert found <= listed, f"package folders missing from pyproject's packages: {sorted(found - listed)}"
    assert {name for name in listed if not name.startswith("ictal")} == set()


def test_no_module_imports_a_bare_design_folder():
    bare = re.compile(rf"^\s*(from|import) ({'|'.join(DESIGN_FOLDERS)})(\.|\s)", re.M)
    offenders = [f"{path.relative_to(REPO)}:{text[:m.start()].count(chr(10)) + 1}"
                 for path in _source_files() for text in [path.read_text()] for m in bare.finditer(text)]
    assert offenders == [], f"imports outside the ictal namespace: {offenders[:10]}"


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory) -> Path:
    """A wheel built from the checkout's files (tracked and new, not ignored), as a user would build it."""
    src = tmp_path_factory.mktemp("src")
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split()
    for name in listed:
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    out = tmp_path_factory.mktemp("wheel")
    try:
        import setuptools  # noqa: F401 - the build backend; without it pip builds in an isolated env
        isolation = ["--no-build-isolation"]
    except ImportError:
        isolation = []
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", *isolation, "-w", str(out), str(src)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = out.glob("ictal-*.whl")
    return wheel


def test_wheel_holds_only_ictal_with_its_data(built_wheel):
    with zipfile.ZipFile(built_wheel) as zf:
        names = zf.namelist()
        top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
        assert zf.read(top_level).decode().split() == ["ictal"]
    tops = {name.split("/")[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"ictal"}
    for data in ("ictal/configs/daemon.yaml", "ictal/configs/model/tiny_bimamba2.yaml",
                 "ictal/checkpoints/demo/model.safetensors", "ictal/checkpoints/demo/metadata.json",
                 "ictal/systemd/ictal.service", "ictal/alarms/alarm_event.schema.json",
                 "ictal/streaming/view/static/view.js", "ictal/detector/model/detector_model.py"):
        assert data in names, f"{data} is not in the wheel"


def test_installed_wheel_works_outside_a_checkout(built_wheel, tmp_path):
    target = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                           str(built_wheel)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    away = tmp_path / "elsewhere"
    away.mkdir()
    script = """
import json, ictal
from pathlib import Path
from ictal import resources
from ictal.config import load_config
config = load_config(resources.default_daemon_config(), kind="daemon")
print(json.dumps({"ictal": ictal.__file__, "config": str(resources.default_daemon_config()),
                  "checkpoint": str(config.detector.checkpoint), "journal": str(config.alarms.journal.path),
                  "unit": str(resources.systemd_unit())}))
"""
    env = {**os.environ, "PYTHONPATH": str(target), "XDG_STATE_HOME": str(tmp_path / "state")}
    env.pop("STATE_DIRECTORY", None)
    proc = subprocess.run([sys.executable, "-c", script], cwd=away, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("ictal", "config", "checkpoint", "unit"):
        assert Path(found[key]).resolve().is_relative_to(target.resolve()), (key, found[key])
    assert (Path(found["checkpoint"]) / "model.safetensors").is_file()
    assert found["journal"] == str(tmp_path / "state" / "ictal" / "ictal-journal.sqlite3")


def test_predict_file_from_the_installed_wheel(built_wheel, tmp_path, shared_data):
    """The issue's check: ``import ictal; ictal.predict_file(EDF, checkpoint=ictal.demo_checkpoint())``
    from a wheel, outside the checkout."""
    target = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                           str(built_wheel)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    edf = shared_data / "labelled" / "grond_lpd_01.edf"  # a 10 s ICU clip
    script = f"""
import json, ictal, numpy as np
r = ictal.predict_file({str(edf)!r}, checkpoint=ictal.demo_checkpoint())
scored = np.isfinite(r.probabilities)
print(json.dumps({{"ictal": ictal.__file__, "checkpoint": str(ictal.demo_checkpoint()), "n": int(r.probabilities.size),
                  "scored": int(scored.sum()), "max": float(np.nanmax(r.probabilities))}}))
"""
    env = {**os.environ, "PYTHONPATH": str(target), "XDG_STATE_HOME": str(tmp_path / "state")}
    away = tmp_path / "elsewhere"
    away.mkdir()
    proc = subprocess.run([sys.executable, "-c", script], cwd=away, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(found["ictal"]).resolve().is_relative_to(target.resolve())
    assert Path(found["checkpoint"]).resolve().is_relative_to(target.resolve())
    assert found["n"] == 10 * 256 and 0 < found["scored"] <= found["n"] and 0.0 <= found["max"] <= 1.0
