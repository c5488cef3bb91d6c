"""Several ``ictal evaluate`` reports side by side: a Markdown table and one chart with the intervals.

This is what ``ictal compare REPORT...`` runs. Each report is a ``report.json`` (or the ``--out``
folder that holds it) of ``ictal evaluate``, of a checkpoint or of another detector's output
(``--hypotheses``). A row per report, columns (``n/a`` where the report lacks the figure)::

    detector | dataset | recordings (scored) | hours | OVERLAP sensitivity [95% CI] | OVERLAP FA/24h [95% CI]
    | TAES sensitivity | TAES FA/24h | SzCORE event sensitivity (mean +- std) | SzCORE event FP/24h
    (mean +- std) | SzCORE sample F1 (mean +- std) | AUROC [95% CI] | sensitivity at 2.5 FA/24h
    | alarm latency p50 (s)

Intervals are the report's ``confidence_intervals`` (bootstrap by patient); a figure without an
interval says why (too few patients). Comparing reports that scored different recordings is allowed
but the table starts with a WARNING line naming how many recordings differ: their figures are not
comparable.

The chart (PNG) has one panel per figure with an interval (OVERLAP sensitivity, OVERLAP FA/24h,
AUROC): a point per detector and its 95 % interval as an error bar; a detector without an interval is
drawn as a hollow point, one without the figure is left out of that panel.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ictal.training.scoring.bootstrap import format_interval


class CompareError(ValueError):
    """A report cannot be read or is not an ``ictal evaluate`` report; the message names the file."""


@dataclass
class LoadedReport:
    """One report: where it came from and its JSON."""

    path: Path
    data: dict[str, Any]

    @property
    def name(self) -> str:
        """The detector's name (``meta.checkpoint_id``), else the report's folder name."""
        return str(self.data.get("meta", {}).get("checkpoint_id") or self.path.parent.name)

    @property
    def recording_ids(self) -> set[str]:
        """Ids of the scored recordings."""
        return {r["recording_id"] for r in self.data.get("recordings", []) if r.get("status", "scored") == "scored"}


def load_report(path: Path | str) -> LoadedReport:
    """Read ``report.json`` (or ``<folder>/report.json``).

    Raises
    ------
    CompareError
        If the file is missing, not JSON, or lacks ``meta`` and ``scores``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CompareError(f"{path}: cannot read ({exc.strerror}); expected report.json of ictal evaluate") from exc
    except json.JSONDecodeError as exc:
        raise CompareError(f"{path}: not JSON ({exc}); expected report.json of ictal evaluate") from exc
    if not isinstance(data, dict) or "meta" not in data or "scores" not in data:
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise CompareError(f"{path}: keys {found}, expected the meta and scores of an ictal evaluate report")
    return LoadedReport(path, data)


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _num(x: Any, spec: str = ".2f") -> str:
    return "n/a" if x is None else format(x, spec)


def _pm(d: Any, metric: str, pct: bool) -> str:
    mean, std = _get(d, metric), _get(d, f"{metric}_std")
    if mean is None:
        return "n/a"
    s = 100.0 if pct else 1.0
    u = "%" if pct else ""
    return f"{s * mean:.1f}{u} +- {s * (std or 0.0):.1f}{u}" if pct else f"{mean:.2f} +- {(std or 0.0):.2f}"


def _ci(data: dict, key: str, value: Any, spec: str, scale: float, unit: str) -> str:
    ci = _get(data, "confidence_intervals", key)
    if ci is None:
        if value is None:
            return "n/a"
        return f"{format(scale * value, spec)}{unit} (no interval in this report)"
    return format_interval(ci, spec, scale, unit)


def _at_budget(data: dict, budget: float) -> str:
    for row in data.get("sensitivity_at_fa") or []:
        if row.get("budget_fa_per_24h") == budget:
            p = row.get("point")
            return "n/a" if p is None else _pct(p.get("sensitivity"))
    return "n/a"


COLUMNS = ("detector", "dataset", "recordings (scored)", "hours", "OVERLAP sensitivity [95% CI]",
           "OVERLAP FA/24h [95% CI]", "TAES sensitivity", "TAES FA/24h", "SzCORE event sensitivity (mean +- std)",
           "SzCORE event FP/24h (mean +- std)", "SzCORE sample F1 (mean +- std)", "AUROC [95% CI]",
           "sensitivity at 2.5 FA/24h", "alarm latency p50 (s)")
"""Columns of the comparison table."""


