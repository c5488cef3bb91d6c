"""The daemon's neighbours and its own process misbehave: subscribers, SIGKILL, a full or read-only journal.

Real processes on loopback: two LSL amplifiers streaming real EEG, the production daemon
(``stub_daemon.py``, constant-probability stand-in model, so that alarms come every few seconds) and
subscribers. One scenario (module fixture), in order:

1. subscribers: one absent at the start (joins late, catch-up from 0), one that never reads (its
   ZeroMQ queue fills: the daemon must not buffer without bound), one that disconnects and
   reconnects from its last sequence number;
2. the daemon is SIGKILLed while an alarm is open, the journal is checked offline (integrity,
   contiguous sequence), the daemon is restarted on the same journal: sequence numbers continue, the
   subscriber that stayed up receives everything with no gap and no duplicate;
3. the journal's disk is full (``RLIMIT_FSIZE`` of the daemon process set to 1 byte: every write
   fails with EFBIG as on a full disk): live alarms keep flowing, a ``daemon`` event and
   ``ictal_journal_errors_total`` say so; when space returns, events are journaled again.
"""

from __future__ import annotations

import os
import resource
import shutil
import sqlite3
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import zmq

from ictal.alarms.subscriber import AlarmSubscriber
from tests.reliability.daemon_harness import (
    DaemonProcess,
    EegOutlet,
    LiveSubscriber,
    eeg_from,
    unique_name,
    wait_for,
)

SOURCE = "background/eegmat/Subject01_2.edf"
THRESHOLDS = {"tau_on": 0.8, "tau_off": 0.5, "min_duration_s": 1.0, "max_duration_s": 5.0, "merge_gap_s": 0.0,
              "refractory_s": 0.0}
BEDS = ("bed-1", "bed-2")


