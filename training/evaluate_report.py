"""The evaluation report: figures of an evaluated dataset as JSON and Markdown, with the plots.

JSON layout (``report.json``; ratios are fractions, times in seconds, rates per 24 h; null where a
figure is undefined)::

    {
      "meta": {checkpoint, checkpoint_id, dataset, data_format, hop_s, min_history_s, lookahead_s,
               first_probability_s (= max(0, min_history_s - hop_s - lookahead_s)), thresholds,
               thresholds_source, n_recordings (selected), n_scored, n_unscored,
               unscored: [{recording_id, status, reason, ref_seizures}], unscored_by_status: {status: n},
               unscored_ref_seizures, duration_s (scored recordings), skipped: [[path, reason]] (files
               discovery left out), elapsed_s,
               rerun_mismatches: [recording ids whose re-run post-processor differs from the daemon],
               provenance: {known, n_recordings, n_train, train, n_evaluation, evaluation, n_validation,
                            validation, warning} (the selected recordings against the checkpoint's
                            training data, training.provenance) or null,
               mode ("window" | "stream" | "hypotheses"), probabilities (false: no probability exists,
               e.g. another detector's events only: sample figures, calibration and sweep are null/empty),
               hypotheses: {folder, probabilities, probs_rate_hz} (ictal evaluate --hypotheses) or null,
               bids: {ref_list, hyp_list} (list files of the SzCORE _events.tsv trees)},
      "scores": {... training.scoring.report JSON: nedc {dpalign, epoch, overlap, taes}, szcore,
                 szcore_evaluation (per-patient mean +- std of the SzCORE sample and event figures) ...},
      "sample_level": {auroc, auprc, n_positive, n_negative, n_unscored},
      "confidence_intervals": {method, unit ("patient"), confidence_level, n_resamples, seed, min_units,
                               overlap_sensitivity | overlap_fa_per_24h | auroc:
                                   {value, lo, hi, n_units, note},
                               exact: {method, overlap_sensitivity (Clopper-Pearson, n_units = seizures),
                                       overlap_fa_per_24h (Poisson, n_units = false alarms)}}
                              (training.scoring.bootstrap; lo/hi null and note set with too few patients; the
                              exact intervals exist whatever the number of patients),
      "calibration": {definition, pooled: {ece, brier, brier_reference, max_calibration_error, n, n_positive,
                      p999_seizure, bins: [{lo, hi, n, confidence, frequency}]},
                      by_class: {class of the rated windows: same layout} (rated_windows data only)}
                     (training.calibration; labelled, scored samples = the served probabilities),
      "sensitivity_at_fa": [{budget_fa_per_24h, point: {tau_on, tau_off, min_duration_s, targets, hits,
                             false_alarms, sensitivity, fa_per_24h} | null}],
      "sweep": [points as above, for every tau_on of the sweep],
      "latency": {definition, n, p50_s, p90_s, n_without_alarm_time,
                  hypothesis_onset: {definition, n, p50_s, p90_s},
                  seizures: [{recording_id, seizure_onset_s, event_onset_s, min_duration_met_s,
                              alarm_leaves_s, latency_s, hypothesis_onset_latency_s}]},
      "background_only": {n_recordings, duration_s, false_alarms, fa_per_24h,
                          fa_per_24h_exact: {value, lo, hi, n_units, note} (exact Poisson 95 %)},
      "recordings": [{recording_id, status, reason, duration_s, signal_s, first_prob_s, scored_fraction,
                      unusable_s, held_samples, ref_seizures, events, false_alarms, hits, max_prob,
                      quality_events, timeline}]  (every selected recording; counts null when unscored),
      "segments": segment report (training.segments: per-class counts, seizure-vs-class AUCs, spans)
                  or null,
      "plots": {"sensitivity_vs_fa": path | null, "reliability": path | null,
                "timelines": {recording_id: path}}   (null: no probabilities to draw)
    }

Unscored recordings (``training.evaluate``: too short, unusable, not evaluated) are listed in
``meta.unscored`` and ``recordings`` and left out of every figure; their rated spans are ``unscored``
in the segment report.

Alarm latency
-------------
``latency_s`` = the signal time at which the onset alarm leaves the daemon (``window_end_s`` of the
onset event: the end of the scored window that completed the minimum duration, which lies
``lookahead_s`` after that window's served span) minus the annotated onset; p50 and p90 over the
detected reference seizures (numpy's linear interpolation). The daemon's compute time comes on
top. ``hypothesis_onset_latency_s`` is the classic figure of event scoring (hypothesis onset -
reference onset), kept under its own name.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ictal.alarms.config import AlarmThresholds
from ictal.detector import FS_HZ
from ictal.detector.output_position import first_served_index
from ictal.training.calibration import calibration, recordings_calibration
from ictal.training.datasets.base import Skipped
from ictal.training.evaluate_metrics import (
    FA_BUDGETS_PER_24H,
    EventCounts,
    overlap_counts,
    sample_auc,
    seizure_latencies,
    sensitivity_at_budgets,
    sweep,
    tau_on_grid,
    with_tau_on,
)
from ictal.training.scoring.bootstrap import (
    CONFIDENCE_LEVEL,
    MIN_UNITS,
    N_RESAMPLES,
    SEED,
    auroc_interval,
    exact_proportion_interval,
    format_interval,
    poisson_rate_interval,
    ratio_interval,
)
from ictal.training.scoring.bootstrap import METHOD as CI_METHOD
from ictal.training.scoring.metrics import summarise_latencies
from ictal.training.scoring.nedc_common import SECONDS_PER_DAY
from ictal.training.scoring.report import score_pairs
from ictal.training.segments import SegmentReport, read_rated_windows, segment_report
from ictal.training.segments import format_markdown as segments_markdown

ATTRIBUTION = (
    "Data: IIIC (Jing et al., Neurology 2023), EEGMAT (Zyma et al., Data 2019, PhysioNet), "
    "HMS (Kaggle, CC BY-NC 4.0, research use only); ODC-By 1.0 where applicable."
)


def _none(x: Any) -> Any:
    return None if isinstance(x, float) and math.isnan(x) else x


@dataclass
class EvaluationReport:
    """Everything ``report.json`` holds (layout in the module docstring)."""

    meta: dict[str, Any]
    scores: dict[str, Any]
    sample_level: dict[str, Any]
    sensitivity_at_fa: list[dict[str, Any]]
    sweep: list[dict[str, Any]]
    latency: dict[str, Any]
    background_only: dict[str, Any]
    recordings: list[dict[str, Any]]
    segments: SegmentReport | None = None
    plots: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    confidence_intervals: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON layout."""
        return {
            "meta": self.meta, "scores": self.scores, "sample_level": self.sample_level,
            "sensitivity_at_fa": self.sensitivity_at_fa, "sweep": self.sweep, "latency": self.latency,
            "background_only": self.background_only, "recordings": self.recordings,
            "segments": None if self.segments is None else self.segments.to_dict(), "plots": self.plots,
            "calibration": self.calibration, "confidence_intervals": self.confidence_intervals,
        }


