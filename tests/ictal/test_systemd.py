"""The systemd unit: it verifies, it is hardened, and it carries the lifecycle settings the daemon needs."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "ictal.service"


def _service_section() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    section = None
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        if section == "Service":
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def _unit_for_this_machine(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this environment's `ictal` (verify checks it exists)."""
    ictal = Path(sys.executable).with_name("ictal")
    assert ictal.exists(), f"console script {ictal} missing: is the package installed?"
    text = UNIT.read_text().replace("/opt/ictal/.venv/bin/ictal", str(ictal))
    path = tmp_path / "ictal.service"
    path.write_text(text)
    return path


def test_unit_has_lifecycle_settings():
    service = _service_section()
    assert service["Type"] == ["notify"]
    assert service["Restart"] == ["on-failure"]
    assert int(service["WatchdogSec"][0]) > 0
    assert service["StateDirectory"] == ["ictal"]
    assert "--config /etc/ictal/daemon.yaml" in service["ExecStart"][0]
    assert service["ExecReload"][0].startswith("/bin/kill -HUP")


def test_unit_is_hardened():
    service = _service_section()
    for key, value in [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                       ("PrivateTmp", "yes"), ("User", "ictal")]:
        assert service.get(key) == [value], f"{key} is {service.get(key)}, expected {value}"
    assert service["CapabilityBoundingSet"] == [""]


def test_unit_parses_as_ini():
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string(UNIT.read_text())
    assert {"Unit", "Service", "Install"} <= set(parser.sections())


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_passes(tmp_path):
    unit = _unit_for_this_machine(tmp_path)
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "ictal.service" not in result.stderr, result.stderr  # no warnings about our unit


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_security_exposure_is_low(tmp_path):
    unit = _unit_for_this_machine(tmp_path)
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)],
                            capture_output=True, text=True, timeout=60)
    if "--offline" in result.stderr and result.returncode != 0:
        pytest.skip(f"this systemd-analyze has no --offline mode: {result.stderr.strip()}")
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert match, result.stdout[-500:]
    assert float(match.group(1)) <= 2.0


def test_relaxed_sandbox_settings_say_why():
    """A hardening setting turned off or widened carries its reason on the comment lines above it."""
    lines = UNIT.read_text().splitlines()
    for key in ("MemoryDenyWriteExecute=no", "SystemCallFilter=~ioprio_set"):
        index = next(i for i, line in enumerate(lines) if line.startswith(key))
        assert lines[index - 1].startswith("#"), f"{key} has no comment giving its reason"
    service = _service_section()
    assert "@resources" not in " ".join(service["SystemCallFilter"]), \
        "denying all of @resources denies sched_setscheduler, which libzmq aborts without"
