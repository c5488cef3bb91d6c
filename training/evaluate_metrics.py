"""Figures of an evaluation computed from stored per-sample probabilities (no model involved).

Everything here runs on what ``ictal evaluate`` stored for each recording: the per-sample
probabilities at 256 Hz that the daemon path produced (NaN where no window scored the sample), the
per-sample labels (1 seizure, 0 background, -1 unrated) and the reference seizure events. Re-running
only the alarm post-processor (:class:`ictal.alarms.postprocess.PostProcessor`, the daemon's state machine)
over the stored probabilities gives the events of any other thresholds, which is how the
sensitivity-vs-FA/24h sweep and the threshold tuning work.

Definitions
-----------
- Event scoring is NEDC OVERLAP (NEDC EEG Eval v6.0.0, :mod:`ictal.training.scoring.nedc_overlap`), SEIZ
  label: sensitivity = reference seizures overlapped by a detected event / reference seizures; a
  false alarm is a detected event that overlaps no reference seizure.
- FA/24h = false alarms / total duration of the recordings x 86400 (the NEDC definition). On a
  dataset whose recordings carry unrated time (the rated-window collections) that time is
  background for event scoring, as in NEDC's two-class problem: events there count as false alarms,
  a pessimistic figure.
- Sample-level AUROC and AUPRC use only labelled samples (label 0 or 1) that a window scored (finite
  probability).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ictal.alarms.config import AlarmThresholds
from ictal.alarms.postprocess import DetectedEvent, PostProcessor, events_from_transitions
from ictal.training.datasets.base import SEIZURE, UNKNOWN
from ictal.training.scoring.annotations import Annotation, Event
from ictal.training.scoring.metrics import OnsetLatency, OperatingPoint, onset_latencies, sensitivity_at_fa
from ictal.training.scoring.nedc_common import SECONDS_PER_DAY
from ictal.training.scoring.nedc_overlap import score_file as overlap_score_file

FA_BUDGETS_PER_24H: tuple[float, ...] = (1.0, 2.5, 5.0, 10.0)
"""False-alarm budgets (per 24 h) at which sensitivity is reported."""

TAU_ON_GRID: tuple[float, ...] = tuple(round(x, 2) for x in np.arange(0.05, 0.951, 0.05)) + (0.97, 0.98, 0.99)
"""Fixed part of the tau_on sweep: 0.05 to 0.95 by 0.05, then 0.97, 0.98, 0.99."""

TAU_ON_QUANTILES: tuple[float, ...] = (0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999)
"""Quantiles of the stored probabilities added to the sweep, so that the curve resolves whatever range
the model's probabilities occupy (an untrained model's lie in a narrow band)."""


@dataclass
class ScoredRecording:
    """What evaluation keeps of one recording: the daemon path's probabilities and the reference.

    Attributes
    ----------
    recording_id : str
        File-name-safe id (``training.datasets.base.recording_id_for``).
    duration_s : float
        Duration of the recording in seconds (the EDF's).
    probs : ndarray of float32, shape (n_samples,)
        Per-sample seizure probability at ``rate_hz``; NaN where no window scored the sample (the
        start of a recording shorter than the scheduler's history, or a gap).
    labels : ndarray of int8, shape (n_samples,)
        1 seizure, 0 background, -1 unrated (``training.datasets.labels.build_labels``).
    ref_events : list of Event
        Reference seizures (label ``seiz``), seconds from the start of the recording.
    rate_hz : float
        Rate of ``probs`` and ``labels`` (256 Hz).
    events : list of DetectedEvent
        The events the daemon path raised at the evaluated thresholds.
    usable : ndarray of bool, shape (n_samples,), optional
        False where the daemon withheld the probabilities from the post-processor because the input
        was unusable (``streaming.bed``); None = usable wherever a probability exists.
    """

    recording_id: str
    duration_s: float
    probs: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)
    ref_events: list[Event]
    rate_hz: float = 256.0
    events: list[DetectedEvent] = field(default_factory=list)
    usable: np.ndarray | None = field(default=None, repr=False)

    @property
    def background_only(self) -> bool:
        """True when every sample is labelled background (every alarm on it is a false alarm)."""
        return bool(self.labels.size) and bool(np.all(self.labels == 0))

    @property
    def reference(self) -> Annotation:
        """The reference annotation (seizure events over the recording's duration)."""
        return Annotation(self.duration_s, list(self.ref_events))


def events_from_probs(probs: np.ndarray, rate_hz: float, thresholds: AlarmThresholds,
                      t0_s: float = 0.0, usable: np.ndarray | None = None) -> list[DetectedEvent]:
    """Run the daemon's post-processor over stored probabilities, with the daemon's gaps and suppressions.

    Parameters
    ----------
    probs : ndarray of float, shape (n_samples,)
        Probabilities in [0, 1]; NaN marks samples no window scored.
    rate_hz : float
        Sample rate in Hz.
    thresholds : AlarmThresholds
        Post-processor rules.
    t0_s : float
        Stream time (s) of ``probs[0]``.
    usable : ndarray of bool, shape (n_samples,), optional
        False where the daemon withheld finite probabilities from the post-processor (input unusable).

    Returns
    -------
    events : list of DetectedEvent
        As ``streaming.bed.BedSession`` produces them: each run of finite, usable samples is fed to a
        :class:`PostProcessor`; a run of NaN between two runs is a stream gap (``feed`` closes an open
        event there, ``end_reason="gap"``, and the refractory period carries over); a stretch that
        holds finite but unusable samples is a suppression: the post-processor is finished (an open
        event ends where the usable data ends) and a fresh one starts on the next usable run. With no
        NaN and no unusable sample this equals :func:`ictal.alarms.postprocess.detect_events`.

    Raises
    ------
    ValueError
        If ``probs`` holds values outside [0, 1] (see :meth:`PostProcessor.feed`), or ``usable`` has
        another shape.
    """
    p = np.asarray(probs, dtype=np.float64)
    finite = np.isfinite(p)
    ok = finite.copy()
    if usable is not None:
        usable = np.asarray(usable, dtype=bool)
        if usable.shape != p.shape:
            raise ValueError(f"usable has shape {usable.shape}, expected the shape of probs {p.shape}")
        ok &= usable
    padded = np.concatenate(([False], ok, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    pp = PostProcessor(thresholds)
    transitions = []
    prev_stop: int | None = None
    for start, stop in zip(edges[0::2], edges[1::2], strict=True):
        if prev_stop is not None and finite[prev_stop:start].any():
            transitions += pp.finish()
            pp = PostProcessor(thresholds)
        transitions += pp.feed(t0_s + start / rate_hz, p[start:stop], rate_hz)
        prev_stop = stop
    transitions += pp.finish()
    return events_from_transitions(transitions)


def hypothesis(events: Sequence[DetectedEvent], duration_s: float) -> Annotation:
    """Hypothesis annotation of detected events (label ``seiz``, confidence = event peak probability).

    Parameters
    ----------
    events : sequence of DetectedEvent
    duration_s : float
        Recording duration in seconds; events are clipped to ``[0, duration_s]`` and events of zero
        length after clipping dropped (a csv_bi event must end within the recording).

    Returns
    -------
    Annotation
    """
    out = []
    for e in events:
        start, stop = max(0.0, e.onset_s), min(duration_s, e.offset_s)
        if stop > start:
            out.append(Event(start, stop, "seiz", float(min(1.0, max(0.0, e.peak)))))
    return Annotation(duration_s, out)


@dataclass(frozen=True)
class EventCounts:
    """OVERLAP counts (SEIZ) summed over recordings, and the derived figures.

    Attributes
    ----------
    targets, hits, false_alarms : int
        Reference seizures, detected ones, and detected events overlapping none.
    duration_s : float
        Total duration of the recordings in seconds.
    """

    targets: int
    hits: int
    false_alarms: int
    duration_s: float

    @property
    def sensitivity(self) -> float:
        """hits / targets (NaN without targets)."""
        return self.hits / self.targets if self.targets else float("nan")

    @property
    def fa_per_24h(self) -> float:
        """False alarms / duration x 86400 (NaN for zero duration)."""
        return self.false_alarms / self.duration_s * SECONDS_PER_DAY if self.duration_s > 0 else float("nan")


def overlap_counts(recordings: Iterable[ScoredRecording],
                   events_per_recording: Iterable[Sequence[DetectedEvent]]) -> EventCounts:
    """NEDC OVERLAP SEIZ counts of detected events against the references.

    Parameters
    ----------
    recordings : iterable of ScoredRecording
    events_per_recording : iterable of sequence of DetectedEvent
        The detected events of each recording, same order.

    Returns
    -------
    EventCounts
    """
    targets = hits = fas = 0
    duration = 0.0
    for rec, events in zip(recordings, events_per_recording, strict=True):
        counts = overlap_score_file(rec.reference, hypothesis(events, rec.duration_s))["seiz"]
        targets += int(counts.targets)
        hits += int(counts.hits)
        fas += int(counts.false_alarms)
        duration += rec.duration_s
    return EventCounts(targets, hits, fas, duration)


@dataclass(frozen=True)
class SweepPoint:
    """One operating point of a threshold sweep.

    Attributes
    ----------
    thresholds : AlarmThresholds
        The rules of this point.
    counts : EventCounts
        OVERLAP counts over the dataset.
    """

    thresholds: AlarmThresholds
    counts: EventCounts

    @property
    def tau_on(self) -> float:
        """Onset threshold."""
        return self.thresholds.tau_on

    @property
    def sensitivity(self) -> float:
        """OVERLAP sensitivity (fraction; NaN without reference seizures)."""
        return self.counts.sensitivity

    @property
    def fa_per_24h(self) -> float:
        """False alarms per 24 h."""
        return self.counts.fa_per_24h

    def to_dict(self) -> dict:
        """JSON-ready figures of this point (NaN as None)."""
        th = self.thresholds
        return _nan_to_none({
            "tau_on": th.tau_on, "tau_off": th.tau_off, "min_duration_s": th.min_duration_s,
            "targets": self.counts.targets, "hits": self.counts.hits, "false_alarms": self.counts.false_alarms,
            "sensitivity": self.sensitivity, "fa_per_24h": self.fa_per_24h,
        })


def _nan_to_none(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def tau_on_grid(recordings: Sequence[ScoredRecording], extra: Iterable[float] = ()) -> list[float]:
    """The tau_on values of a sweep: :data:`TAU_ON_GRID`, quantiles of the probabilities, and ``extra``.

    Parameters
    ----------
    recordings : sequence of ScoredRecording
        Their finite probabilities give the :data:`TAU_ON_QUANTILES` (rounded to 4 decimals).
    extra : iterable of float
        Further values (e.g. the evaluated thresholds' tau_on).

    Returns
    -------
    taus : list of float
        Sorted, unique, each in [0.001, 1) (``AlarmThresholds`` needs the open interval (0, 1)).
    """
    values = set(TAU_ON_GRID) | {float(x) for x in extra}
    finite = [r.probs[np.isfinite(r.probs)] for r in recordings]
    pooled = np.concatenate(finite) if finite else np.zeros(0)
    if pooled.size:
        values |= {round(float(q), 4) for q in np.quantile(pooled, TAU_ON_QUANTILES)}
    return sorted(v for v in values if 1e-3 <= v < 1.0)


def with_tau_on(base: AlarmThresholds, tau_on: float, gap: float | None = None,
                min_duration_s: float | None = None) -> AlarmThresholds:
    """``base`` with another tau_on, keeping the hysteresis gap (tau_on - tau_off) when possible.

    Parameters
    ----------
    base : AlarmThresholds
    tau_on : float
        In (0, 1).
    gap : float, optional
        tau_on - tau_off; default ``base.tau_on - base.tau_off``. tau_off is floored at
        ``tau_on / 2`` when the gap would take it to 0 or below (the model's probabilities must be
        able to fall under it).
    min_duration_s : float, optional
        Default ``base.min_duration_s``.

    Returns
    -------
    AlarmThresholds
    """
    gap = base.tau_on - base.tau_off if gap is None else gap
    tau_off = tau_on - gap
    if tau_off <= 0.0:
        tau_off = tau_on / 2
    update = {"tau_on": tau_on, "tau_off": max(round(tau_off, 6), tau_on / 2)}
    if min_duration_s is not None:
        update["min_duration_s"] = min_duration_s
    return AlarmThresholds.model_validate({**base.model_dump(), **update})


def sweep(recordings: Sequence[ScoredRecording], thresholds_list: Iterable[AlarmThresholds]) -> list[SweepPoint]:
    """Score every set of thresholds by re-running the post-processor on the stored probabilities.

    Parameters
    ----------
    recordings : sequence of ScoredRecording
    thresholds_list : iterable of AlarmThresholds

    Returns
    -------
    points : list of SweepPoint
        One per thresholds, same order.
    """
    points = []
    for th in thresholds_list:
        events = [events_from_probs(r.probs, r.rate_hz, th, usable=r.usable) for r in recordings]
        points.append(SweepPoint(th, overlap_counts(recordings, events)))
    return points


def sensitivity_at_budgets(points: Sequence[SweepPoint],
                           budgets: Sequence[float] = FA_BUDGETS_PER_24H) -> dict[float, SweepPoint | None]:
    """The most sensitive sweep point within each false-alarm budget.

    Parameters
    ----------
    points : sequence of SweepPoint
    budgets : sequence of float
        FA/24h budgets.

    Returns
    -------
    best : dict of float to SweepPoint or None
        Per budget, the point of highest sensitivity with ``fa_per_24h <= budget`` (ties: lower
        FA/24h, then higher tau_on), as :func:`ictal.training.scoring.metrics.sensitivity_at_fa` chooses;
        None when no point is within the budget or the dataset has no reference seizure.
    """
    usable = [p for p in points if not math.isnan(p.sensitivity)]
    by_key = {(p.tau_on, p.sensitivity, p.fa_per_24h): p for p in usable}
    ops = [OperatingPoint(p.tau_on, p.sensitivity, p.fa_per_24h) for p in usable]
    out: dict[float, SweepPoint | None] = {}
    for budget in budgets:
        op = sensitivity_at_fa(ops, budget) if ops else None
        out[budget] = None if op is None else by_key[(op.threshold, op.sensitivity, op.fa_per_24h)]
    return out


@dataclass(frozen=True)
class DaemonEvent(DetectedEvent):
    """A detected event as the daemon raised it, with the time its onset alarm left the daemon.

    Attributes
    ----------
    window_end_s : float
        Stream time (s) of the end of the scored window whose probabilities completed the minimum
        duration: the signal time at which the onset alarm leaves the daemon (``AlarmEvent.window_end_s``,
        ``detector.output_position``). It lies ``lookahead_s`` to ``lookahead_s + hop_s`` after
        ``raised_s``. NaN when unknown (events re-derived from stored probabilities by
        :func:`events_from_probs` carry no window).
    """

    window_end_s: float = float("nan")


def alarm_leaves_s(event: DetectedEvent) -> float:
    """Signal time (s) at which the event's onset alarm leaves the daemon; NaN when the event does not say."""
    return float(getattr(event, "window_end_s", float("nan")))


@dataclass(frozen=True)
class SeizureLatency:
    """Latencies of one detected reference seizure (seconds of signal time).

    Attributes
    ----------
    recording_id : str
    seizure_onset_s : float
        Annotated onset (reference).
    event_onset_s : float
        Hypothesis onset: when the probability first crossed tau_on for the detecting event.
    min_duration_met_s : float
        Stream time of the sample that completed the minimum duration (``DetectedEvent.raised_s``;
        the event onset when unknown).
    alarm_leaves_s : float
        Signal time at which the onset alarm leaves the daemon: end of the scored window that
        completed the minimum duration (``window_end_s``, which includes the checkpoint's lookahead).
        NaN when the event does not carry it.
    """

    recording_id: str
    seizure_onset_s: float
    event_onset_s: float
    min_duration_met_s: float
    alarm_leaves_s: float

    @property
    def latency_s(self) -> float:
        """Alarm latency: ``alarm_leaves_s - seizure_onset_s`` (negative: alarm before the annotated
        onset; NaN when the alarm time is unknown). The daemon adds its compute time on top."""
        return self.alarm_leaves_s - self.seizure_onset_s

    @property
    def hypothesis_onset_latency_s(self) -> float:
        """The classic onset latency of event scoring: hypothesis onset minus reference onset.

        It ignores the minimum duration, the hop and the lookahead, so it is not when a nurse could
        know; :attr:`latency_s` is.
        """
        return self.event_onset_s - self.seizure_onset_s


def seizure_latencies(rec: ScoredRecording, events: Sequence[DetectedEvent]) -> list[SeizureLatency]:
    """Latencies of every detected reference seizure of one recording.

    A seizure is detected by the events that overlap it (OVERLAP); the detecting event is chosen by
    :func:`ictal.training.scoring.metrics.onset_latencies` (the earliest starting at or after the onset,
    else the earliest overlapping). Its alarm latency is the time its onset alarm leaves the daemon
    (:func:`alarm_leaves_s`) minus the annotated onset.

    Parameters
    ----------
    rec : ScoredRecording
    events : sequence of DetectedEvent
        Events of the recording; :class:`DaemonEvent` carries the alarm time, other events give a
        NaN :attr:`SeizureLatency.latency_s`.

    Returns
    -------
    list of SeizureLatency
        Onset order; undetected seizures are absent.
    """
    by_onset = {}
    for e in events:
        by_onset.setdefault(e.onset_s, e)
    hyp = [Event(e.onset_s, e.offset_s, "seiz") for e in events if e.offset_s > e.onset_s]
    out = []
    for lat in onset_latencies(list(rec.ref_events), hyp):
        assert isinstance(lat, OnsetLatency)
        event = by_onset[lat.alarm_s]
        met = event.raised_s if math.isfinite(event.raised_s) else event.onset_s
        out.append(SeizureLatency(rec.recording_id, lat.onset_s, event.onset_s, met, alarm_leaves_s(event)))
    return out


@dataclass(frozen=True)
class SampleAuc:
    """Sample-level ranking figures over labelled, scored samples.

    Attributes
    ----------
    auroc, auprc : float
        Area under the ROC curve and average precision (NaN unless both classes are present).
    n_positive, n_negative : int
        Seizure and background samples used.
    n_unscored : int
        Labelled samples without a probability (left out).
    """

    auroc: float
    auprc: float
    n_positive: int
    n_negative: int
    n_unscored: int

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN as None)."""
        return _nan_to_none(dict(auroc=self.auroc, auprc=self.auprc, n_positive=self.n_positive,
                                 n_negative=self.n_negative, n_unscored=self.n_unscored))


def auroc_auprc(scores: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """AUROC (Mann-Whitney, ties counted half) and average precision of scores against binary targets.

    Parameters
    ----------
    scores : ndarray of float, shape (n,)
    targets : ndarray of bool or int, shape (n,)
        1/True for positives.

    Returns
    -------
    auroc, auprc : float
        ``auroc`` = P(score of a random positive > score of a random negative) + 0.5 P(equal);
        ``auprc`` = sum over distinct thresholds t (descending) of (R(t) - R(t_prev)) P(t), the
        step-wise average precision (as scikit-learn's ``average_precision_score``). NaN when a class
        is absent.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(targets).astype(bool)
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return float("nan"), float("nan")
    order = np.argsort(s, kind="mergesort")
    s_sorted = s[order]
    # average ranks (1-based) with ties
    boundaries = np.flatnonzero(np.diff(s_sorted)) + 1
    starts = np.concatenate(([0], boundaries))
    stops = np.concatenate((boundaries, [s.size]))
    avg_rank = (starts + stops + 1) / 2.0
    ranks = np.repeat(avg_rank, stops - starts)
    rank_sum_pos = float(ranks[y[order]].sum())
    auroc = (rank_sum_pos - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    # average precision over distinct thresholds, descending
    y_desc = y[order][::-1]
    s_desc = s_sorted[::-1]
    tp = np.cumsum(y_desc)
    fp = np.cumsum(~y_desc)
    last = np.concatenate((np.flatnonzero(np.diff(s_desc)), [s.size - 1]))
    tp_t, fp_t = tp[last], fp[last]
    precision = tp_t / (tp_t + fp_t)
    recall = tp_t / n_pos
    recall_prev = np.concatenate(([0.0], recall[:-1]))
    auprc = float(np.sum((recall - recall_prev) * precision))
    return float(auroc), auprc


def sample_auc(recordings: Iterable[ScoredRecording]) -> SampleAuc:
    """Sample-level AUROC/AUPRC over the labelled, scored samples of every recording (pooled)."""
    scores, targets = [], []
    unscored = 0
    for rec in recordings:
        labelled = rec.labels != UNKNOWN
        finite = np.isfinite(rec.probs)
        unscored += int(np.count_nonzero(labelled & ~finite))
        keep = labelled & finite
        scores.append(rec.probs[keep])
        targets.append(rec.labels[keep] == SEIZURE)
    s = np.concatenate(scores) if scores else np.zeros(0)
    y = np.concatenate(targets) if targets else np.zeros(0, dtype=bool)
    auroc, auprc = auroc_auprc(s, y)
    return SampleAuc(auroc, auprc, int(y.sum()), int(y.size - y.sum()), unscored)
