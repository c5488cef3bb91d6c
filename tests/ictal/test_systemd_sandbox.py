"""The real daemon under the sandbox of ``systemd/ictal.service`` (its filter, MDWE and descriptor limit).

Issue 15, item 12: the shipped unit stopped the daemon. ``SystemCallFilter=~@resources`` denied
``sched_setscheduler``, which libzmq's I/O thread calls (``Operation not permitted
(src/thread.cpp:315)``, abort), and ``MemoryDenyWriteExecute=yes`` as systemd >= 254 enforces it
(``PR_SET_MDWE``) makes oneDNN, PyTorch's CPU convolution backend, fail to create its JIT-compiled
kernels (``could not create a primitive``). No systemd is PID 1 here, so
``tests/reliability/seccomp_harness.py`` applies the unit's own lines to the daemon process.

The daemon (``python -m ictal serve``) scores a real EDF file replayed over LSL with a small random
checkpoint; it must send READY=1, score windows, answer /metrics while 1,100 idle connections are held
against it (with the unit's 1024-descriptor limit), and exit 0 on SIGTERM. The pre-issue unit's
filter, and MDWE, must each make the same daemon fail, so the test can fail.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from tests.ictal.test_serve_e2e import micro_checkpoint
from tests.reliability.daemon_harness import scrape
from tests.reliability.helpers import free_port
from tests.reliability.seccomp_harness import allowed_syscalls, unavailable
from tests.streaming.daemon_helpers import NotifySocket, wait_for

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "ictal.service"
HARNESS = REPO / "tests" / "reliability" / "seccomp_harness.py"
BED = "bed-sandbox"
OLD_FILTER = "SystemCallFilter=@system-service\nSystemCallFilter=~@privileged @resources\n"
"""The pre-issue-15 unit's filter lines (it denied all of @resources)."""

pytestmark = pytest.mark.skipif(unavailable() is not None, reason=f"seccomp harness: {unavailable()}")


