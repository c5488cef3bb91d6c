"""Segment-level report of the rated-window collections: which expert-rated windows were flagged, by class.

The rated-window collections (``labelled/manifest.csv`` of ../shared/data: IIIC, Jing et al.,
Neurology 2023; HMS, Kaggle, CC BY-NC 4.0) label only short windows of each file with the plurality
class of several experts' votes: seizure, or one of the hard negatives of ICU EEG (LPD, GPD, LRDA,
GRDA, other). Event scoring says little about them (one 10 s window per file); this report asks, per
rated window, whether the detector flagged it.

Definition of "flagged"
-----------------------
For a rated window ``[start_s, stop_s)`` of a recording, with the daemon path's per-sample
probabilities ``p`` at 256 Hz and the events raised at the evaluated thresholds:

- ``alarm``: an event overlaps the window, i.e. ``event.onset_s < stop_s`` and
  ``event.offset_s > start_s`` (an event raised by activity just before the window and still running in
  it counts);
- ``above_tau_on``: some scored sample ``i`` with ``start_s <= i / 256 < stop_s`` has ``p[i] >= tau_on``
  (the post-processor's "above tau_on"), whether or not the minimum duration was then met;
- ``flagged = alarm or above_tau_on``.

A window none of whose samples was scored (the file is shorter than the scheduler's history, or the
span ends before the first probability at ``min_history_s - hop_s - lookahead_s``) is ``unscored``
and left out of the rates. Rates per class are flagged / scored windows; for seizure windows that is
a segment-level sensitivity, for the other classes a false-flag rate on hard negatives.

Threshold-free separation (rated-segment mode)
----------------------------------------------
For each hard-negative class (:data:`HARD_NEGATIVES`) the report gives the AUC of seizure against
that class with each scored rated span scored by its maximum probability ``max_prob``: the
probability that a random seizure span has a higher maximum than a random span of the class (ties
count half; Mann-Whitney). Spans of one recording are not independent (hms_1628180742 has nine
overlapping seizure spans), so the 95% interval is a **cluster bootstrap over recordings**: each of
:data:`AUC_BOOTSTRAP_RESAMPLES` resamples draws, with replacement, as many seizure recordings as
there are and as many recordings of the class as there are, pools their spans and recomputes the
AUC; the interval is the 2.5th and 97.5th percentiles (percentile method, fixed seed). With a
handful of seizure recordings the interval is wide and itself rough; ``n_seizure_recordings`` says
how many there were.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ictal.alarms.config import AlarmThresholds
from ictal.alarms.postprocess import DetectedEvent
from ictal.training.datasets.base import recording_id_for

CLASSES: tuple[str, ...] = ("seizure", "lpd", "gpd", "lrda", "grda", "other")
"""Plurality classes of the manifest, seizure first; any other value (e.g. ``tie``) is reported as is."""

HARD_NEGATIVES: tuple[str, ...] = ("lpd", "gpd", "lrda", "grda", "other")
"""Classes compared with seizure by the threshold-free AUC (the IIIC patterns that are not seizures)."""

AUC_BOOTSTRAP_RESAMPLES: int = 2000
"""Cluster-bootstrap resamples of the AUC interval: enough for stable 2.5/97.5 percentiles (Efron &
Tibshirani 1993 advise 1000 or more for percentile intervals) at a fraction of a second per class."""

AUC_BOOTSTRAP_SEED: int = 0
"""Seed of the bootstrap, so a report is reproducible."""


@dataclass(frozen=True)
class RatedWindow:
    """One expert-rated window of a manifest row.

    Attributes
    ----------
    recording_id : str
        Id of the recording (``recording_id_for(path, root)``, as the dataset discovery names it).
    start_s, stop_s : float
        The window, seconds from the start of the file.
    label : str
        Plurality class of the expert votes (``seizure``, ``lpd``, ``gpd``, ``lrda``, ``grda``,
        ``other``; ``tie`` where the manifest says so).
    """

    recording_id: str
    start_s: float
    stop_s: float
    label: str


def read_rated_windows(root: Path | str) -> list[RatedWindow]:
    """Read the rated windows of ``root/labelled/manifest.csv``.

    Parameters
    ----------
    root : path
        Dataset root holding ``labelled/manifest.csv`` (columns ``file``, ``rated_windows`` as
        ``"20-30;26-36"`` in seconds, ``plurality``).

    Returns
    -------
    windows : list of RatedWindow
        In manifest order.

    Raises
    ------
    FileNotFoundError
        If the manifest is absent.
    ValueError
        If a column is missing or a window is not ``start-stop`` with start < stop (naming the row).
    """
    root = Path(root)
    manifest = root / "labelled" / "manifest.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: no manifest of rated windows (expected labelled/manifest.csv)")
    out: list[RatedWindow] = []
    with open(manifest, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("file", "rated_windows", "plurality") if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{manifest}: missing column(s) {missing} (found: {reader.fieldnames})")
        for line, row in enumerate(reader, start=2):
            rid = recording_id_for(root / row["file"], root)
            for text in row["rated_windows"].split(";"):
                text = text.strip()
                if not text:
                    continue
                lo, sep, hi = text.partition("-")
                try:
                    start, stop = float(lo), float(hi)
                except ValueError:
                    start = stop = float("nan")
                if not sep or not (math.isfinite(start) and math.isfinite(stop)) or stop <= start:
                    raise ValueError(
                        f"{manifest}:{line}: rated window {text!r}, expected 'start-stop' in seconds with start < stop"
                    )
                out.append(RatedWindow(rid, start, stop, row["plurality"].strip().lower()))
    return out


@dataclass(frozen=True)
class WindowResult:
    """Whether one rated window was flagged (definitions in the module docstring).

    Attributes
    ----------
    recording_id, start_s, stop_s, label
        The rated window.
    scored : bool
        Some sample of the window has a probability.
    max_prob : float or None
        Highest probability in the window (None when unscored).
    above_tau_on, alarm, flagged : bool
    """

    recording_id: str
    start_s: float
    stop_s: float
    label: str
    scored: bool
    max_prob: float | None
    above_tau_on: bool
    alarm: bool
    flagged: bool


def flag_window(window: RatedWindow, probs: np.ndarray, rate_hz: float, events: Sequence[DetectedEvent],
                tau_on: float) -> WindowResult:
    """Decide whether one rated window was flagged.

    Parameters
    ----------
    window : RatedWindow
    probs : ndarray of float, shape (n_samples,)
        The recording's per-sample probabilities at ``rate_hz`` (NaN = unscored).
    rate_hz : float
        Rate of ``probs`` in Hz.
    events : sequence of DetectedEvent
        Events raised on the recording.
    tau_on : float
        Onset threshold in force.

    Returns
    -------
    WindowResult
    """
    lo = max(0, math.ceil(window.start_s * rate_hz - 1e-9))
    hi = min(len(probs), math.ceil(window.stop_s * rate_hz - 1e-9))
    seg = np.asarray(probs[lo:hi], dtype=np.float64)
    seg = seg[np.isfinite(seg)]
    scored = seg.size > 0
    max_prob = float(seg.max()) if scored else None
    above = bool(scored and max_prob >= tau_on)
    alarm = any(e.onset_s < window.stop_s and e.offset_s > window.start_s for e in events)
    return WindowResult(window.recording_id, window.start_s, window.stop_s, window.label, scored,
                        max_prob, above, alarm, bool(alarm or above))


@dataclass(frozen=True)
class ClassRow:
    """Counts of one class: rated windows, scored ones, flagged ones (and why) and the flag rate."""

    label: str
    windows: int
    scored: int
    flagged: int
    alarm: int
    above_tau_on: int

    @property
    def rate(self) -> float:
        """flagged / scored (NaN when none was scored)."""
        return self.flagged / self.scored if self.scored else float("nan")


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Mann-Whitney AUC, P(pos > neg) + 0.5 P(pos == neg); NaN when a side is empty."""
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    equal = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * equal) / (pos.size * neg.size))


