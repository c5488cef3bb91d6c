"""The evaluation report: figures of an evaluated dataset as JSON and Markdown, with the plots.

JSON layout (``report.json``; ratios are fractions, times in seconds, rates per 24 h; null where a
figure is undefined)::

    {
      "meta": {checkpoint, checkpoint_id, dataset, data_format, hop_s, min_history_s, thresholds,
               thresholds_source, n_recordings, duration_s, skipped: [[path, reason]], elapsed_s,
               rerun_mismatches: [recording ids whose re-run post-processor differs from the daemon]},
      "scores": {... training.scoring.report JSON: nedc {dpalign, epoch, overlap, taes}, szcore ...},
      "sample_level": {auroc, auprc, n_positive, n_negative, n_unscored},
      "sensitivity_at_fa": [{budget_fa_per_24h, point: {tau_on, tau_off, min_duration_s, targets, hits,
                             false_alarms, sensitivity, fa_per_24h} | null}],
      "sweep": [points as above, for every tau_on of the sweep],
      "latency": {n, median_s, p90_s, seizures: [{recording_id, seizure_onset_s, event_onset_s,
                  alarm_s, latency_s}]},
      "background_only": {n_recordings, duration_s, false_alarms, fa_per_24h},
      "recordings": [{recording_id, duration_s, ref_seizures, events, false_alarms, hits, max_prob,
                      quality_events, timeline}],
      "segments": segment report (training.segments) or null,
      "plots": {"sensitivity_vs_fa": path, "timelines": {recording_id: path}}
    }
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from alarms.config import AlarmThresholds
from training.datasets.base import Skipped
from training.evaluate_metrics import (
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
from training.scoring.metrics import summarise_latencies
from training.scoring.report import score_pairs
from training.segments import SegmentReport, read_rated_windows, segment_report
from training.segments import format_markdown as segments_markdown

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

    def to_dict(self) -> dict[str, Any]:
        """The JSON layout."""
        return {
            "meta": self.meta, "scores": self.scores, "sample_level": self.sample_level,
            "sensitivity_at_fa": self.sensitivity_at_fa, "sweep": self.sweep, "latency": self.latency,
            "background_only": self.background_only, "recordings": self.recordings,
            "segments": None if self.segments is None else self.segments.to_dict(), "plots": self.plots,
        }


def build_report(evaluated: Sequence, thresholds: AlarmThresholds, *, out_dir: Path, checkpoint: str,
                 checkpoint_id: str, dataset: str, data_format: str, hop_s: float, min_history_s: float | None,
                 thresholds_source: str, skipped: Sequence[Skipped], ref_list: Path, hyp_list: Path,
                 plots: bool = True) -> EvaluationReport:
    """Compute every figure of the report and draw the plots.

    Parameters
    ----------
    evaluated : sequence of training.evaluate.EvaluatedRecording
    thresholds : AlarmThresholds
        The thresholds of the run (the sweep keeps their tau_on - tau_off gap and minimum duration).
    out_dir : Path
        Plots go to ``out_dir/plots``.
    checkpoint, checkpoint_id, dataset, data_format, hop_s, min_history_s, thresholds_source, skipped
        Recorded in ``meta``.
    ref_list, hyp_list : Path
        The list files written for the recordings (recorded in the scores).
    plots : bool
        Draw the PNG plots.

    Returns
    -------
    EvaluationReport
    """
    recs = [ev.scored for ev in evaluated]
    pairs = [(r.reference, _hyp(r)) for r in recs]
    scores = score_pairs(pairs, str(ref_list), str(hyp_list)).to_dict()
    taus = tau_on_grid(recs, extra=[thresholds.tau_on])
    points = sweep(recs, [with_tau_on(thresholds, t) for t in taus])
    best = sensitivity_at_budgets(points, FA_BUDGETS_PER_24H)
    lat = [x for r in recs for x in seizure_latencies(r, r.events)]
    lat_summary = summarise_latencies(x.latency_s for x in lat)
    bg = [r for r in recs if r.background_only]
    bg_counts = overlap_counts(bg, [r.events for r in bg]) if bg else EventCounts(0, 0, 0, 0.0)
    rows = []
    for ev in evaluated:
        r = ev.scored
        c = overlap_counts([r], [r.events])
        finite = r.probs[np.isfinite(r.probs)]
        rows.append({
            "recording_id": r.recording_id, "duration_s": r.duration_s, "ref_seizures": len(r.ref_events),
            "events": len(r.events), "hits": c.hits, "false_alarms": c.false_alarms,
            "max_prob": float(finite.max()) if finite.size else None,
            "scored_fraction": float(finite.size / r.probs.size) if r.probs.size else 0.0,
            "quality_events": ev.quality_events, "timeline": None,
        })
    segments = None
    if data_format == "rated_windows" and (Path(dataset) / "labelled" / "manifest.csv").is_file():
        segments = segment_report(read_rated_windows(dataset), {r.recording_id: r.probs for r in recs},
                                  {r.recording_id: r.events for r in recs}, thresholds, min_history_s=min_history_s)
    meta = {
        "checkpoint": checkpoint, "checkpoint_id": checkpoint_id, "dataset": dataset, "data_format": data_format,
        "hop_s": hop_s, "min_history_s": min_history_s, "thresholds": thresholds.model_dump(),
        "thresholds_source": thresholds_source, "n_recordings": len(recs),
        "duration_s": float(sum(r.duration_s for r in recs)),
        "skipped": [[str(s.path), s.reason] for s in skipped],
        "rerun_mismatches": [ev.scored.recording_id for ev in evaluated if not ev.rerun_matches],
        "fa_definition": "false alarms (NEDC OVERLAP, SEIZ) / total duration of the recordings x 86400; "
                         "unrated time counts as background",
    }
    report = EvaluationReport(
        meta=meta, scores=scores, sample_level=sample_auc(recs).to_dict(),
        sensitivity_at_fa=[{"budget_fa_per_24h": b, "point": None if p is None else p.to_dict()}
                           for b, p in best.items()],
        sweep=[p.to_dict() for p in points],
        latency={"n": lat_summary.n, "median_s": _none(lat_summary.median_s), "p90_s": _none(lat_summary.p90_s),
                 "alarm_time": "raised_s: stream time of the sample that completed the minimum duration; the "
                               "daemon emits the alarm when the window ending after that sample is scored "
                               f"(up to hop_s = {hop_s:g} s later, plus compute time)",
                 "seizures": [{"recording_id": x.recording_id, "seizure_onset_s": x.seizure_onset_s,
                               "event_onset_s": x.event_onset_s, "alarm_s": x.alarm_s, "latency_s": x.latency_s}
                              for x in lat]},
        background_only={"n_recordings": len(bg), "duration_s": bg_counts.duration_s,
                         "false_alarms": bg_counts.false_alarms, "fa_per_24h": _none(bg_counts.fa_per_24h)},
        recordings=rows, segments=segments,
    )
    if plots:
        from training.report_plots import plot_sensitivity_vs_fa, plot_timeline

        plot_dir = out_dir / "plots"
        plot_dir.mkdir(parents=True, exist_ok=True)
        curve = plot_sensitivity_vs_fa(points, best, plot_dir / "sensitivity_vs_fa.png",
                                       title=f"{checkpoint_id} on {Path(dataset).name}: tau_on sweep "
                                       f"(gap {thresholds.tau_on - thresholds.tau_off:g}, min {thresholds.min_duration_s:g} s)")
        timelines = {}
        for r, row in zip(recs, rows, strict=True):
            path = plot_timeline(r, r.events, thresholds, plot_dir / f"timeline_{r.recording_id}.png")
            timelines[r.recording_id] = str(path.relative_to(out_dir))
            row["timeline"] = timelines[r.recording_id]
        report.plots = {"sensitivity_vs_fa": str(curve.relative_to(out_dir)), "timelines": timelines}
    return report


def _hyp(r):
    from training.evaluate_metrics import hypothesis

    return hypothesis(r.events, r.duration_s)


def _pct(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}%"


def _num(x: float | None, fmt: str = ".2f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def format_markdown(report: EvaluationReport) -> str:
    """The report as Markdown (headline tables, per-recording table, segment report, plot links)."""
    m = report.meta
    th = m["thresholds"]
    lines = [
        f"# Evaluation of `{m['checkpoint_id']}` on `{m['dataset']}`",
        "",
        f"- checkpoint: `{m['checkpoint']}`; dataset layout: {m['data_format']}; recordings: {m['n_recordings']} "
        f"({m['duration_s'] / 3600:.3f} h); skipped: {len(m['skipped'])}",
        f"- daemon path: hop {m['hop_s']:g} s, min history {m['min_history_s']} s; thresholds from "
        f"{m['thresholds_source']}: tau_on {th['tau_on']:g}, tau_off {th['tau_off']:g}, min duration "
        f"{th['min_duration_s']:g} s, merge gap {th['merge_gap_s']:g} s, max duration {th['max_duration_s']:g} s, "
        f"refractory {th['refractory_s']:g} s",
        f"- FA/24h: {m['fa_definition']}",
    ]
    if m["rerun_mismatches"]:
        lines.append(f"- WARNING: re-running the post-processor on stored probabilities differs from the "
                     f"daemon's events for {', '.join(m['rerun_mismatches'])}")
    bg = report.background_only
    lines += ["", "## Headline", "",
              f"- background-only recordings (every alarm is false): {bg['n_recordings']} recordings, "
              f"{bg['duration_s'] / 3600:.3f} h, {bg['false_alarms']} false alarms, "
              f"**{_num(bg['fa_per_24h'])} FA/24h**",
              f"- sample level (labelled, scored samples): AUROC {_num(report.sample_level['auroc'], '.4f')}, "
              f"AUPRC {_num(report.sample_level['auprc'], '.4f')} ({report.sample_level['n_positive']} seizure / "
              f"{report.sample_level['n_negative']} background samples, {report.sample_level['n_unscored']} unscored)",
              f"- onset latency (alarm time - annotated onset) over {report.latency['n']} detected seizures: "
              f"median {_num(report.latency['median_s'], '.1f')} s, 90th percentile "
              f"{_num(report.latency['p90_s'], '.1f')} s (alarm time = the sample completing the minimum duration; "
              f"the daemon sends it when its window is scored, up to {m['hop_s']:g} s later)",
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
              "", "## Sensitivity at a false-alarm budget (tau_on swept; tau_off gap and min duration kept)", "",
              "| budget (FA/24h) | sensitivity | FA/24h | tau_on | tau_off | hits / targets |",
              "|---:|---:|---:|---:|---:|---:|"]
    for row in report.sensitivity_at_fa:
        p = row["point"]
        if p is None:
            lines.append(f"| {row['budget_fa_per_24h']:g} | unreachable or no seizure | | | | |")
        else:
            lines.append(f"| {row['budget_fa_per_24h']:g} | {_pct(p['sensitivity'])} | {p['fa_per_24h']:.2f} | "
                         f"{p['tau_on']:g} | {p['tau_off']:g} | {p['hits']} / {p['targets']} |")
    if report.latency["seizures"]:
        lines += ["", "## Onset latency per detected seizure", "",
                  "| recording | seizure onset (s) | tau_on crossing (s) | alarm (s) | latency (s) |",
                  "|---|---:|---:|---:|---:|"]
        for x in report.latency["seizures"]:
            lines.append(f"| {x['recording_id']} | {x['seizure_onset_s']:.2f} | {x['event_onset_s']:.2f} | "
                         f"{x['alarm_s']:.2f} | {x['latency_s']:.2f} |")
    lines += ["", "## Recordings", "",
              "| recording | duration (s) | ref seizures | events | hits | false alarms | max p | timeline |",
              "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in report.recordings:
        tl = f"[png]({r['timeline']})" if r["timeline"] else ""
        lines.append(f"| {r['recording_id']} | {r['duration_s']:.1f} | {r['ref_seizures']} | {r['events']} | "
                     f"{r['hits']} | {r['false_alarms']} | {_num(r['max_prob'], '.3f')} | {tl} |")
    if report.segments is not None:
        lines += ["", "## Rated windows (segment level)", "",
                  f"flagged = an event overlaps the window or a scored sample in it has p >= tau_on "
                  f"({report.segments.tau_on:g}); min history {report.segments.min_history_s} s", "",
                  segments_markdown(report.segments)]
    if report.plots:
        lines += ["", "## Plots", "", f"- ![sensitivity vs FA/24h]({report.plots['sensitivity_vs_fa']})",
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
