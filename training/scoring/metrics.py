"""Helpers of the evaluation report: sensitivity at a false-alarm rate, onset latency of detections.

Sources: sensitivity at a fixed FA/24h is the operating-point figure of seizure-detection benchmarks
(e.g. Shah et al. 2021; Dan et al. 2024, SzCORE); onset latency = alarm time minus annotated onset,
summarised by its median and 90th percentile.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ictal.training.scoring.annotations import Event


@dataclass(frozen=True)
class OperatingPoint:
    """One point of a threshold sweep: threshold, sensitivity (fraction) and false alarms per 24 h."""

    threshold: float
    sensitivity: float
    fa_per_24h: float


def _points(sweep: Mapping[float, tuple[float, float]] | Iterable[OperatingPoint]) -> list[OperatingPoint]:
    if isinstance(sweep, Mapping):
        points = [OperatingPoint(float(t), float(s), float(f)) for t, (s, f) in sweep.items()]
    else:
        points = list(sweep)
    for p in points:
        if not (math.isfinite(p.sensitivity) and math.isfinite(p.fa_per_24h)):
            raise ValueError(f"operating point at threshold {p.threshold} is not finite: {p}")
        if p.fa_per_24h < 0 or not 0.0 <= p.sensitivity <= 1.0:
            raise ValueError(
                f"operating point at threshold {p.threshold}: sensitivity {p.sensitivity} and FA/24h "
                f"{p.fa_per_24h}, expected sensitivity in [0, 1] and FA/24h >= 0"
            )
    return points


def sensitivity_at_fa(
    sweep: Mapping[float, tuple[float, float]] | Iterable[OperatingPoint], max_fa_per_24h: float
) -> OperatingPoint | None:
    """The most sensitive operating point whose false-alarm rate does not exceed a budget.

    Parameters
    ----------
    sweep : mapping of threshold to (sensitivity, fa_per_24h), or iterable of OperatingPoint
        The points of a threshold sweep; sensitivity as a fraction in [0, 1], FA per 24 h.
    max_fa_per_24h : float
        The false-alarm budget, false alarms per 24 h.

    Returns
    -------
    OperatingPoint or None
        The point of highest sensitivity among those with ``fa_per_24h <= max_fa_per_24h`` (ties go to
        the lower FA/24h, then the higher threshold); None when no point is within the budget. No
        interpolation between points: only operating points a detector can actually run at count.

    Raises
    ------
    ValueError
        If a point has a non-finite value, a sensitivity outside [0, 1] or a negative FA/24h.
    """
    feasible = [p for p in _points(sweep) if p.fa_per_24h <= max_fa_per_24h]
    if not feasible:
        return None
    return max(feasible, key=lambda p: (p.sensitivity, -p.fa_per_24h, p.threshold))


def lowest_fa(sweep: Mapping[float, tuple[float, float]] | Iterable[OperatingPoint]) -> OperatingPoint:
    """The operating point with the lowest FA/24h (the most sensitive of those); raises ValueError if empty."""
    points = _points(sweep)
    if not points:
        raise ValueError("empty sweep, expected at least one operating point")
    return min(points, key=lambda p: (p.fa_per_24h, -p.sensitivity))


@dataclass(frozen=True)
class OnsetLatency:
    """Latency of the detection of one reference seizure (seconds; negative = alarm before onset)."""

    onset_s: float
    alarm_s: float

    @property
    def latency_s(self) -> float:
        """Alarm time minus annotated onset, seconds."""
        return self.alarm_s - self.onset_s


def onset_latencies(
    ref_seizures: Sequence[Event], alarms: Sequence[Event], pre_tolerance_s: float = 0.0
) -> list[OnsetLatency]:
    """Onset latency of every detected reference seizure.

    Parameters
    ----------
    ref_seizures : sequence of Event
        Annotated seizures of one recording (seconds).
    alarms : sequence of Event
        Detected events (the hypothesis seizures) of the same recording; an alarm's time is its start.
    pre_tolerance_s : float
        An alarm starting up to this many seconds before the onset still detects the seizure.

    Returns
    -------
    list of OnsetLatency
        One entry per detected seizure, in onset order: a seizure is detected when an alarm overlaps
        ``[onset - pre_tolerance_s, offset]``; its alarm time is the start of the earliest such alarm
        that starts no earlier than ``onset - pre_tolerance_s`` (an alarm already running long before
        the onset, e.g. one that covered the previous seizure, does not define a latency), else of the
        earliest overlapping alarm. Undetected seizures are absent.

    Raises
    ------
    ValueError
        If ``pre_tolerance_s`` is negative.
    """
    if pre_tolerance_s < 0:
        raise ValueError(f"pre_tolerance_s is {pre_tolerance_s}, expected >= 0")
    out: list[OnsetLatency] = []
    for seizure in sorted(ref_seizures, key=lambda e: e.start_s):
        window_start = seizure.start_s - pre_tolerance_s
        hits = [a for a in alarms if a.stop_s > window_start and a.start_s < seizure.stop_s]
        if not hits:
            continue
        fresh = [a for a in hits if a.start_s >= window_start]
        first = min(fresh or hits, key=lambda a: a.start_s)
        out.append(OnsetLatency(seizure.start_s, first.start_s))
    return out


@dataclass(frozen=True)
class LatencySummary:
    """Median and 90th percentile of onset latencies in seconds (NaN when there is none)."""

    n: int
    median_s: float
    p90_s: float


def summarise_latencies(latencies: Iterable[float | OnsetLatency]) -> LatencySummary:
    """Median and 90th percentile (linear interpolation, numpy's default) of onset latencies in seconds."""
    values = np.asarray(
        [x.latency_s if isinstance(x, OnsetLatency) else float(x) for x in latencies], dtype=np.float64
    )
    if values.size == 0:
        return LatencySummary(0, float("nan"), float("nan"))
    return LatencySummary(int(values.size), float(np.median(values)), float(np.percentile(values, 90)))