class Follower:
    """An ``alarms.subscriber.AlarmSubscriber`` in a thread (catch-up, then live, heartbeat-checked)."""

    def __init__(self, daemon: DaemonProcess, since: int = 0) -> None:
        self.subscriber = AlarmSubscriber(daemon.pub_endpoint, daemon.catchup_endpoint, since=since,
                                          heartbeat_timeout_s=2.0, request_timeout_s=3.0)
        self.events: list[dict] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for event in self.subscriber.iter_events(self.stop):
            self.events.append(event.model_dump(mode="json"))

    def seqs(self) -> list[int]:
        return [e["journal_seq"] for e in list(self.events) if e.get("journal_seq") is not None]

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.subscriber.close()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def journal_offline(path: Path) -> tuple[str, list[int], list[tuple[str, int]]]:
    """Integrity check, journal_seq list and (bed, bed_seq) list of a journal file, read without the daemon."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        seqs = [r[0] for r in conn.execute("SELECT journal_seq FROM events ORDER BY journal_seq")]
        beds = [(r[0], r[1]) for r in conn.execute(
            "SELECT bed_id, bed_seq FROM events WHERE bed_id IS NOT NULL ORDER BY journal_seq")]
    finally:
        conn.close()
    return integrity, seqs, beds


@dataclass
class Record:
    journal_after_kill: tuple[str, list[int], list[tuple[str, int]]] | None = None
    head_at_kill: int = 0
    open_alarm_at_kill: dict | None = None
    after_restart: list[dict] = field(default_factory=list)
    late_seqs: list[int] = field(default_factory=list)
    reconnect_seqs: list[int] = field(default_factory=list)
    steady_seqs: list[int] = field(default_factory=list)
    steady_events: list[dict] = field(default_factory=list)
    final_journal: list[dict] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    live_while_full: list[dict] = field(default_factory=list)
    journal_errors: float = 0.0
    journaled_after_recovery: list[dict] = field(default_factory=list)
    metrics_end: dict = field(default_factory=dict)
    alive_at_end: bool = False
    log: str = ""


def run_scenario(folder: Path, shared_data: Path) -> Record:
    data, fs = eeg_from(shared_data / SOURCE)
    names = {bed: unique_name(f"relp-{bed}") for bed in BEDS}
    outlets = {bed: EegOutlet(name, data, fs).start() for bed, name in names.items()}
    daemon = DaemonProcess(folder, names, THRESHOLDS, heartbeat_s=0.3)
    rec = Record()
    live = LiveSubscriber(daemon.pub_endpoint)
    context = zmq.Context()
    stalled = context.socket(zmq.SUB)  # subscribes and never reads
    stalled.setsockopt(zmq.RCVHWM, 10)
    stalled.setsockopt(zmq.SUBSCRIBE, b"")
    stalled.connect(daemon.pub_endpoint)
    steady = late = None
    try:
        daemon.start()
        steady = Follower(daemon)
        rec.rss_mb.append(rss_mb(daemon.proc.pid))
        assert wait_for(lambda: sum(e["kind"] == "onset" for e in steady.events) >= 3, 60.0), daemon.log()[-3000:]

        # 1. a subscriber absent so far joins, catches up from 0; another reconnects from its last seq
        late = Follower(daemon)
        reconnecting = Follower(daemon)
        assert wait_for(lambda: len(reconnecting.seqs()) >= 3, 20.0)
        first_part = reconnecting.seqs()
        reconnecting.close()
        time.sleep(2.0)  # events it misses while away
        reconnecting = Follower(daemon, since=first_part[-1])
        assert wait_for(lambda: len(reconnecting.seqs()) >= 2, 20.0)

        # 2. SIGKILL while an alarm is open on bed-1
        def open_alarm() -> bool:
            alarms = [e for e in steady.events if e.get("bed_id") == "bed-1" and e["kind"] in ("onset", "offset")]
            return bool(alarms) and alarms[-1]["kind"] == "onset"

        assert wait_for(open_alarm, 20.0, interval_s=0.05)
        rec.open_alarm_at_kill = [e for e in steady.events if e.get("bed_id") == "bed-1"][-1]
        rec.rss_mb.append(rss_mb(daemon.proc.pid))
        daemon.kill()
        rec.journal_after_kill = journal_offline(daemon.journal_path)
        rec.head_at_kill = rec.journal_after_kill[1][-1]
        time.sleep(1.0)
        daemon.start()
        assert wait_for(lambda: sum(e["kind"] == "onset" and (e.get("journal_seq") or 0) > rec.head_at_kill
                                    for e in steady.events) >= 2, 40.0), daemon.log()[-3000:]
        rec.after_restart = [e for e in daemon.catch_up(rec.head_at_kill)]

        # 3. disk full: every journal write fails (EFBIG), then space returns
        errors_before = daemon.metric("ictal_journal_errors_total")
        n_live = len(live.events)
        resource.prlimit(daemon.proc.pid, resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))
        try:
            assert wait_for(lambda n=n_live: sum(e["kind"] == "onset" for _, e in live.events[n:]) >= 2, 30.0)
            rec.live_while_full = [e for _, e in live.events[n_live:]]
            rec.journal_errors = daemon.metric("ictal_journal_errors_total") - errors_before
        finally:
            resource.prlimit(daemon.proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        head_before = max(e["journal_seq"] for e in daemon.catch_up(0))
        assert wait_for(lambda: sum(e["kind"] == "onset" for e in daemon.catch_up(head_before)) >= 2, 30.0), \
            daemon.log()[-3000:]
        rec.journaled_after_recovery = daemon.catch_up(head_before)

        time.sleep(1.0)
        rec.rss_mb.append(rss_mb(daemon.proc.pid))
        rec.final_journal = daemon.catch_up(0)
        wait_for(lambda: late.seqs()[-1:] == [rec.final_journal[-1]["journal_seq"]], 10.0)
        wait_for(lambda: steady.seqs()[-1:] == [rec.final_journal[-1]["journal_seq"]], 10.0)
        rec.late_seqs, rec.steady_seqs = late.seqs(), steady.seqs()
        rec.steady_events = list(steady.events)
        rec.reconnect_seqs = first_part + reconnecting.seqs()
        rec.metrics_end = daemon.metrics()
        rec.alive_at_end = daemon.alive()
        reconnecting.close()
    finally:
        for follower in (steady, late):
            if follower is not None:
                follower.close()
        daemon.stop()
        rec.log = daemon.log()
        live.close()
        stalled.close(linger=0)
        context.term()
        for outlet in outlets.values():
            outlet.close()
    return rec


@pytest.fixture(scope="module")
def record(shared_data, tmp_path_factory) -> Record:
    return run_scenario(tmp_path_factory.mktemp("process_faults"), shared_data)


def test_the_journal_is_intact_after_a_sigkill_during_an_alarm(record):
    integrity, seqs, beds = record.journal_after_kill
    assert integrity == "ok"
    assert seqs == list(range(1, len(seqs) + 1)), "holes in the journal after SIGKILL"
    assert record.open_alarm_at_kill["kind"] == "onset"
    assert record.open_alarm_at_kill["journal_seq"] in seqs, "the open alarm seen live is not in the journal"
    for bed in BEDS:
        bed_seqs = [s for b, s in beds if b == bed]
        assert bed_seqs == list(range(1, len(bed_seqs) + 1)), (bed, bed_seqs)


def test_sequence_numbers_continue_after_the_restart(record):
    after = record.after_restart
    assert after and after[0]["journal_seq"] == record.head_at_kill + 1, after[:1]
    assert (after[0]["kind"], after[0]["reason"]) == ("daemon", "started")
    _, _, beds = record.journal_after_kill
    for bed in BEDS:
        last = max(s for b, s in beds if b == bed)
        first_after = next(e["bed_seq"] for e in after if e.get("bed_id") == bed)
        assert first_after == last + 1, (bed, last, first_after)


def test_a_subscriber_that_stayed_up_across_the_kill_has_every_event_once(record):
    final = [e["journal_seq"] for e in record.final_journal]
    assert final == list(range(1, len(final) + 1))
    assert record.steady_seqs == final, (len(record.steady_seqs), len(final))
    journal = {e["journal_seq"]: e for e in record.final_journal}
    for event in record.steady_events:
        if event.get("journal_seq") is not None:
            assert event == journal[event["journal_seq"]]


def test_an_absent_subscriber_catches_up_everything_it_missed(record):
    final = [e["journal_seq"] for e in record.final_journal]
    assert record.late_seqs == final


def test_a_reconnecting_subscriber_misses_nothing_and_gets_nothing_twice(record):
    seqs = record.reconnect_seqs
    assert len(seqs) == len(set(seqs)), "duplicates after reconnection"
    assert seqs == list(range(seqs[0], seqs[-1] + 1)), "a gap across the reconnection"


def test_a_subscriber_that_never_reads_does_not_grow_the_daemon(record):
    start, before_kill, end = record.rss_mb
    print(f"daemon RSS with a stalled subscriber: {start:.1f} MB at start, {before_kill:.1f} MB before the kill, "
          f"{end:.1f} MB at the end (after the restart)")
    assert end - start < 60.0, f"daemon RSS {start:.0f} -> {end:.0f} MB with a stalled subscriber"
    assert record.alive_at_end


def test_a_full_journal_disk_keeps_live_alarms_flowing_and_is_loud(record):
    live = record.live_while_full
    alarms = [e for e in live if e["kind"] in ("onset", "offset")]
    assert alarms and all(e.get("journal_seq") is None for e in alarms), [
        (e["kind"], e.get("journal_seq")) for e in alarms]
    loud = [e for e in live if e["kind"] == "daemon" and e.get("reason") == "journal_error"]
    assert loud and "journal" in loud[0]["detail"], [e.get("reason") for e in live]
    assert record.journal_errors >= len(alarms) > 0


def test_the_journal_recovers_when_space_returns(record):
    after = record.journaled_after_recovery
    assert sum(e["kind"] == "onset" for e in after) >= 2
    seqs = [e["journal_seq"] for e in after]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert record.alive_at_end


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return result.returncode == 0


@pytest.mark.slow
def test_a_really_full_journal_filesystem_is_survived_and_recovered(shared_data, tmp_path):
    """The journal on a 2 MB tmpfs filled up by another file (ENOSPC), then given its space back.

    A read-only remount cannot be simulated under a running daemon: the kernel refuses ``remount,ro``
    (EBUSY) while the journal is open for writing, and root ignores ``chmod``; the append error path is
    the same (``JournalError``).
    """
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN); the RLIMIT_FSIZE scenario covers a full disk")
    mount_point = tmp_path / "state"
    if not _mount_tmpfs(mount_point, "2m"):
        pytest.skip("mount -t tmpfs refused here (no CAP_SYS_ADMIN); the RLIMIT_FSIZE scenario covers a full disk")
    data, fs = eeg_from(shared_data / SOURCE)
    names = {"bed-1": unique_name("relro-bed-1")}
    outlet = EegOutlet(names["bed-1"], data, fs).start()
    daemon = DaemonProcess(tmp_path, names, THRESHOLDS, heartbeat_s=0.3)
    live = LiveSubscriber(daemon.pub_endpoint)
    try:
        daemon.start()
        assert wait_for(lambda: len(daemon.catch_up(0)) >= 4, 40.0), daemon.log()[-3000:]
        for phase in ("full", "full again"):
            head = daemon.catch_up(0)[-1]["journal_seq"]
            errors = daemon.metric("ictal_journal_errors_total")
            n_live = len(live.events)
            filler = mount_point / "filler"
            subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
            assert shutil.disk_usage(mount_point).free < 64 * 1024, "the tmpfs was not filled"
            assert wait_for(lambda n=n_live: sum(e["kind"] == "onset" for _, e in live.events[n:]) >= 2, 30.0)
            loud = [e for _, e in live.events[n_live:] if e["kind"] == "daemon" and e.get("reason") == "journal_error"]
            assert loud, f"{phase}: no journal_error daemon event"
            assert daemon.metric("ictal_journal_errors_total") > errors, phase
            filler.unlink()
            assert wait_for(lambda h=head: sum(e["kind"] == "onset" for e in daemon.catch_up(h)) >= 2, 30.0), \
                f"{phase}: the journal did not recover:\n{daemon.log()[-3000:]}"
        assert daemon.alive()
    finally:
        daemon.stop()
        live.close()
        outlet.close()
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)