@dataclass(frozen=True)
class ClassAuc:
    """Threshold-free separation of seizure spans from the spans of one hard-negative class.

    Attributes
    ----------
    label : str
        The hard-negative class.
    n_seizure_spans, n_seizure_recordings : int
        Scored seizure spans, and the recordings they come from (the bootstrap's clusters).
    n_spans, n_recordings : int
        Scored spans of ``label``, and their recordings.
    auc : float
        P(max_prob of a seizure span > that of a ``label`` span), ties half; NaN when a side is empty.
    ci_low, ci_high : float
        95% cluster-bootstrap percentile interval (module docstring); NaN when ``auc`` is.
    """

    label: str
    n_seizure_spans: int
    n_seizure_recordings: int
    n_spans: int
    n_recordings: int
    auc: float
    ci_low: float
    ci_high: float


def auc_vs_seizure(results: Sequence[WindowResult], label: str, n_resamples: int = AUC_BOOTSTRAP_RESAMPLES,
                   seed: int = AUC_BOOTSTRAP_SEED) -> ClassAuc:
    """AUC of seizure spans against ``label`` spans by per-span maximum probability, with its interval.

    Parameters
    ----------
    results : sequence of WindowResult
        Flagged rated spans; unscored ones are left out.
    label : str
        The negative class (e.g. ``"lpd"``).
    n_resamples : int
        Bootstrap resamples (see the module docstring for the cluster bootstrap over recordings).
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    ClassAuc
    """
    def groups(name: str) -> dict[str, np.ndarray]:
        by_rec: dict[str, list[float]] = {}
        for w in results:
            if w.label == name and w.scored and w.max_prob is not None:
                by_rec.setdefault(w.recording_id, []).append(float(w.max_prob))
        return {k: np.asarray(v, dtype=np.float64) for k, v in by_rec.items()}

    pos, neg = groups("seizure"), groups(label)
    pos_all = np.concatenate(list(pos.values())) if pos else np.zeros(0)
    neg_all = np.concatenate(list(neg.values())) if neg else np.zeros(0)
    auc = _auc(pos_all, neg_all)
    lo = hi = float("nan")
    if not math.isnan(auc) and n_resamples > 0:
        rng = np.random.default_rng(seed)
        pos_list, neg_list = list(pos.values()), list(neg.values())
        boot = np.empty(n_resamples)
        for b in range(n_resamples):
            p = np.concatenate([pos_list[i] for i in rng.integers(0, len(pos_list), len(pos_list))])
            n = np.concatenate([neg_list[i] for i in rng.integers(0, len(neg_list), len(neg_list))])
            boot[b] = _auc(p, n)
        lo, hi = (float(x) for x in np.percentile(boot, [2.5, 97.5]))
    return ClassAuc(label, int(pos_all.size), len(pos), int(neg_all.size), len(neg), auc, lo, hi)


