"""Pre-flight of a daemon config (`ictal config check`, `streaming.preflight`): every problem that would stop
`ictal serve` is named in one run, with real files, directories and sockets held by real processes."""

from __future__ import annotations

import inspect
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ictal.alarms.config import AlarmThresholds
from ictal.alarms.thresholds import save_thresholds, thresholds_in_force
from ictal.cli import main
from ictal.config import load_config
from ictal.streaming.ports import describe_port_holder, port_holders
from ictal.streaming.preflight import preflight

HOLDER_SCRIPT = ("import socket,sys,time;s=socket.socket();s.bind(('127.0.0.1',0));s.listen();"
                 "print(s.getsockname()[1],flush=True);time.sleep(60)")


@pytest.fixture
def held_port():
    """A TCP port listened on by another process: ``(port, pid)``."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER_SCRIPT], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        yield port, proc.pid
    finally:
        proc.kill()
        proc.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unwritable_dir(tmp_path: Path) -> Path:
    """A directory where no file can be created (root ignores modes: /proc refuses it even to root)."""
    if os.geteuid() == 0:
        return Path("/proc")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    return locked


def daemon_yaml(tmp_path: Path, *, checkpoint: str = "checkpoints/demo", thresholds_file: str | None = None,
                journal: Path | None = None, pub: int | None = None, catchup: int | None = None,
                metrics: int | None = None, beds: str = "") -> Path:
    journal = journal or tmp_path / "journal" / "ictal-journal.sqlite3"
    lines = ["kind: daemon", f"detector:\n  checkpoint: {checkpoint}\n  device: cpu", "alarms:",
             f"  thresholds_file: {thresholds_file if thresholds_file else 'null'}",
             f"  journal:\n    path: {journal}",
             f"  publisher:\n    pub_endpoint: tcp://127.0.0.1:{pub or free_port()}",
             f"    catchup_endpoint: tcp://127.0.0.1:{catchup or free_port()}",
             f"  metrics:\n    host: 127.0.0.1\n    port: {metrics or free_port()}"]
    if beds:
        lines.append(beds)
    path = tmp_path / "daemon.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_config_check_names_a_checkpoint_directory_that_does_not_exist(tmp_path, capsys):
    missing = tmp_path / "no-such-checkpoint"
    assert main(["config", "check", str(daemon_yaml(tmp_path, checkpoint=str(missing)))]) == 1
    err = capsys.readouterr().err
    assert f"PROBLEM checkpoint: detector.checkpoint: checkpoint {missing}" in err
    assert "does not exist" in err


def test_config_check_names_every_problem_in_one_run(tmp_path, capsys, held_port):
    port, pid = held_port
    missing_thresholds = tmp_path / "tuned" / "thresholds.json"
    journal = unwritable_dir(tmp_path) / "ictal-journal.sqlite3"
    path = daemon_yaml(tmp_path, checkpoint=str(tmp_path / "gone"), thresholds_file=str(missing_thresholds),
                       journal=journal, pub=port)
    assert main(["config", "check", str(path)]) == 1
    captured = capsys.readouterr()
    problems = [line for line in captured.err.splitlines() if line.startswith("PROBLEM")]
    assert len(problems) == 4, captured.err
    assert str(tmp_path / "gone") in problems[0]
    assert str(missing_thresholds) in problems[1] and "alarms.thresholds_file" in problems[1]
    assert str(journal) in problems[2] and "not writable" in problems[2]
    assert f"port {port} in use by pid {pid} ({sys.executable} -c import socket" in problems[3]
    assert "alarms.publisher.pub_endpoint" in problems[3]
    assert "4 problem(s)" in captured.err
    assert "valid daemon config" in captured.out  # the resolved config is still printed


def test_a_busy_port_names_the_process_holding_it(held_port):
    port, pid = held_port
    holders = port_holders(port)
    assert [(h.pid, h.listening) for h in holders] == [(pid, True)]
    assert describe_port_holder(port).startswith(f"port {port} in use by pid {pid} ({sys.executable} -c ")


def test_a_good_config_passes_and_leaves_nothing_bound_or_written(repo_root, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(repo_root)  # checkpoints/demo resolves in the working directory, as the daemon's
    ports = [free_port(), free_port(), free_port()]
    if len(set(ports)) < 3:
        pytest.skip("the kernel gave the same ephemeral port twice")
    journal_dir = tmp_path / "journal"
    path = daemon_yaml(tmp_path, pub=ports[0], catchup=ports[1], metrics=ports[2])
    assert main(["config", "check", str(path)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "ok      checkpoint: checkpoints/demo loads" in out
    assert out.count(": free") == 3
    assert "pre-flight passed" in out
    assert not journal_dir.exists()  # absent directory tried (made and removed), journal never opened
    for port in ports:  # every port is free again
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_an_existing_journal_directory_is_tried_with_a_file_removed_at_once(tmp_path):
    journal_dir = tmp_path / "journal"
    journal_dir.mkdir()
    config = load_config(daemon_yaml(tmp_path, checkpoint=str(tmp_path / "gone"), journal=journal_dir / "j.sqlite3"))
    report = preflight(config)
    assert any(check == "journal" and "directory writable" in what for check, what in report.passed)
    assert list(journal_dir.iterdir()) == []


def test_two_endpoints_on_one_port_are_named(tmp_path):
    port = free_port()
    config = load_config(daemon_yaml(tmp_path, checkpoint=str(tmp_path / "gone"), pub=port, metrics=port))
    problems = [what for check, what in preflight(config, load_checkpoint=False).problems if check == "port"]
    assert problems == [f"alarms.metrics.host/port tcp://127.0.0.1:{port}: port {port} is also the alarm PUB's; "
                        "expected a distinct port per endpoint"]


def _edf_beds(*beds: tuple[str, Path]) -> str:
    return "beds:\n" + "".join(f"  - {{bed_id: {bed_id}, source: {{type: edf, path: '{path}'}}}}\n"
                               for bed_id, path in beds)


def test_a_missing_or_broken_edf_bed_file_is_named(tmp_path):
    broken = tmp_path / "broken.edf"
    broken.write_bytes(b"0       not an edf header")
    beds = _edf_beds(("missing", tmp_path / "absent.edf"), ("broken", broken))
    report = preflight(load_config(daemon_yaml(tmp_path, checkpoint=str(tmp_path / "gone"), beds=beds)),
                       load_checkpoint=False)
    beds_problems = {check: what for check, what in report.problems if check.startswith("bed ")}
    assert set(beds_problems) == {"bed missing", "bed broken"}
    assert f"source.path {tmp_path / 'absent.edf'}" in beds_problems["bed missing"]
    assert f"source.path {broken}" in beds_problems["bed broken"] and "EDF header" in beds_problems["bed broken"]


def test_a_real_edf_bed_file_opens(tmp_path, shared_data):
    real = sorted((shared_data / "labelled").glob("*.edf"))[0]
    report = preflight(load_config(daemon_yaml(tmp_path, checkpoint=str(tmp_path / "gone"),
                                               beds=_edf_beds(("good", real)))), load_checkpoint=False)
    assert report.problems == []
    assert any(check == "bed good" and f"EDF {real} opens" in what for check, what in report.passed)


def test_a_thresholds_file_of_another_checkpoint_is_named_with_both_ids(repo_root, tmp_path, monkeypatch):
    if "checkpoint_id" not in inspect.signature(thresholds_in_force).parameters:
        pytest.skip("alarms.thresholds.thresholds_in_force takes no checkpoint_id yet (another part of issue 17)")
    monkeypatch.chdir(repo_root)
    other = save_thresholds(tmp_path / "other.json", AlarmThresholds(tau_on=0.9, tau_off=0.8, min_duration_s=10.0),
                            target_fa_per_24h=10.0, dataset="test", checkpoint_id="another-model-id")
    report = preflight(load_config(daemon_yaml(tmp_path, thresholds_file=str(other))))
    problems = [what for check, what in report.problems if check == "thresholds"]
    assert len(problems) == 1 and "another-model-id" in problems[0] and report.model_id in problems[0]


def test_the_checkpoint_id_is_passed_to_the_thresholds_resolution_and_its_refusal_named(
        repo_root, tmp_path, monkeypatch):
    """The call passes ``checkpoint_id=<model_id>`` when ``thresholds_in_force`` accepts it (as the daemon does)."""
    import ictal.streaming.preflight as preflight_module
    from ictal.alarms.thresholds import ThresholdsFileError

    seen: list[str | None] = []

    def refusing(config, checkpoint_thresholds=None, *, checkpoint_id=None):
        seen.append(checkpoint_id)
        raise ThresholdsFileError(f"{config.thresholds_file}: tuned for checkpoint other-id, not {checkpoint_id}")

    monkeypatch.setattr(preflight_module, "thresholds_in_force", refusing)
    monkeypatch.chdir(repo_root)
    path = tmp_path / "t.json"
    report = preflight(load_config(daemon_yaml(tmp_path, thresholds_file=str(path))))
    assert seen == [report.model_id] and report.model_id
    assert report.problems == [("thresholds", f"alarms.thresholds_file: {path}: tuned for checkpoint other-id, "
                                              f"not {report.model_id}")]


def test_thresholds_warnings_are_said_without_failing(tmp_path, monkeypatch):
    """``alarms.thresholds.threshold_warnings`` (issue 17's precedence rule) is reported as WARNING lines."""
    import ictal.alarms.thresholds as alarms_thresholds

    def warnings_of(thresholds):
        return [f"no hysteresis: tau_off {thresholds.tau_off:g} equals tau_on {thresholds.tau_on:g}"]

    monkeypatch.setattr(alarms_thresholds, "threshold_warnings", warnings_of, raising=False)
    config = load_config(daemon_yaml(tmp_path, checkpoint=str(tmp_path / "gone")))
    report = preflight(config, load_checkpoint=False)
    tau = config.alarms.thresholds
    assert report.ok
    assert report.warnings == [("thresholds", f"from config: no hysteresis: tau_off {tau.tau_off:g} equals tau_on "
                                              f"{tau.tau_on:g}")]
    assert "WARNING thresholds: from config: no hysteresis" in "\n".join(report.lines())
