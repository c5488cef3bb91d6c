"""``ictal tune``: alarm thresholds that maximise sensitivity within a false-alarm budget.

The dataset is run once through the daemon path (:mod:`ictal.training.evaluate`, or the probabilities an
earlier ``ictal evaluate`` stored); then only the alarm post-processor is re-run over the stored
probabilities for every point of a grid (:func:`ictal.training.evaluate_metrics.sweep`), each scored with
NEDC OVERLAP (sensitivity = detected reference seizures / reference seizures; FA/24h = false alarms /
total duration x 86400).

The grid
--------
- ``tau_on``: :func:`ictal.training.evaluate_metrics.tau_on_grid` (0.05 to 0.95 by 0.05, 0.97, 0.98, 0.99,
  quantiles 0.5 ... 0.9999 of the stored probabilities, and the base tau_on);
- hysteresis gap ``tau_on - tau_off`` in :data:`GAPS` (tau_off floored at tau_on / 2);
- ``min_duration_s`` in :data:`MIN_DURATIONS_S`;
- ``merge_gap_s``, ``max_duration_s`` and ``refractory_s`` are kept from the base thresholds.

Choice
------
Among the points with ``fa_per_24h <= target``: the highest sensitivity, then the lowest FA/24h, then
the shortest minimum duration (earliest alarms), then the highest tau_on (most margin), then the
smallest gap. A dataset without reference seizures (e.g. seizure-free EEG) has no sensitivity: the
choice is then the most permissive point within the budget (lowest tau_on, then shortest minimum
duration, then smallest gap), i.e. the thresholds that alarm most readily while keeping the budget.
When no point meets the budget the target is unreachable and the lowest reachable FA/24h is reported.

The choice is written even when it has no hysteresis (gap 0: tau_off == tau_on) or a minimum duration
below a floor (``alarms.thresholds.MIN_DURATION_FLOOR_S``, ``ictal tune --min-duration-floor-s``), but
said so: :meth:`TuneResult.warnings`, printed by ``ictal tune`` and stored in the file's
``provenance.extra.warnings``. It is the best point within the budget on this data; refusing would
leave nothing to serve, while the warning travels with the file and the daemon logs it at every start.

Calibrated probabilities
------------------------
Thresholds refer to the probabilities ``Detector`` serves, which carry the checkpoint's calibration
(:mod:`ictal.detector.calibration`, a temperature). A calibration fitted after tuning would move every
probability under the thresholds, so the order is fixed: first fit the temperature (on training
recordings: :func:`ictal.training.calibration.fit_recordings_temperature`), store it, recalibrate the stored
probabilities with it (:func:`ictal.training.calibration.apply_temperature`), then tune on them. ``ictal tune
--calibrate`` does exactly that in one run; re-fitting a calibration later requires tuning again.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ictal.alarms.config import AlarmThresholds
from ictal.alarms.thresholds import save_thresholds
from ictal.training.evaluate_metrics import ScoredRecording, SweepPoint, sweep, tau_on_grid, with_tau_on

GAPS: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3)
"""Hysteresis gaps tau_on - tau_off tried."""

MIN_DURATIONS_S: tuple[float, ...] = (2.0, 5.0, 10.0, 15.0, 20.0)
"""Minimum durations (s) tried: from fast alarms to the 10-20 s of electrographic seizure definitions."""


def grid(recordings: Sequence[ScoredRecording], base: AlarmThresholds, gaps: Sequence[float] = GAPS,
         min_durations_s: Sequence[float] = MIN_DURATIONS_S) -> list[AlarmThresholds]:
    """Every thresholds set of the tuning grid (see the module docstring).

    Parameters
    ----------
    recordings : sequence of ScoredRecording
        Their probabilities add quantiles to the tau_on values.
    base : AlarmThresholds
        Supplies tau_on (added to the grid) and the rules that are not tuned.
    gaps, min_durations_s : sequence of float

    Returns
    -------
    list of AlarmThresholds
        Unique sets; minimum durations not below ``base.max_duration_s`` are left out.
    """
    out: dict[tuple[float, float, float], AlarmThresholds] = {}
    for tau in tau_on_grid(recordings, extra=[base.tau_on]):
        for gap in gaps:
            for dur in min_durations_s:
                if dur >= base.max_duration_s:
                    continue
                th = with_tau_on(base, tau, gap=gap, min_duration_s=dur)
                out.setdefault((th.tau_on, th.tau_off, th.min_duration_s), th)
    return list(out.values())


@dataclass
class TuneResult:
    """Outcome of a tuning.

    Attributes
    ----------
    target_fa_per_24h : float
    best : SweepPoint or None
        The chosen point; None when the target is unreachable.
    lowest : SweepPoint
        The point of lowest FA/24h (the most sensitive of those): what can be reached.
    points : list of SweepPoint
        The whole grid.
    n_seizures : int
        Reference seizures in the data (0: the choice is the most permissive feasible point).
    """

    target_fa_per_24h: float
    best: SweepPoint | None
    lowest: SweepPoint
    points: list[SweepPoint]
    n_seizures: int

    @property
    def reachable(self) -> bool:
        """Whether some grid point meets the budget."""
        return self.best is not None

    def message(self) -> str:
        """One paragraph for the user."""
        if self.best is None:
            return (f"target {self.target_fa_per_24h:g} FA/24h is unreachable on this data: the lowest "
                    f"reachable is {self.lowest.fa_per_24h:.3f} FA/24h (tau_on {self.lowest.tau_on:g}, tau_off "
                    f"{self.lowest.thresholds.tau_off:g}, min duration {self.lowest.thresholds.min_duration_s:g} s, "
                    f"{self.lowest.counts.false_alarms} false alarms in "
                    f"{self.lowest.counts.duration_s / 3600:.3f} h) over {len(self.points)} grid points")
        b = self.best
        sens = "n/a (no reference seizure)" if math.isnan(b.sensitivity) else (
            f"{100 * b.sensitivity:.2f}% ({b.counts.hits}/{b.counts.targets})")
        return (f"tau_on {b.tau_on:g}, tau_off {b.thresholds.tau_off:g}, min duration "
                f"{b.thresholds.min_duration_s:g} s: sensitivity {sens} at {b.fa_per_24h:.3f} FA/24h "
                f"(target {self.target_fa_per_24h:g}; {len(self.points)} grid points)")

    def warnings(self, min_duration_floor_s: float | None = None) -> list[str]:
        """What is unusual about the chosen thresholds (``alarms.thresholds.threshold_warnings``): no
        hysteresis (tau_off == tau_on) or a minimum duration below ``min_duration_floor_s`` (default
        ``alarms.thresholds.MIN_DURATION_FLOOR_S``); empty when nothing is or nothing was chosen."""
        from ictal.alarms.thresholds import MIN_DURATION_FLOOR_S, threshold_warnings

        if self.best is None:
            return []
        floor = MIN_DURATION_FLOOR_S if min_duration_floor_s is None else min_duration_floor_s
        return threshold_warnings(self.best.thresholds, floor)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the whole grid)."""
        return {"target_fa_per_24h": self.target_fa_per_24h, "reachable": self.reachable,
                "best": None if self.best is None else self.best.to_dict(), "lowest": self.lowest.to_dict(),
                "n_points": len(self.points), "n_seizures": self.n_seizures,
                "grid": {"gaps": list(GAPS), "min_durations_s": list(MIN_DURATIONS_S)}}


