"""Real processes on loopback for the fault tests: controllable LSL amplifiers and a daemon process.

- :class:`EegOutlet`: an LSL outlet in a child process (``amplifier.py``) that streams real EEG (looped)
  in real time like an amplifier (timestamps on the LSL clock, ``idx / fs`` apart), and can be made to
  misbehave: die and come back, send NaN/Inf, flat or saturated leads, lose a channel, announce one
  rate and send another, jump its timestamps.
- :class:`DaemonProcess`: ``python tests/reliability/stub_daemon.py CONFIG``: the real
  ``streaming.daemon.Daemon`` (bed threads, scoring loop, journal, publisher, metrics, signals) in a
  process of its own, scoring with a constant-probability stand-in for the model so that alarms are
  deterministic and a 2-core machine keeps up (the model path is covered by tests/ictal/test_serve_e2e).
- helpers to scrape metrics, ask the catch-up endpoint and subscribe.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pylsl
import yaml
import zmq
from prometheus_client.parser import text_string_to_metric_families

from ictal.detector import CANONICAL_CHANNELS
from tests.reliability.amplifier import AmplifierSpec, run_amplifier
from tests.reliability.helpers import REPO_ROOT, free_port

STUB_DAEMON = Path(__file__).with_name("stub_daemon.py")


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """Every sample of a Prometheus endpoint, keyed by (name, sorted label items)."""
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def wait_for(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.2) -> bool:
    """Poll ``predicate`` until it is true or ``timeout_s`` passes; its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())