def build_report(evaluated: Sequence, thresholds: AlarmThresholds, *, out_dir: Path, checkpoint: str,
                 checkpoint_id: str, dataset: str, data_format: str, hop_s: float, min_history_s: float | None,
                 thresholds_source: str, skipped: Sequence[Skipped], ref_list: Path, hyp_list: Path,
                 plots: bool = True, not_evaluated: Sequence = (), lookahead_s: float = 0.0,
                 provenance: dict[str, Any] | None = None) -> EvaluationReport:
    """Compute every figure of the report and draw the plots.

    Parameters
    ----------
    evaluated : sequence of training.evaluate.EvaluatedRecording
        Every recording the daemon path read; only those whose ``status`` is ``scored`` enter the
        figures.
    thresholds : AlarmThresholds
        The thresholds of the run (the sweep keeps their tau_on - tau_off gap and minimum duration).
    out_dir : Path
        Plots go to ``out_dir/plots``.
    checkpoint, checkpoint_id, dataset, data_format, hop_s, min_history_s, thresholds_source, skipped
        Recorded in ``meta``.
    ref_list, hyp_list : Path
        The list files written for the recordings (recorded in the scores).
    plots : bool
        Draw the PNG plots (a timeline per recording; an unscored one says so).
    not_evaluated : sequence of training.evaluate.NotEvaluated
        Selected recordings the daemon path could not read (listed in ``meta.unscored``).
    lookahead_s : float
        The checkpoint's lookahead (recorded in ``meta``).
    provenance : dict, optional
        The selected recordings against the checkpoint's training data
        (:func:`ictal.training.evaluate.provenance_check`), recorded as ``meta.provenance``.

    Returns
    -------
    EvaluationReport

    Raises
    ------
    ValueError
        If no recording is scored (the message lists each one's reason).
    """
    scored_evs = [ev for ev in evaluated if ev.status == "scored"]
    unscored = [{"recording_id": ev.scored.recording_id, "status": ev.status, "reason": ev.reason,
                 "ref_seizures": len(ev.scored.ref_events)} for ev in evaluated if ev.status != "scored"]
    unscored += [{"recording_id": x.recording_id, "status": "not_evaluated", "reason": x.reason,
                  "ref_seizures": None} for x in not_evaluated]
    if not scored_evs:
        raise ValueError(f"none of the {len(evaluated) + len(not_evaluated)} recordings was scored: "
                         + "; ".join(f"{u['recording_id']}: {u['reason']}" for u in unscored))
    recs = [ev.scored for ev in scored_evs]
    pairs = [(r.reference, _hyp(r)) for r in recs]
    patients = [_patient(ev) for ev in scored_evs]
    scores = score_pairs(pairs, str(ref_list), str(hyp_list), patients).to_dict()
    has_probs = any(bool(np.isfinite(r.probs).any()) for r in recs)
    taus = tau_on_grid(recs, extra=[thresholds.tau_on])
    # no probabilities (another detector's events only): no sweep, rather than a curve of zeros
    points = sweep(recs, [with_tau_on(thresholds, t) for t in taus]) if has_probs else []
    best = sensitivity_at_budgets(points, FA_BUDGETS_PER_24H)
    lat = [x for r in recs for x in seizure_latencies(r, r.events)]
    lat_summary = summarise_latencies(x.latency_s for x in lat if math.isfinite(x.latency_s))
    classic = summarise_latencies(x.hypothesis_onset_latency_s for x in lat)
    bg = [r for r in recs if r.background_only]
    bg_counts = overlap_counts(bg, [r.events for r in bg]) if bg else EventCounts(0, 0, 0, 0.0)
    rows = []
    for ev in evaluated:
        r = ev.scored
        is_scored = ev.status == "scored"
        c = overlap_counts([r], [r.events]) if is_scored else None
        finite = r.probs[np.isfinite(r.probs)]
        rows.append({
            "recording_id": r.recording_id, "status": ev.status, "reason": ev.reason, "duration_s": r.duration_s,
            "signal_s": ev.signal_s, "first_prob_s": ev.first_prob_s,
            "scored_fraction": float(finite.size / r.probs.size) if r.probs.size else 0.0,
            "unusable_s": ev.unusable_s, "held_samples": ev.held_samples, "ref_seizures": len(r.ref_events),
            "events": len(r.events), "hits": c.hits if c else None, "false_alarms": c.false_alarms if c else None,
            "max_prob": float(finite.max()) if finite.size else None,
            "quality_events": ev.quality_events, "timeline": None,
        })
    segments = None
    pooled_calibration = recordings_calibration(recs)
    calibration_report: dict[str, Any] = {
        "definition": "labelled, scored samples (the served probabilities); ECE over 15 equal-width bins "
                      "(Guo et al. 2017), Brier score, brier_reference = prevalence x (1 - prevalence)",
        "pooled": pooled_calibration.to_dict(), "by_class": {},
    }
    if data_format == "rated_windows" and (Path(dataset) / "labelled" / "manifest.csv").is_file():
        calibration_report["by_class"] = _calibration_by_class(read_rated_windows(dataset), recs)
        # spans of unscored recordings are listed, unscored (their probabilities never reached the alarms)
        probs = {ev.scored.recording_id: ev.scored.probs if ev.status == "scored"
                 else np.full(ev.scored.probs.shape, np.nan, dtype=np.float32) for ev in evaluated}
        segments = segment_report(read_rated_windows(dataset), probs,
                                  {r.recording_id: r.events for r in recs}, thresholds, min_history_s=min_history_s)
    by_status: dict[str, int] = {}
    for u in unscored:
        by_status[u["status"]] = by_status.get(u["status"], 0) + 1
    meta = {
        "checkpoint": checkpoint, "checkpoint_id": checkpoint_id, "dataset": dataset, "data_format": data_format,
        "hop_s": hop_s, "min_history_s": min_history_s, "lookahead_s": lookahead_s,
        "first_probability_s": None if min_history_s is None else first_served_index(
            0, round(min_history_s * FS_HZ), round(hop_s * FS_HZ), round(lookahead_s * FS_HZ)) / FS_HZ,
        "thresholds": thresholds.model_dump(),
        "thresholds_source": thresholds_source, "n_recordings": len(evaluated) + len(not_evaluated),
        "n_scored": len(recs), "n_unscored": len(unscored), "unscored": unscored, "unscored_by_status": by_status,
        "unscored_ref_seizures": sum(u["ref_seizures"] or 0 for u in unscored),
        "duration_s": float(sum(r.duration_s for r in recs)),
        "skipped": [[str(s.path), s.reason] for s in skipped],
        "rerun_mismatches": [ev.scored.recording_id for ev in scored_evs if not ev.rerun_matches],
        "provenance": provenance,
        "fa_definition": "false alarms (NEDC OVERLAP, SEIZ) / total duration of the recordings x 86400; "
                         "unrated time counts as background",
        "probabilities": has_probs,
    }
    report = EvaluationReport(
        meta=meta, scores=scores, sample_level=sample_auc(recs).to_dict(),
        sensitivity_at_fa=[{"budget_fa_per_24h": b, "point": None if p is None else p.to_dict()}
                           for b, p in best.items()],
        sweep=[p.to_dict() for p in points],
        latency={"definition": "alarm latency = signal time at which the onset alarm leaves the daemon (end of "
                               "the scored window that completed the minimum duration, lookahead included) - "
                               "annotated onset; the daemon's compute time comes on top",
                 "n": lat_summary.n, "p50_s": _none(lat_summary.median_s), "p90_s": _none(lat_summary.p90_s),
                 "n_without_alarm_time": sum(not math.isfinite(x.latency_s) for x in lat),
                 "hypothesis_onset": {"definition": "hypothesis onset (tau_on crossing) - reference onset (the "
                                                    "classic onset latency; not when the alarm is known)",
                                      "n": classic.n, "p50_s": _none(classic.median_s),
                                      "p90_s": _none(classic.p90_s)},
                 "seizures": [{"recording_id": x.recording_id, "seizure_onset_s": x.seizure_onset_s,
                               "event_onset_s": x.event_onset_s, "min_duration_met_s": x.min_duration_met_s,
                               "alarm_leaves_s": _none(x.alarm_leaves_s), "latency_s": _none(x.latency_s),
                               "hypothesis_onset_latency_s": x.hypothesis_onset_latency_s}
                              for x in lat]},
        background_only={"n_recordings": len(bg), "duration_s": bg_counts.duration_s,
                         "false_alarms": bg_counts.false_alarms, "fa_per_24h": _none(bg_counts.fa_per_24h),
                         "fa_per_24h_exact": poisson_rate_interval(bg_counts.false_alarms, bg_counts.duration_s,
                                                                   scale=SECONDS_PER_DAY)},
        recordings=rows, segments=segments, calibration=calibration_report,
        confidence_intervals=confidence_intervals(recs, patients),
    )
    if plots:
        from ictal.training.calibration import plot_reliability
        from ictal.training.report_plots import plot_sensitivity_vs_fa, plot_timeline

        plot_dir = out_dir / "plots"
        plot_dir.mkdir(parents=True, exist_ok=True)
        curve = None if not points else plot_sensitivity_vs_fa(points, best, plot_dir / "sensitivity_vs_fa.png",
                                       title=f"{checkpoint_id} on {Path(dataset).name}: tau_on sweep "
                                       f"(gap {thresholds.tau_on - thresholds.tau_off:g}, min {thresholds.min_duration_s:g} s)")
        timelines = {}
        for ev, row in zip(evaluated, rows, strict=True):
            r = ev.scored
            note = None if ev.status == "scored" else f"NOT SCORED ({ev.status}): {ev.reason}"
            path = plot_timeline(r, r.events, thresholds, plot_dir / f"timeline_{r.recording_id}.png", note=note)
            timelines[r.recording_id] = str(path.relative_to(out_dir))
            row["timeline"] = timelines[r.recording_id]
        reliability = None if not has_probs else plot_reliability(
            pooled_calibration, plot_dir / "reliability.png",
            title=f"{checkpoint_id} on {Path(dataset).name}: served probabilities")
        report.plots = {"sensitivity_vs_fa": None if curve is None else str(curve.relative_to(out_dir)),
                        "reliability": None if reliability is None else str(reliability.relative_to(out_dir)),
                        "timelines": timelines}
    return report