def choose(points: Sequence[SweepPoint], target_fa_per_24h: float) -> tuple[SweepPoint | None, SweepPoint]:
    """Pick the best point within the budget, and the lowest-FA point (rules in the module docstring).

    Parameters
    ----------
    points : sequence of SweepPoint
        Non-empty.
    target_fa_per_24h : float
        The budget (>= 0).

    Returns
    -------
    best : SweepPoint or None
    lowest : SweepPoint

    Raises
    ------
    ValueError
        If ``points`` is empty or the target is negative or not finite.
    """
    if not points:
        raise ValueError("no grid point to choose from, expected at least one")
    if not (math.isfinite(target_fa_per_24h) and target_fa_per_24h >= 0):
        raise ValueError(f"target FA/24h is {target_fa_per_24h}, expected a finite number >= 0")

    def gap(p: SweepPoint) -> float:
        return p.thresholds.tau_on - p.thresholds.tau_off

    def sens(p: SweepPoint) -> float:
        return -1.0 if math.isnan(p.sensitivity) else p.sensitivity

    lowest = min(points, key=lambda p: (p.fa_per_24h, -sens(p), p.thresholds.min_duration_s, -p.tau_on))
    feasible = [p for p in points if p.fa_per_24h <= target_fa_per_24h]
    if not feasible:
        return None, lowest
    if all(math.isnan(p.sensitivity) for p in feasible):
        best = min(feasible, key=lambda p: (p.tau_on, p.thresholds.min_duration_s, gap(p)))
    else:
        best = min(feasible, key=lambda p: (-sens(p), p.fa_per_24h, p.thresholds.min_duration_s, -p.tau_on, gap(p)))
    return best, lowest