class EegOutlet:
    """A misbehaving-on-demand EEG amplifier on LSL, streaming ``data`` (19, n) uV at ``fs`` in real time.

    The outlet lives in a child process (``amplifier.py``: liblsl may crash the process that destroys
    an outlet under a connected consumer); :meth:`die` kills that child, :meth:`come_back` hands the
    stream to a child spawned on standby. Timestamps are on the LSL clock, ``idx / fs`` apart, and time
    keeps running while the amplifier is away (those samples are lost).

    Parameters
    ----------
    name : str
        LSL stream name (unique per test).
    data : ndarray of float32, shape (19, n_samples)
        Real EEG in uV, looped.
    fs : float
        True sampling rate of ``data`` (samples are pushed at this pace).
    announced_fs : float, optional
        Nominal rate written in the stream info (default ``fs``); a different value is a lying device.
    chunk_s : float
        Seconds of signal per push.
    labels : tuple of str
        Channels sent: canonical ones carry their row of ``data`` (a missing lead: fewer), any other
        label (an extra lead such as EKG) carries 0 uV.
    source_id : str, optional
        The device's LSL ``source_id`` (default ``ictal-reliability:<name>``; ``""``: none).
    """

    def __init__(self, name: str, data: np.ndarray, fs: float, announced_fs: float | None = None,
                 chunk_s: float = 0.1, labels: tuple[str, ...] = CANONICAL_CHANNELS,
                 source_id: str | None = None) -> None:
        self.name = name
        self.source_id = f"ictal-reliability:{name}" if source_id is None else source_id
        self.data = data
        self.fs = fs
        self.announced_fs = announced_fs or fs
        self.chunk = max(1, round(chunk_s * fs))
        self.labels = labels
        self._mutate: Callable[[np.ndarray, int], np.ndarray] | None = None
        self._offset_s = 0.0
        self._spec: AmplifierSpec | None = None
        self._live: tuple | None = None  # (process, connection) streaming now
        self._standby: tuple | None = None  # (process, connection) ready to stream

    @property
    def index(self) -> int:
        """Samples acquired (sent or lost) since :meth:`start`."""
        if self._spec is None:
            return 0
        return int((time.monotonic() - self._spec.t0_wall) * self.fs) // self.chunk * self.chunk

    @property
    def mutate(self) -> Callable[[np.ndarray, int], np.ndarray] | None:
        """What is done to each block before it is sent (picklable: it runs in the child)."""
        return self._mutate

    @mutate.setter
    def mutate(self, value: Callable[[np.ndarray, int], np.ndarray] | None) -> None:
        self._mutate = value
        self._tell("mutate", value)

    @property
    def timestamp_offset_s(self) -> float:
        """Seconds added to every timestamp sent from now on (a jumping clock)."""
        return self._offset_s

    @timestamp_offset_s.setter
    def timestamp_offset_s(self, value: float) -> None:
        self._offset_s = float(value)
        self._tell("offset", self._offset_s)

    def _tell(self, key: str, value) -> None:
        if self._live is not None:
            self._live[1].send(("set", key, value))

    def _spawn(self) -> tuple:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(target=run_amplifier, args=(child, self._spec), daemon=True,
                                  name=f"amplifier-{self.name}")
        process.start()
        child.close()
        return process, parent

    def _go(self) -> int:
        process, conn = self._standby
        self._standby = None
        if not conn.poll(60.0):
            raise RuntimeError(f"amplifier {self.name}: the child did not come up (exit {process.exitcode})")
        assert conn.recv() == ("ready",)
        conn.send(("go", tuple(self.labels), self._offset_s, self._mutate))
        if not conn.poll(30.0):
            raise RuntimeError(f"amplifier {self.name}: no outlet (exit {process.exitcode})")
        kind, first = conn.recv()
        assert kind == "streaming"
        self._live = (process, conn)
        return first

    def start(self) -> EegOutlet:
        self._spec = AmplifierSpec(self.name, self.source_id, self.data, self.fs, self.announced_fs,
                                   self.chunk, t0_wall=time.monotonic(), t0_lsl=pylsl.local_clock())
        self._standby = self._spawn()
        self._go()
        return self

    @staticmethod
    def _kill(pair: tuple | None) -> None:
        if pair is None:
            return
        process, conn = pair
        process.kill()
        process.join(timeout=10)
        conn.close()

    def die(self) -> int:
        """The amplifier goes away (its process is killed): consumers see the stream lost.

        Returns
        -------
        index : int
            Samples acquired when it went away (from here on they are lost until :meth:`come_back`).
        """
        live, self._live = self._live, None
        self._kill(live)
        index = self.index
        if self._standby is None:
            self._standby = self._spawn()  # imports done before the amplifier is asked back
        return index

    def come_back(self, labels: tuple[str, ...] | None = None) -> int:
        """The amplifier returns (same source_id), optionally with other channels; time kept running.

        Returns
        -------
        index : int
            The first sample it sends again (those since :meth:`die` are lost).
        """
        if labels is not None:
            self.labels = labels
        if self._standby is None:
            self._standby = self._spawn()
        return self._go()

    def close(self) -> None:
        live, self._live = self._live, None
        standby, self._standby = self._standby, None
        self._kill(live)
        self._kill(standby)