@dataclass
class SegmentReport:
    """The segment-level report.

    Attributes
    ----------
    tau_on : float
        Onset threshold used for ``above_tau_on``.
    min_history_s : float or None
        History after which the scheduler scored a left-padded window (recorded for reproducibility).
    windows : list of WindowResult
    classes : list of ClassRow
        One row per class present, in :data:`CLASSES` order then alphabetical.
    aucs : list of ClassAuc
        Seizure against each hard-negative class present (:func:`auc_vs_seizure`).
    """

    tau_on: float
    min_history_s: float | None
    windows: list[WindowResult]
    classes: list[ClassRow]
    aucs: list[ClassAuc] = field(default_factory=list)

    def auc(self, label: str) -> ClassAuc | None:
        """The seizure-vs-``label`` AUC, or None."""
        return next((a for a in self.aucs if a.label == label), None)

    def row(self, label: str) -> ClassRow | None:
        """The row of a class, or None."""
        return next((c for c in self.classes if c.label == label), None)

    @property
    def seizure_vs_rest(self) -> dict[str, float | int | None]:
        """Seizure windows flagged (segment sensitivity) vs non-seizure windows flagged (false-flag rate)."""
        sz = [w for w in self.windows if w.scored and w.label == "seizure"]
        rest = [w for w in self.windows if w.scored and w.label != "seizure"]

        def rate(ws: list[WindowResult]) -> float | None:
            return sum(w.flagged for w in ws) / len(ws) if ws else None

        return {"seizure_windows": len(sz), "seizure_flagged": sum(w.flagged for w in sz),
                "seizure_flag_rate": rate(sz), "other_windows": len(rest),
                "other_flagged": sum(w.flagged for w in rest), "other_flag_rate": rate(rest)}

    def to_dict(self) -> dict:
        """JSON-ready report."""
        return {
            "definition": "flagged = an event overlaps [start_s, stop_s) or some scored sample in it has "
                          "p >= tau_on; rate = flagged / scored windows",
            "tau_on": self.tau_on,
            "min_history_s": self.min_history_s,
            "classes": [{**asdict(c), "rate": None if math.isnan(c.rate) else c.rate} for c in self.classes],
            "seizure_vs_rest": self.seizure_vs_rest,
            "auc_definition": "seizure vs each hard-negative class, each scored rated span scored by its maximum "
                              "probability (Mann-Whitney, ties half); 95% interval: percentile cluster bootstrap "
                              f"over recordings, {AUC_BOOTSTRAP_RESAMPLES} resamples, seed {AUC_BOOTSTRAP_SEED}",
            "auc_vs_seizure": [{k: (None if isinstance(v, float) and math.isnan(v) else v)
                                for k, v in asdict(a).items()} for a in self.aucs],
            "windows": [asdict(w) for w in self.windows],
        }