def tune(recordings: Sequence[ScoredRecording], target_fa_per_24h: float, base: AlarmThresholds,
         gaps: Sequence[float] = GAPS, min_durations_s: Sequence[float] = MIN_DURATIONS_S) -> TuneResult:
    """Tune the thresholds on stored probabilities.

    Parameters
    ----------
    recordings : sequence of ScoredRecording
        Probabilities and references (``training.evaluate``).
    target_fa_per_24h : float
        False-alarm budget per 24 h.
    base : AlarmThresholds
        Rules that are not tuned (merge gap, maximum duration, refractory period).
    gaps, min_durations_s : sequence of float
        The grid (defaults :data:`GAPS`, :data:`MIN_DURATIONS_S`).

    Returns
    -------
    TuneResult

    Raises
    ------
    ValueError
        If there is no recording or the target is invalid.
    """
    if not recordings:
        raise ValueError("no recording to tune on, expected at least one")
    points = sweep(recordings, grid(recordings, base, gaps, min_durations_s))
    best, lowest = choose(points, target_fa_per_24h)
    n_seizures = sum(len(r.ref_events) for r in recordings)
    return TuneResult(float(target_fa_per_24h), best, lowest, points, n_seizures)


def write_thresholds(path: Path | str, result: TuneResult, *, dataset: str, checkpoint_id: str,
                     recordings: Sequence[str] | None = None, min_duration_floor_s: float | None = None,
                     extra: dict[str, Any] | None = None) -> Path:
    """Write the chosen thresholds as a thresholds file (``alarms.thresholds`` format) that ``ictal serve`` loads.

    Parameters
    ----------
    path : path
    result : TuneResult
    dataset : str
        What was tuned on (``provenance.dataset``).
    checkpoint_id : str
        The checkpoint whose probabilities were tuned (``provenance.checkpoint_id``; the daemon refuses
        the file for another checkpoint).
    recordings : sequence of str, optional
        Ids of the recordings tuned on (``provenance.recordings``, hashed when very many).
    min_duration_floor_s : float, optional
        Floor of :meth:`TuneResult.warnings`; the warnings go to ``provenance.extra.warnings``
        (an empty list when none).
    extra : dict, optional
        More provenance (merged into ``extra``).

    Raises
    ------
    ValueError
        If the target was unreachable (nothing to write).
    """
    if result.best is None:
        raise ValueError(f"nothing to write: {result.message()}")
    b = result.best
    info = {"achieved_fa_per_24h": b.fa_per_24h,
            "sensitivity": None if math.isnan(b.sensitivity) else b.sensitivity,
            "hits": b.counts.hits, "targets": b.counts.targets, "false_alarms": b.counts.false_alarms,
            "duration_s": b.counts.duration_s, "grid_points": len(result.points),
            "grid": {"gaps": list(GAPS), "min_durations_s": list(MIN_DURATIONS_S),
                     "tau_on": "ictal.training.evaluate_metrics.tau_on_grid"},
            "warnings": result.warnings(min_duration_floor_s), **(extra or {})}
    return save_thresholds(path, b.thresholds, target_fa_per_24h=result.target_fa_per_24h, dataset=dataset,
                           checkpoint_id=checkpoint_id, recordings=recordings, extra=info)


def write_checkpoint_thresholds(checkpoint: Path | str, thresholds_file: Path | str) -> Path:
    """Store a thresholds file's thresholds in the checkpoint's ``metadata.json``.

    The metadata gets ``"thresholds"`` (the ``AlarmThresholds`` fields, as ``detector.checkpoint``
    reads them) and ``"thresholds_provenance"`` (the file's provenance). The file is rewritten
    atomically (temporary file + rename); the weights are not touched.

    Parameters
    ----------
    checkpoint : path
        Checkpoint directory.
    thresholds_file : path
        A file written by :func:`write_thresholds`.

    Returns
    -------
    path : Path
        The metadata file.

    Raises
    ------
    FileNotFoundError
        If the checkpoint has no ``metadata.json``.
    ValueError
        If the metadata is not a JSON object.
    """
    from ictal.alarms.thresholds import load_thresholds_file

    content = load_thresholds_file(thresholds_file)
    meta_path = Path(checkpoint) / "metadata.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path}: checkpoint metadata not found (expected a checkpoint directory)")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if not isinstance(meta, dict):
        raise ValueError(f"{meta_path}: expected a JSON object (found {type(meta).__name__})")
    meta["thresholds"] = content.thresholds.model_dump()
    meta["thresholds_provenance"] = json.loads(content.provenance.model_dump_json())
    tmp = meta_path.with_name(meta_path.name + f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    tmp.replace(meta_path)
    return meta_path