def eeg_from(path: Path) -> tuple[np.ndarray, float]:
    """The canonical (19, n) uV data of a real EDF file and its rate."""
    from ictal.streaming.edf import load_canonical

    rec = load_canonical(path)
    return rec.data, rec.fs


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class DaemonProcess:
    """The stub-scored daemon in a process of its own, on free loopback ports.

    Parameters
    ----------
    folder : Path
        Working directory (journal, config, log).
    beds : dict of str to str or dict
        Bed id -> LSL stream name, or a whole ``source`` mapping (e.g. an EDF replay).
    thresholds : dict
        ``alarms.thresholds`` of the config.
    probability : float
        What the stand-in model answers for every sample.
    """

    def __init__(self, folder: Path, beds: dict[str, str | dict], thresholds: dict, probability: float = 0.95,
                 hop_s: float = 2.0, min_history_s: float = 4.0, heartbeat_s: float = 0.5,
                 extra_env: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.pub_port, self.catchup_port, self.metrics_port = free_port(), free_port(), free_port()
        self.config_path = folder / "daemon.yaml"
        self.journal_path = folder / "state" / "journal.sqlite3"
        config = {
            "kind": "daemon",
            "log_level": "INFO",
            "beds": [{"bed_id": bed, "source": stream if isinstance(stream, dict) else {
                "type": "lsl", "name": stream, "resolve_timeout_s": 1.0, "reconnect_s": 0.5}}
                     for bed, stream in beds.items()],
            "scheduler": {"hop_s": hop_s, "min_history_s": min_history_s},
            "detector": {"checkpoint": str(folder / "no-checkpoint"), "device": "cpu", "max_batch": 8},
            "alarms": {
                "thresholds": thresholds,
                "journal": {"path": str(self.journal_path)},
                "publisher": {"pub_endpoint": f"tcp://127.0.0.1:{self.pub_port}",
                              "catchup_endpoint": f"tcp://127.0.0.1:{self.catchup_port}",
                              "heartbeat_s": heartbeat_s},
                "metrics": {"port": self.metrics_port},
            },
        }
        self.config_path.write_text(yaml.safe_dump(config))
        self.env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1",
                        ICTAL_STUB_PROBABILITY=str(probability), **(extra_env or {}))
        self.proc: subprocess.Popen | None = None
        self.log_path = folder / "daemon.log"
        self.n_starts = 0

    @property
    def pub_endpoint(self) -> str:
        return f"tcp://127.0.0.1:{self.pub_port}"

    @property
    def catchup_endpoint(self) -> str:
        return f"tcp://127.0.0.1:{self.catchup_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self, timeout_s: float = 60.0) -> DaemonProcess:
        self.n_starts += 1
        log = self.log_path.open("a")
        log.write(f"--- start {self.n_starts} ---\n")
        log.flush()
        self.proc = subprocess.Popen([sys.executable, str(STUB_DAEMON), str(self.config_path)], cwd=self.folder,
                                     env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        ok = wait_for(lambda: self.proc.poll() is not None or self._metrics_up(), timeout_s, 0.3)
        assert ok and self.proc.poll() is None, f"the daemon did not come up:\n{self.log()[-4000:]}"
        return self

    def _metrics_up(self) -> bool:
        try:
            urllib.request.urlopen(self.metrics_url, timeout=1).read()
        except OSError:
            return False
        return True

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind runs in the daemon."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout_s: float = 20.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -9

    def metrics(self) -> dict[tuple[str, tuple], float]:
        return scrape(self.metrics_url)

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics().get((name, tuple(sorted(labels.items()))), 0.0)

    def catch_up(self, since: int = 0) -> list[dict]:
        """Every journaled event after ``since``, paging through the catch-up endpoint."""
        events: list[dict] = []
        context = zmq.Context()
        try:
            while True:
                sock = context.socket(zmq.REQ)
                sock.setsockopt(zmq.RCVTIMEO, 10000)
                sock.setsockopt(zmq.LINGER, 0)
                sock.connect(self.catchup_endpoint)
                try:
                    sock.send(json.dumps({"since": since}).encode())
                    reply = json.loads(sock.recv())
                finally:
                    sock.close()
                assert reply["ok"], reply
                events += reply["events"]
                if not reply["more"] or not reply["events"]:
                    return events
                since = reply["events"][-1]["journal_seq"]
        finally:
            context.term()


class LiveSubscriber:
    """A SUB socket on the daemon's PUB endpoint, recording (topic, event) and arrival times as they arrive."""

    def __init__(self, endpoint: str) -> None:
        self.context = zmq.Context()
        self.sock = self.context.socket(zmq.SUB)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.setsockopt(zmq.RCVTIMEO, 100)
        self.sock.connect(endpoint)
        self.events: list[tuple[str, dict]] = []
        self.timed: list[tuple[float, dict]] = []  # (monotonic arrival s, event)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                topic, payload = self.sock.recv_multipart()
            except zmq.Again:
                continue
            event = json.loads(payload)
            self.events.append((topic.decode(), event))
            self.timed.append((time.monotonic(), event))

    def of(self, kind: str | None = None, bed: str | None = None) -> list[dict]:
        return [e for _, e in list(self.events) if (kind is None or e["kind"] == kind)
                and (bed is None or e.get("bed_id") == bed)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close(linger=0)
        self.context.term()