def _patient(ev: Any) -> str:
    """The patient of an evaluated recording (the recording id when the dataset names none)."""
    patient = getattr(getattr(ev, "recording", None), "patient", None)
    return str(patient) if patient else ev.scored.recording_id


def confidence_intervals(recs: Sequence, patients: Sequence[str]) -> dict[str, Any]:
    """Bootstrap intervals (by patient) of OVERLAP sensitivity, OVERLAP FA/24h and sample AUROC.

    Parameters
    ----------
    recs : sequence of ScoredRecording
        The scored recordings, their events at the evaluated thresholds.
    patients : sequence of str
        The patient of each recording: the resampling unit (a patient's recordings are drawn together).

    Returns
    -------
    dict
        ``method``, ``unit``, ``confidence_level``, ``n_resamples``, ``seed``, ``min_units`` and per figure
        ``{value, lo, hi, n_units, note}`` (:mod:`ictal.training.scoring.bootstrap`); sensitivity and FA/24h are
        fractions and false alarms per 24 h as in ``scores.nedc.overlap``.
    """
    from ictal.training.datasets.base import SEIZURE, UNKNOWN

    by_patient: dict[str, dict[str, Any]] = {}
    for r, patient in zip(recs, patients, strict=True):
        c = overlap_counts([r], [r.events])
        keep = (r.labels != UNKNOWN) & np.isfinite(r.probs)
        u = by_patient.setdefault(patient, {"hits": 0, "targets": 0, "fa": 0, "dur": 0.0, "p": [], "y": []})
        u["hits"] += c.hits
        u["targets"] += c.targets
        u["fa"] += c.false_alarms
        u["dur"] += c.duration_s
        u["p"].append(r.probs[keep].astype(np.float64))
        u["y"].append(r.labels[keep] == SEIZURE)
    units = list(by_patient.values())
    probs = [np.concatenate(u["p"]) for u in units]
    targets = [np.concatenate(u["y"]) for u in units]
    auroc = sample_auc(recs).auroc
    return {
        "method": CI_METHOD, "unit": "patient", "confidence_level": CONFIDENCE_LEVEL, "n_resamples": N_RESAMPLES,
        "seed": SEED, "min_units": MIN_UNITS, "n_patients": len(units),
        "overlap_sensitivity": ratio_interval([u["hits"] for u in units], [u["targets"] for u in units],
                                              what="with seizures"),
        "overlap_fa_per_24h": ratio_interval([u["fa"] for u in units], [u["dur"] for u in units],
                                             scale=SECONDS_PER_DAY, what="with signal"),
        "auroc": auroc_interval(auroc, probs, targets),
        "exact": {
            "method": EXACT_METHOD,
            "overlap_sensitivity": exact_proportion_interval(sum(u["hits"] for u in units),
                                                             sum(u["targets"] for u in units)),
            "overlap_fa_per_24h": poisson_rate_interval(sum(u["fa"] for u in units), sum(u["dur"] for u in units),
                                                        scale=SECONDS_PER_DAY),
        },
    }


