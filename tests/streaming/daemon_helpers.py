"""Helpers of the daemon tests: configs with free ports, a fake systemd notify socket, simple scorers."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import numpy as np

from ictal.alarms.config import AlarmsConfig, AlarmThresholds, JournalConfig, MetricsConfig, PublisherConfig
from ictal.streaming.config import (
    BedConfig,
    DaemonConfig,
    DetectorRuntimeConfig,
    EdfSourceConfig,
    SchedulerConfig,
)


def daemon_config(tmp_path: Path, beds: dict[str, Path], *, speed: float = 0.0, queue_windows: int = 2,
                  max_batch: int = 32, thresholds: AlarmThresholds | None = None) -> DaemonConfig:
    """A daemon config replaying EDF files as beds, every socket on a free loopback port."""
    return DaemonConfig(
        beds=[BedConfig(bed_id=bed, source=EdfSourceConfig(path=path, speed=speed)) for bed, path in beds.items()],
        scheduler=SchedulerConfig(hop_s=4.0),
        detector=DetectorRuntimeConfig(checkpoint=tmp_path / "unused", max_batch=max_batch,
                                       queue_windows=queue_windows),
        alarms=AlarmsConfig(
            thresholds=thresholds or AlarmThresholds(),
            journal=JournalConfig(path=tmp_path / "journal.sqlite3"),
            publisher=PublisherConfig(pub_endpoint="tcp://127.0.0.1:*", catchup_endpoint="tcp://127.0.0.1:*",
                                      heartbeat_s=0.5),
            metrics=MetricsConfig(port=0),
        ),
    )


class NotifySocket:
    """A unix datagram socket standing in for systemd's ``$NOTIFY_SOCKET``; records what it receives."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data.decode()))

    def lines(self) -> list[str]:
        """Every ``KEY=VALUE`` line received, in order."""
        return [line for _, message in list(self.messages) for line in message.split("\n")]

    def times_of(self, line: str) -> list[float]:
        """Monotonic arrival times of the datagrams containing ``line``."""
        return [t for t, message in list(self.messages) if line in message.split("\n")]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)
        self.sock.close()


class LineLengthScorer:
    """Deterministic, batch-independent scorer: smoothed line length of each normalised window."""

    max_batch = 32

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.batch_sizes: list[int] = []
        self.model_id, self.stack, self.backend, self.device = "line-length", "none", "numpy", "cpu"

    def predict(self, windows: np.ndarray) -> np.ndarray:
        self.batch_sizes.append(windows.shape[0])
        if self.delay_s:
            time.sleep(self.delay_s)
        ll = np.abs(np.diff(windows, axis=2)).mean(axis=1)
        ll = np.concatenate([ll[:, :1], ll], axis=1)
        kernel = np.ones(256, dtype=np.float32) / 256
        smooth = np.stack([np.convolve(x, kernel, mode="same") for x in ll])
        return (1.0 / (1.0 + np.exp(-(smooth - 0.5) * 8))).astype(np.float32)


class BlockingScorer(LineLengthScorer):
    """A scorer whose ``predict`` hangs on real windows while ``hang`` is set (until ``release`` is set).

    The daemon's capacity check before READY times the model on all-zero windows: those never hang.
    """

    def __init__(self) -> None:
        super().__init__()
        self.hang = threading.Event()
        self.release = threading.Event()
        self.entered = threading.Event()

    def predict(self, windows: np.ndarray) -> np.ndarray:
        if self.hang.is_set() and np.any(windows):
            self.entered.set()
            self.release.wait(30.0)
        return super().predict(windows)


def wait_for(condition, timeout_s: float, interval_s: float = 0.05) -> bool:
    """Poll ``condition()`` until it is true or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval_s)
    return bool(condition())
