"""Capacity honesty: can this daemon score its configured beds in real time? Measured, said, exported.

The daemon needs ``n_beds / hop_s`` windows per second (every bed gets a window each hop). What it can
score is measured twice:

- at start, before READY (:func:`measure_start`): a timed forward pass on a batch of
  ``min(n_beds, max_batch)`` zero windows, after the model's warm-up, the fastest of
  ``START_REPEATS``; the windows per second it gives is compared with the need;
- while running (:class:`CapacityMonitor`): the scoring loop records every batch (inference seconds,
  windows); over the last ``CAPACITY_SPAN_S`` the monitor gives the busy ratio (the fraction of wall time
  spent in the model) and the throughput (windows per second of inference), and counts the windows the
  beds skipped because scoring fell behind.

The load ratio is need / throughput: above 1 the daemon cannot keep up. The daemon says so three ways
(a ``daemon`` event, reason ``over_capacity``, naming the beds configured, the need, the measured
throughput and about how many beds it can serve; an ERROR log line; the gauges
``ictal_scoring_load_ratio`` and ``ictal_scoring_busy_ratio``) at start and whenever the running check
finds it (load ratio above 1, busy ratio at or above ``BUSY_HIGH``, or windows skipped within the span),
and says ``capacity_ok`` once none of that held for a whole span of measured scoring (busy ratio below
``BUSY_OK``: no flapping at the border).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from ictal.detector import CANONICAL_CHANNELS, WINDOW_SAMPLES

CAPACITY_SPAN_S = 60.0
"""Span (s) over which the running check judges: 15 hops at the default 4 s, long enough that one slow
batch (a garbage collection, a page fault storm) does not decide, short enough to say it within a minute."""

START_REPEATS = 2
"""Timed forward passes at start (the fastest counts: the first may still pay for allocations); one
only when the first took longer than ``START_REPEAT_MAX_S`` (64 beds of the tiny preset on a loaded
2-core CPU: 15 s a batch, and READY waits for it)."""

START_REPEAT_MAX_S = 2.0

BUSY_HIGH = 0.95
"""Busy ratio from which the daemon is over capacity: no spare time left for a burst (a reconnection
brings several windows at once)."""

BUSY_OK = 0.8
"""Busy ratio under which (with no skipped window and a load ratio at most 1) capacity is fine again."""


@dataclass(frozen=True)
class CapacityEstimate:
    """What the configured beds need and what the model scores.

    Attributes
    ----------
    n_beds : int
        Beds configured.
    hop_s : float
        Seconds between windows of one bed.
    need_windows_per_s : float
        ``n_beds / hop_s``.
    windows_per_s : float
        Windows the model scores per second of inference (measured).
    """

    n_beds: int
    hop_s: float
    need_windows_per_s: float
    windows_per_s: float

    @property
    def load_ratio(self) -> float:
        """Need / throughput (above 1: cannot keep up); 0 when no bed is configured."""
        if self.need_windows_per_s == 0:
            return 0.0
        return self.need_windows_per_s / self.windows_per_s if self.windows_per_s > 0 else math.inf

    @property
    def beds_in_real_time(self) -> int:
        """About how many beds the measured throughput serves in real time at ``hop_s``."""
        if math.isinf(self.windows_per_s):  # nothing timed (no bed configured)
            return 0
        return int(self.windows_per_s * self.hop_s)

    def describe(self) -> str:
        """One sentence for events and logs."""
        return (f"{self.n_beds} bed(s) at hop {self.hop_s:g} s need {self.need_windows_per_s:.2f} windows/s; the "
                f"model scores {self.windows_per_s:.2f} windows/s here (load ratio {self.load_ratio:.2f}), "
                f"about {self.beds_in_real_time} bed(s) in real time")


def measure_start(predict, n_beds: int, hop_s: float, max_batch: int,
                  n_chans: int = len(CANONICAL_CHANNELS)) -> tuple[CapacityEstimate, float]:
    """Time the model on a batch like the daemon's and compare with the beds' need.

    Parameters
    ----------
    predict : callable
        ``predict((B, 19, 15360) float32) -> (B, 15360)``: the daemon's scorer.
    n_beds : int
        Beds configured (0 gives a zero need without timing anything).
    hop_s : float
        Seconds between windows of one bed.
    max_batch : int
        Most windows per forward pass.
    n_chans : int, default 19
        Rows of a window: those of the checkpoint's montage (19 electrodes, 18 double-banana derivations).

    Returns
    -------
    estimate : CapacityEstimate
    seconds : float
        Wall time the measurement took (s).
    """
    t_start = time.monotonic()
    batch = max(1, min(n_beds, max_batch))
    windows = np.zeros((batch, n_chans, WINDOW_SAMPLES), dtype=np.float32)
    best = math.inf
    if n_beds > 0:
        for _ in range(START_REPEATS):
            t0 = time.perf_counter()
            predict(windows)
            best = min(best, time.perf_counter() - t0)
            if best > START_REPEAT_MAX_S:
                break
    rate = batch / best if n_beds > 0 and best > 0 else math.inf
    estimate = CapacityEstimate(n_beds, hop_s, n_beds / hop_s, rate)
    return estimate, time.monotonic() - t_start


class CapacityMonitor:
    """The running check (see the module docstring); thread-safe.

    Parameters
    ----------
    span_s : float, default CAPACITY_SPAN_S
        Span (s) of the judgement.
    """

    def __init__(self, span_s: float = CAPACITY_SPAN_S) -> None:
        self.span_s = span_s
        self._batches: deque[tuple[float, float, int]] = deque()  # (monotonic end, inference_s, windows)
        self._skips: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()
        self.started = time.monotonic()
        self.over = False
        self.over_since = -math.inf

    def record_batch(self, inference_s: float, n_windows: int, now: float | None = None) -> None:
        """The scoring loop scored ``n_windows`` in one forward pass of ``inference_s`` seconds."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._batches.append((now, inference_s, n_windows))
            self._trim(now)

    def record_skips(self, n_windows: int, now: float | None = None) -> None:
        """A bed skipped ``n_windows`` windows because scoring fell behind."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._skips.append((now, n_windows))
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._batches and self._batches[0][0] < now - self.span_s:
            self._batches.popleft()
        while self._skips and self._skips[0][0] < now - self.span_s:
            self._skips.popleft()

    def snapshot(self, now: float | None = None) -> tuple[float, float | None, int]:
        """Busy ratio, throughput (windows per inference second; None before any batch) and windows skipped,
        over the last ``span_s`` (or since the start, if shorter)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            busy_s = sum(b[1] for b in self._batches)
            windows = sum(b[2] for b in self._batches)
            skipped = sum(s[1] for s in self._skips)
        elapsed = min(self.span_s, max(now - self.started, 1e-9))
        throughput = windows / busy_s if busy_s > 0 else None
        return min(busy_s / elapsed, 1.0), throughput, skipped

    def judge(self, n_beds: int, hop_s: float, now: float | None = None) -> tuple[str | None, str]:
        """Compare the last span with the need; a transition to report, if any.

        Returns
        -------
        transition : str or None
            ``"over_capacity"`` when the daemon just became unable to keep up, ``"capacity_ok"`` when it
            just recovered, None when nothing changed.
        detail : str
            The figures, for the event and the log.
        """
        busy, throughput, skipped = self.snapshot(now)
        need = n_beds / hop_s
        load = need / throughput if throughput else 0.0
        detail = (f"over the last {self.span_s:g} s: busy {busy:.0%} of the time in the model, {skipped} window(s) "
                  f"skipped; {n_beds} bed(s) at hop {hop_s:g} s need {need:.2f} windows/s, the model scored "
                  + (f"{throughput:.2f} windows/s (load ratio {load:.2f})" if throughput else "nothing yet"))
        now = time.monotonic() if now is None else now
        over = load > 1.0 or busy >= BUSY_HIGH or skipped > 0
        recovered = (throughput is not None and load <= 1.0 and busy < BUSY_OK and skipped == 0
                     and now - self.over_since >= self.span_s)  # a whole span of scoring, measured
        if over and not self.over:
            self.mark_over(now)
            return "over_capacity", detail
        if over:
            self.over_since = now
        if self.over and recovered:
            self.over = False
            return "capacity_ok", detail
        return None, detail

    def mark_over(self, now: float | None = None) -> None:
        """The daemon is over capacity from ``now`` (the start check found it, or :meth:`judge` did)."""
        self.over = True
        self.over_since = time.monotonic() if now is None else now