EXACT_METHOD = ("exact 95 %: Clopper-Pearson over the seizures for sensitivity, Garwood (Poisson) over the hours "
                "for FA/24h; events taken as independent (no clustering by patient)")
"""How ``confidence_intervals.exact`` is computed (training.scoring.bootstrap)."""


def interval_line(ci: dict[str, Any]) -> str:
    """The intervals in one line: ``OVERLAP sensitivity 60.00% [20.00%, 100.00%], ...`` (95 %, by patient)."""
    if not ci:
        return "confidence intervals: not computed"
    return (f"{ci['confidence_level']:.0%} bootstrap intervals by {ci['unit']} ({ci['n_patients']} patients): "
            f"OVERLAP sensitivity {format_interval(ci['overlap_sensitivity'], '.2f', 100, '%')}, "
            f"FA/24h {format_interval(ci['overlap_fa_per_24h'], '.2f')}, "
            f"AUROC {format_interval(ci['auroc'], '.4f')}")


def exact_interval_line(ci: dict[str, Any]) -> str | None:
    """The exact intervals in one line (None for a report without them):
    ``exact 95% intervals (events independent): OVERLAP sensitivity 50.00% [1.26%, 98.74%] (1/2 seizures), ...``."""
    exact = (ci or {}).get("exact")
    if not exact:
        return None
    sens, fa = exact["overlap_sensitivity"], exact["overlap_fa_per_24h"]
    return (f"exact 95% intervals (Clopper-Pearson over seizures, Poisson over hours; events independent): "
            f"OVERLAP sensitivity {format_interval(sens, '.2f', 100, '%')} ({sens['n_units']} seizures), "
            f"FA/24h {format_interval(fa, '.2f')} ({fa['n_units']} false alarms)")