def unit_variant(tmp_path: Path, *, old_filter: bool = False, mdwe: bool | None = None) -> Path:
    """The shipped unit, optionally with the old filter lines or MemoryDenyWriteExecute forced."""
    lines = []
    for line in UNIT.read_text().splitlines():
        if old_filter and line.startswith("SystemCallFilter="):
            if OLD_FILTER not in "\n".join(lines):
                lines.append(OLD_FILTER.rstrip("\n"))
            continue
        if mdwe is not None and line.startswith("MemoryDenyWriteExecute="):
            line = f"MemoryDenyWriteExecute={'yes' if mdwe else 'no'}"
        lines.append(line)
    path = tmp_path / "ictal.service"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def bed(tmp_path, shared_data):
    """A replayed EDF stream and a daemon config reading it: (config path, metrics URL)."""
    edf = shared_data / "labelled" / "hms_1628180742.edf"
    stream = f"ictal-sandbox-{uuid.uuid4().hex[:8]}"
    metrics_port = free_port()
    config = yaml.safe_load((REPO / "configs" / "daemon.yaml").read_text())
    config["beds"] = [{"bed_id": BED, "source": {"type": "lsl", "name": stream, "resolve_timeout_s": 2.0}}]
    config["detector"].update({"checkpoint": str(micro_checkpoint(tmp_path / "checkpoint")), "device": "cpu",
                               "max_batch": 4})
    config["alarms"]["journal"]["path"] = "journal.sqlite3"
    config["alarms"]["publisher"].update({"pub_endpoint": f"tcp://127.0.0.1:{free_port()}",
                                          "catchup_endpoint": f"tcp://127.0.0.1:{free_port()}"})
    config["alarms"]["metrics"]["port"] = metrics_port
    path = tmp_path / "daemon.yaml"
    path.write_text(yaml.safe_dump(config))
    replay = subprocess.Popen(
        [sys.executable, "-m", "ictal", "replay", str(edf), "--speed", "10", "--loop", "--name", stream,
         "--wait-consumer-s", "90"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield path, f"http://127.0.0.1:{metrics_port}/metrics"
    finally:
        replay.kill()
        replay.wait()


def _serve_sandboxed(unit: Path, config: Path, notify: Path) -> subprocess.Popen:
    env = dict(os.environ, NOTIFY_SOCKET=str(notify), WATCHDOG_USEC="5000000", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, str(HARNESS), str(unit), "--", sys.executable, "-m", "ictal", "serve",
                             "--config", str(config)], cwd=config.parent, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _output(proc: subprocess.Popen, timeout_s: float = 20.0) -> str:
    try:
        return proc.communicate(timeout=timeout_s)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()[0]


def _scored(url: str) -> float:
    try:
        return scrape(url).get(("ictal_windows_scored_total", (("bed", BED),)), 0.0)
    except OSError:
        return 0.0


def test_the_units_filter_allows_what_libzmq_needs_and_denies_privileged_calls():
    allowed = allowed_syscalls(UNIT.read_text())
    # used by the daemon (strace of `ictal serve`): libzmq, OpenMP, OpenBLAS
    assert {"sched_setscheduler", "sched_setaffinity", "mbind"} <= allowed
    assert not {"setuid", "setgroups", "chroot", "mount", "init_module", "bpf", "reboot", "ptrace",
                "fchown", "ioprio_set", "migrate_pages", "move_pages"} & allowed
    assert "sched_setscheduler" not in allowed_syscalls(UNIT.read_text().replace(
        "SystemCallFilter=~@privileged", "SystemCallFilter=~@privileged @resources"))


def test_daemon_runs_scores_and_stops_under_the_units_sandbox(tmp_path, bed):
    config, metrics_url = bed
    notify = NotifySocket(tmp_path / "notify.sock")
    serve = _serve_sandboxed(unit_variant(tmp_path), config, notify.path)
    flood: list[socket.socket] = []
    try:
        assert wait_for(lambda: "READY=1" in notify.lines() or serve.poll() is not None, 120.0)
        assert serve.poll() is None, _output(serve)[-3000:]
        assert wait_for(lambda: _scored(metrics_url) >= 1, 90.0, interval_s=0.5), serve.poll()
        port = int(metrics_url.rsplit(":", 1)[1].split("/")[0])
        for _ in range(1100):  # more than the 1024 descriptors the daemon has under the unit
            flood.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        with urllib.request.urlopen(metrics_url, timeout=5) as response:  # not stalled by the flood
            assert response.status == 200
        scored = _scored(metrics_url)
        assert wait_for(lambda: _scored(metrics_url) > scored, 30.0, interval_s=0.5), "scoring stalled"
        for sock in flood:
            sock.close()
        serve.send_signal(signal.SIGTERM)
        out = _output(serve, 30.0)
        assert serve.returncode == 0, out[-3000:]
        assert "MemoryDenyWriteExecute via" in out and "RLIMIT_NOFILE (1024," in out
        # out of descriptors, the metrics endpoint says so in one line per interval, not a traceback per
        # accept attempt (thousands of asyncio error lines), and no task is left pending at the stop
        assert "logger=asyncio" not in out, [ln for ln in out.splitlines() if "logger=asyncio" in ln][:3]
        assert out.count("event=metrics_accept_paused") <= 2, out.count("event=metrics_accept_paused")
    finally:
        for sock in flood:
            sock.close()
        if serve.poll() is None:
            serve.kill()
            serve.communicate()
        notify.close()


@pytest.mark.slow  # two daemon starts (~25 s); the fast tests above pin the same two causes
@pytest.mark.parametrize(("variant", "symptom"), [
    ({"old_filter": True, "mdwe": False}, "Operation not permitted (src/thread.cpp"),
    ({"mdwe": True}, "could not create a primitive"),
])
def test_the_old_units_filter_and_mdwe_each_stop_the_daemon(tmp_path, bed, variant, symptom):
    config, _ = bed
    notify = NotifySocket(tmp_path / "notify.sock")
    serve = _serve_sandboxed(unit_variant(tmp_path, **variant), config, notify.path)
    try:
        assert wait_for(lambda: serve.poll() is not None, 120.0), "the daemon kept running in a sandbox " \
            f"that should stop it ({variant})"
        out = _output(serve)
        assert serve.returncode != 0, out[-3000:]
        assert symptom in out, out[-3000:]
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.communicate()
        notify.close()


PROBE = """
import sys, torch
torch.backends.mkldnn.enabled = sys.argv[1] == "onednn"
y = torch.nn.Conv1d(19, 8, 7)(torch.randn(2, 19, 15360))
print("conv ok", tuple(y.shape))
"""


@pytest.mark.parametrize(("backend", "runs"), [("onednn", False), ("native", True)])
def test_mdwe_breaks_only_onednn_convolutions(tmp_path, backend, runs):
    """What it would take to turn MemoryDenyWriteExecute back on: PyTorch's native (ATen) CPU
    convolutions, ``torch.backends.mkldnn.enabled = False``, run under PR_SET_MDWE; oneDNN's do not."""
    unit = unit_variant(tmp_path, mdwe=True)
    result = subprocess.run([sys.executable, str(HARNESS), str(unit), "--", sys.executable, "-c", PROBE, backend],
                            capture_output=True, text=True, timeout=120)
    if runs:
        assert result.returncode == 0 and "conv ok (2, 8, 15354)" in result.stdout, result.stderr[-2000:]
    else:
        assert result.returncode != 0 and "could not create a primitive" in result.stderr, result.stderr[-2000:]