def table_row(report: LoadedReport) -> list[str]:
    """The cells of one report's row (:data:`COLUMNS`)."""
    d = report.data
    m = d["meta"]
    ov = _get(d, "scores", "nedc", "overlap", "labels", "seiz") or {}
    ta = _get(d, "scores", "nedc", "taes", "labels", "seiz") or {}
    sz = _get(d, "scores", "szcore_evaluation") or {}
    return [
        f"{report.name}" + (" (hypotheses)" if m.get("mode") == "hypotheses" else ""),
        Path(str(m.get("dataset", "n/a"))).name,
        f"{m.get('n_recordings', 'n/a')} ({m.get('n_scored', 'n/a')})",
        _num(None if m.get("duration_s") is None else m["duration_s"] / 3600, ".3f"),
        _ci(d, "overlap_sensitivity", ov.get("sensitivity"), ".1f", 100.0, "%"),
        _ci(d, "overlap_fa_per_24h", ov.get("fa_per_24h"), ".2f", 1.0, ""),
        _pct(ta.get("sensitivity")),
        _num(ta.get("fa_per_24h")),
        _pm(sz.get("event"), "sensitivity", True),
        _pm(sz.get("event"), "fp_per_24h", False),
        _pm(sz.get("sample"), "f1", False),
        _ci(d, "auroc", _get(d, "sample_level", "auroc"), ".3f", 1.0, ""),
        _at_budget(d, 2.5),
        _num(_get(d, "latency", "p50_s"), ".1f"),
    ]


def recording_mismatch(reports: list[LoadedReport]) -> str | None:
    """A WARNING line when the reports scored different recordings, else None."""
    sets = [r.recording_ids for r in reports]
    union = set().union(*sets)
    common = set.intersection(*sets) if sets else set()
    if union == common:
        return None
    return (f"WARNING: the reports scored different recordings ({len(common)} in common of {len(union)}; "
            + ", ".join(f"{r.name}: {len(s)}" for r, s in zip(reports, sets, strict=True))
            + "): their figures are not comparable")


def format_markdown(reports: list[LoadedReport], chart: Path | None = None) -> str:
    """The comparison as Markdown: warning line if any, the table, definitions, the chart's path."""
    lines = ["# Comparison of evaluation reports", ""]
    warning = recording_mismatch(reports)
    if warning:
        lines += [warning, ""]
    lines.append("| " + " | ".join(COLUMNS) + " |")
    lines.append("|" + "|".join("---" if i < 2 else "---:" for i in range(len(COLUMNS))) + "|")
    for r in reports:
        lines.append("| " + " | ".join(table_row(r)) + " |")
    methods = {str(_get(r.data, "confidence_intervals", "method")) for r in reports
               if _get(r.data, "confidence_intervals", "method")}
    lines += ["", "OVERLAP and TAES: NEDC EEG Eval v6.0.0-compatible scorers, SEIZ; FA/24h = false alarms / total "
              "duration x 86400. SzCORE: szcore-evaluation 0.0.7 figures, mean +- std over patients.",
              *(f"Intervals: {m}." for m in sorted(methods))]
    lines += ["", "Reports: " + "; ".join(f"{r.name}: `{r.path}`" for r in reports)]
    if chart is not None:
        lines += ["", f"![intervals]({chart})"]
    return "\n".join(lines) + "\n"


PANELS = (("overlap_sensitivity", "OVERLAP sensitivity (%)", 100.0, (0.0, 100.0)),
          ("overlap_fa_per_24h", "OVERLAP FA/24h", 1.0, None),
          ("auroc", "sample AUROC", 1.0, (0.0, 1.0)))
"""Panels of the chart: interval key, axis label, scale, fixed axis limits (None: from the data)."""


def plot_comparison(reports: list[LoadedReport], path: Path | str) -> Path:
    """Write the point-and-interval chart (PNG; module docstring). Returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 0.6 * len(reports) + 1.8), sharey=True)
    names = [r.name for r in reports]
    for ax, (key, label, scale, limits) in zip(axes, PANELS, strict=True):
        if limits is not None:
            ax.set_xlim(limits[0] - 0.02 * (limits[1] - limits[0]), limits[1] + 0.02 * (limits[1] - limits[0]))
        for i, r in enumerate(reports):
            ci = _get(r.data, "confidence_intervals", key) or {}
            value = ci.get("value")
            if value is None:
                continue
            lo, hi = ci.get("lo"), ci.get("hi")
            if lo is not None and hi is not None:
                ax.errorbar([scale * value], [i], xerr=[[scale * (value - lo)], [scale * (hi - value)]], fmt="o",
                            color="C0", capsize=4)
            else:
                ax.plot([scale * value], [i], "o", mfc="none", color="C1")
                ax.annotate("no CI", (scale * value, i), textcoords="offset points", xytext=(6, 4), fontsize=7)
        ax.set_xlabel(label)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(reports)), names)
    axes[0].set_ylim(-0.7, len(reports) - 0.3)
    fig.suptitle("95% bootstrap intervals by patient (hollow: too few patients for an interval)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