def _calibration_by_class(windows: Sequence, recs: Sequence) -> dict[str, Any]:
    """Calibration of the samples inside the rated windows of each class (seizure samples are positive)."""
    by_id = {r.recording_id: r for r in recs}
    probs: dict[str, list[np.ndarray]] = {}
    for w in windows:
        r = by_id.get(w.recording_id)
        if r is None:
            continue
        lo, hi = int(round(w.start_s * r.rate_hz)), int(round(w.stop_s * r.rate_hz))
        p = r.probs[lo:hi]
        probs.setdefault(w.label, []).append(p[np.isfinite(p)])
    out = {}
    for label, parts in sorted(probs.items()):
        p = np.concatenate(parts)
        out[label] = calibration(p, np.full(p.shape, label == "seizure")).to_dict()
    return out


def _szcore_evaluation_lines(result: dict[str, Any] | None) -> list[str]:
    """Markdown lines of the szcore-evaluation figures (mean +- std over subjects); none when absent."""
    if not result:
        return []
    from ictal.training.scoring.szcore_dataset import format_lines

    return ["", f"SzCORE as szcore-evaluation 0.0.7 reports it (1 Hz masks), mean +- std over "
                f"{result['n_subjects']} patients:", "", *[f"- {line.strip()}" for line in format_lines(result)]]