def segment_report(windows: Iterable[RatedWindow], probs: dict[str, np.ndarray],
                   events: dict[str, Sequence[DetectedEvent]], thresholds: AlarmThresholds,
                   rate_hz: float = 256.0, min_history_s: float | None = None) -> SegmentReport:
    """Flag every rated window whose recording was evaluated and count by class.

    Parameters
    ----------
    windows : iterable of RatedWindow
    probs : dict of str to ndarray of shape (n_samples,)
        Per-recording probabilities by recording id; windows of recordings absent here are skipped.
    events : dict of str to sequence of DetectedEvent
        Per-recording events by recording id.
    thresholds : AlarmThresholds
        Thresholds in force (``tau_on`` defines ``above_tau_on``).
    rate_hz : float
        Rate of the probabilities.
    min_history_s : float, optional
        Recorded in the report.

    Returns
    -------
    SegmentReport
        With the per-class counts and the seizure-vs-class AUCs (module docstring).
    """
    results = [flag_window(w, probs[w.recording_id], rate_hz, events.get(w.recording_id, []), thresholds.tau_on)
               for w in windows if w.recording_id in probs]
    labels = sorted({r.label for r in results}, key=lambda x: (CLASSES.index(x) if x in CLASSES else len(CLASSES), x))
    classes = []
    for label in labels:
        rs = [r for r in results if r.label == label]
        scored = [r for r in rs if r.scored]
        classes.append(ClassRow(label, len(rs), len(scored), sum(r.flagged for r in scored),
                                sum(r.alarm for r in scored), sum(r.above_tau_on for r in scored)))
    aucs = [auc_vs_seizure(results, label) for label in labels if label in HARD_NEGATIVES]
    return SegmentReport(thresholds.tau_on, min_history_s, results, classes, aucs)


def format_markdown(report: SegmentReport) -> str:
    """Markdown tables: per-class counts, seizure-vs-class AUCs, and the per-window results."""
    lines = [
        "| class | rated windows | scored | flagged | by alarm | above tau_on | flag rate |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in report.classes:
        rate = "n/a" if math.isnan(c.rate) else f"{100 * c.rate:.1f}%"
        lines.append(f"| {c.label} | {c.windows} | {c.scored} | {c.flagged} | {c.alarm} | {c.above_tau_on} | {rate} |")
    if report.aucs:
        lines += ["", "Seizure vs each hard-negative class, threshold-free (per-span maximum probability; 95% "
                  f"percentile cluster bootstrap over recordings, {AUC_BOOTSTRAP_RESAMPLES} resamples):", "",
                  "| seizure vs | AUC | 95% interval | seizure spans (recordings) | class spans (recordings) |",
                  "|---|---:|---|---:|---:|"]
        for a in report.aucs:
            auc = "n/a" if math.isnan(a.auc) else f"{a.auc:.3f}"
            ci = "n/a" if math.isnan(a.ci_low) else f"{a.ci_low:.3f}-{a.ci_high:.3f}"
            lines.append(f"| {a.label} | {auc} | {ci} | {a.n_seizure_spans} ({a.n_seizure_recordings}) | "
                         f"{a.n_spans} ({a.n_recordings}) |")
    lines += ["", "| recording | window (s) | class | max p | alarm | above tau_on | flagged |",
              "|---|---|---|---:|---|---|---|"]
    for w in report.windows:
        mp = "unscored" if w.max_prob is None else f"{w.max_prob:.3f}"
        lines.append(f"| {w.recording_id} | {w.start_s:g}-{w.stop_s:g} | {w.label} | {mp} | "
                     f"{'yes' if w.alarm else 'no'} | {'yes' if w.above_tau_on else 'no'} | "
                     f"{'**yes**' if w.flagged else 'no'} |")
    return "\n".join(lines)