def _calibration_line(cal: dict[str, Any]) -> str:
    """The calibration line of the Markdown headline."""
    pooled = cal.get("pooled") or {}
    line = (f"- calibration of the served probabilities (labelled, scored samples): ECE "
            f"{_num(pooled.get('ece'), '.3f')}, Brier {_num(pooled.get('brier'), '.4f')} (prevalence-only "
            f"{_num(pooled.get('brier_reference'), '.4f')}); 99.9th percentile on seizure samples "
            f"{_num(pooled.get('p999_seizure'), '.3f')}")
    if cal.get("by_class"):
        line += "; mean probability in rated windows by class: " + ", ".join(
            f"{label} {_num(_mean_confidence(c), '.2f')}" for label, c in cal["by_class"].items())
    return line


def _mean_confidence(c: dict[str, Any]) -> float | None:
    """Mean probability of a calibration dict's samples (from its bins)."""
    n = sum(b["n"] for b in c["bins"])
    if not n:
        return None
    return sum(b["n"] * b["confidence"] for b in c["bins"] if b["n"]) / n


def _hyp(r):
    from ictal.training.evaluate_metrics import hypothesis

    return hypothesis(r.events, r.duration_s)


def _pct(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}%"


def _num(x: float | None, fmt: str = ".2f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


STATUS_WORDS = {"too_short": "too short for min_history_s", "unusable": "unusable signal",
                "no_window": "no window scored", "not_evaluated": "not evaluated"}
"""How the header names each unscored status."""


def _by_status(meta: dict) -> str:
    """``"too short for min_history_s: 2, not evaluated: 1"`` from ``meta.unscored_by_status``."""
    return ", ".join(f"{STATUS_WORDS.get(k, k)}: {n}" for k, n in meta["unscored_by_status"].items())


def format_markdown(report: EvaluationReport) -> str:
    """The report as Markdown (headline tables, per-recording table, segment report, plot links)."""
    m = report.meta
    th = m["thresholds"]
    lines = [
        f"# Evaluation of `{m['checkpoint_id']}` on `{m['dataset']}`",
        "",
        (f"- hypotheses of another detector: `{m['hypotheses']['folder']}` (its own events; probabilities "
         f"{'given' if m['hypotheses']['probabilities'] else 'not given'})" if m.get("hypotheses")
         else f"- checkpoint: `{m['checkpoint']}`") + f"; dataset layout: {m['data_format']}; recordings: {m['n_recordings']}, "
        f"scored {m['n_scored']} ({m['duration_s'] / 3600:.3f} h), unscored {m['n_unscored']}"
        + (f" ({_by_status(m)}; {m['unscored_ref_seizures']} reference seizures in them, not counted)"
           if m["n_unscored"] else "")
        + f"; files skipped by discovery: {len(m['skipped'])}",
        f"- daemon path: hop {m['hop_s']:g} s, min history {m['min_history_s']} s, lookahead {m['lookahead_s']:g} s "
        f"(first probability of a recording at {_num(m['first_probability_s'], 'g')} s); thresholds from "
        f"{m['thresholds_source']}: tau_on {th['tau_on']:g}, tau_off {th['tau_off']:g}, min duration "
        f"{th['min_duration_s']:g} s, merge gap {th['merge_gap_s']:g} s, max duration {th['max_duration_s']:g} s, "
        f"refractory {th['refractory_s']:g} s",
        f"- FA/24h: {m['fa_definition']}",
    ]
    prov = m.get("provenance")
    if prov and prov.get("warning"):
        lines.append(f"- {prov['warning']}")
        if prov.get("train"):
            lines.append(f"- training recordings of the checkpoint scored here ({prov['n_train']}): "
                         + ", ".join(prov["train"]))
    if m["rerun_mismatches"]:
        lines.append(f"- WARNING: re-running the post-processor on stored probabilities differs from the "
                     f"daemon's events for {', '.join(m['rerun_mismatches'])}")
    bg = report.background_only
    lines += ["", "## Headline", "",
              f"- background-only recordings (every alarm is false): {bg['n_recordings']} recordings, "
              f"{bg['duration_s'] / 3600:.3f} h, {bg['false_alarms']} false alarms, "
              f"**{_num(bg['fa_per_24h'])} FA/24h**"
              + (f" (exact 95% {format_interval(bg['fa_per_24h_exact'])})" if bg.get("fa_per_24h_exact") else ""),
              f"- sample level (labelled, scored samples): AUROC {_num(report.sample_level['auroc'], '.4f')}, "
              f"AUPRC {_num(report.sample_level['auprc'], '.4f')} ({report.sample_level['n_positive']} seizure / "
              f"{report.sample_level['n_negative']} background samples, {report.sample_level['n_unscored']} unscored)",
              f"- {interval_line(report.confidence_intervals)}",
              *([f"- {line}"] if (line := exact_interval_line(report.confidence_intervals)) else []),
              _calibration_line(report.calibration),
              f"- alarm latency (signal time the onset alarm leaves the daemon - annotated onset) over "
              f"{report.latency['n']} detected seizures: p50 {_num(report.latency['p50_s'], '.1f')} s, p90 "
              f"{_num(report.latency['p90_s'], '.1f')} s (the alarm leaves at the end of the scored window that "
              f"completed the minimum duration, lookahead {m['lookahead_s']:g} s included; compute time on top); "
              f"classic hypothesis-onset latency (tau_on crossing - annotated onset): p50 "
              f"{_num(report.latency['hypothesis_onset']['p50_s'], '.1f')} s, p90 "
              f"{_num(report.latency['hypothesis_onset']['p90_s'], '.1f')} s",
              "", "## Event scoring (SEIZ)", "",
              "| scorer | targets | hits | misses | false alarms | sensitivity | precision | F1 | FA/24h |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, title in (("overlap", "NEDC OVERLAP"), ("taes", "NEDC TAES"), ("dpalign", "NEDC DP alignment"),
                        ("epoch", "NEDC EPOCH (0.25 s epochs)")):
        s = report.scores["nedc"][name]["labels"]["seiz"]
        lines.append(f"| {title} | {s['targets']:.2f} | {s['hits']:.2f} | {s['misses']:.2f} | {s['false_alarms']:.2f} "
                     f"| {_pct(s['sensitivity'])} | {_pct(s['precision'])} | {s['f1']:.4f} | {s['fa_per_24h']:.2f} |")
    sz = report.scores["szcore"]
    lines += ["", f"SzCORE (timescoring defaults): {sz['ref_events']} reference events, TP {sz['tp']}, FP {sz['fp']}, "
              f"sensitivity {_pct(sz['sensitivity'])}, precision {_pct(sz['precision'])}, F1 {_num(sz['f1'], '.4f')}, "
              f"FP/24h {_num(sz['fp_per_24h'])}",
              *_szcore_evaluation_lines(report.scores.get("szcore_evaluation")),
              "", "## Sensitivity at a false-alarm budget (tau_on swept; tau_off gap and min duration kept)", "",
              "| budget (FA/24h) | sensitivity | FA/24h | tau_on | tau_off | hits / targets |",
              "|---:|---:|---:|---:|---:|---:|"]
    if not m.get("probabilities", True):
        lines.append("| all | n/a: no probabilities given, no tau_on sweep | | | | |")
    for row in report.sensitivity_at_fa if m.get("probabilities", True) else []:
        p = row["point"]
        if p is None:
            lines.append(f"| {row['budget_fa_per_24h']:g} | unreachable or no seizure | | | | |")
        else:
            lines.append(f"| {row['budget_fa_per_24h']:g} | {_pct(p['sensitivity'])} | {p['fa_per_24h']:.2f} | "
                         f"{p['tau_on']:g} | {p['tau_off']:g} | {p['hits']} / {p['targets']} |")
    if report.latency["seizures"]:
        lines += ["", "## Latency per detected seizure", "",
                  "| recording | seizure onset (s) | tau_on crossing (s) | min duration met (s) | alarm leaves (s) "
                  "| alarm latency (s) | hypothesis-onset latency (s) |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for x in report.latency["seizures"]:
            lines.append(f"| {x['recording_id']} | {x['seizure_onset_s']:.2f} | {x['event_onset_s']:.2f} | "
                         f"{x['min_duration_met_s']:.2f} | {_num(x['alarm_leaves_s'])} | {_num(x['latency_s'])} | "
                         f"{x['hypothesis_onset_latency_s']:.2f} |")
    if m["unscored"]:
        lines += ["", "## Unscored recordings (left out of every figure)", "",
                  "| recording | status | reason | ref seizures |", "|---|---|---|---:|"]
        for u in m["unscored"]:
            lines.append(f"| {u['recording_id']} | {u['status']} | {u['reason']} | "
                         f"{'n/a' if u['ref_seizures'] is None else u['ref_seizures']} |")
    lines += ["", "## Recordings", "",
              "| recording | status | duration (s) | first p (s) | ref seizures | events | hits | false alarms "
              "| max p | timeline |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in report.recordings:
        tl = f"[png]({r['timeline']})" if r["timeline"] else ""
        lines.append(f"| {r['recording_id']} | {r['status']} | {r['duration_s']:.1f} | {_num(r['first_prob_s'])} | "
                     f"{r['ref_seizures']} | {r['events']} | {_num(r['hits'], 'd')} | {_num(r['false_alarms'], 'd')} | "
                     f"{_num(r['max_prob'], '.3f')} | {tl} |")
    if report.segments is not None:
        lines += ["", "## Rated windows (segment level)", "",
                  f"Each rated span: its maximum probability and whether an alarm overlaps it. flagged = an event "
                  f"overlaps the window or a scored sample in it has p >= tau_on ({report.segments.tau_on:g}); min "
                  f"history {report.segments.min_history_s} s; a span without any probability is unscored.", "",
                  segments_markdown(report.segments)]
    if report.plots:
        lines += ["", "## Plots", ""] + ([f"- ![sensitivity vs FA/24h]({report.plots['sensitivity_vs_fa']})"]
                                         if report.plots.get("sensitivity_vs_fa") else []) + [
                  f"- {len(report.plots['timelines'])} timelines in `plots/timeline_<recording>.png`"]
    if m["skipped"]:
        lines += ["", "## Skipped files", ""] + [f"- `{p}`: {why}" for p, why in m["skipped"]]
    if m["data_format"] == "rated_windows":
        lines += ["", ATTRIBUTION]
    return "\n".join(lines) + "\n"


def write_report(out_dir: Path, report: EvaluationReport) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.md``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "report.json"
    md_path = out_dir / "report.md"
    json_path.write_text(json.dumps(_clean(report.to_dict()), indent=1, allow_nan=False, default=_default) + "\n",
                         encoding="utf-8")
    md_path.write_text(format_markdown(report), encoding="utf-8")
    return json_path, md_path


def _default(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def _clean(x: Any) -> Any:
    """NaN and infinities become None (JSON has neither), recursively."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (float, np.floating)) and not math.isfinite(float(x)):
        return None
    return x
