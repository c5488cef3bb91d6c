"""PNG plots of an evaluation: the sensitivity-vs-FA/24h curve and one timeline per recording.

matplotlib with the Agg backend (no display); each ``plot_*`` function writes one file and returns its path
(:func:`timeline_figure` returns the timeline's figure unsaved, for tests and callers that compose it).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ictal.alarms.config import AlarmThresholds  # noqa: E402
from ictal.alarms.postprocess import DetectedEvent  # noqa: E402
from ictal.training.datasets.base import UNKNOWN  # noqa: E402
from ictal.training.evaluate_metrics import ScoredRecording, SweepPoint  # noqa: E402

MAX_PLOT_POINTS = 4000
"""Probability traces longer than this are reduced to per-bin maxima (a peak is never hidden)."""


def plot_sensitivity_vs_fa(points: Sequence[SweepPoint], best: dict[float, SweepPoint | None], path: Path,
                           title: str = "") -> Path:
    """Sensitivity (OVERLAP) against false alarms per 24 h over the tau_on sweep.

    Parameters
    ----------
    points : sequence of SweepPoint
        The sweep; points without reference seizures (NaN sensitivity) are not drawn.
    best : dict of float to SweepPoint or None
        Operating point chosen per FA/24h budget; each budget is drawn as a dashed vertical line and
        its point circled.
    path : Path
        Output PNG.
    title : str
        Plot title.

    Returns
    -------
    path : Path
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    drawn = sorted((p for p in points if not math.isnan(p.sensitivity)), key=lambda p: (p.fa_per_24h, p.sensitivity))
    if drawn:
        fa = np.array([p.fa_per_24h for p in drawn])
        sens = np.array([100 * p.sensitivity for p in drawn])
        ax.plot(fa, sens, "o", ms=3, color="tab:blue", alpha=0.5, label="sweep points")
        # best sensitivity reachable within each FA/24h (operating points only, no interpolation)
        ax.plot(fa, np.maximum.accumulate(sens), drawstyle="steps-post", lw=1.2, color="tab:blue",
                label="best within budget")
    notes = []
    for budget, point in best.items():
        ax.axvline(budget, ls="--", lw=0.8, color="grey")
        if point is not None:
            ax.plot([point.fa_per_24h], [100 * point.sensitivity], "o", mfc="none", ms=9, color="tab:red")
            notes.append(f"{budget:g} FA/24h: {100 * point.sensitivity:.1f}% (tau_on {point.tau_on:g})")
        else:
            notes.append(f"{budget:g} FA/24h: n/a")
    ax.text(0.98, 0.04, "\n".join(notes), transform=ax.transAxes, ha="right", va="bottom", fontsize=7,
            bbox={"facecolor": "white", "alpha": 0.8, "lw": 0.5})
    if drawn:
        ax.legend(loc="upper left", fontsize=7)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel("false alarms per 24 h")
    ax.set_ylabel("sensitivity, NEDC OVERLAP (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    if not drawn:
        ax.text(0.5, 0.5, "no reference seizure: sensitivity undefined", transform=ax.transAxes, ha="center")
    ax.set_title(title or "sensitivity vs FA/24h", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _reduce(t: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if p.size <= MAX_PLOT_POINTS:
        return t, p
    n_bins = MAX_PLOT_POINTS // 2
    edges = np.linspace(0, p.size, n_bins + 1).astype(int)
    with np.errstate(all="ignore"):
        peaks = np.array([np.nanmax(p[a:b]) if np.isfinite(p[a:b]).any() else np.nan
                          for a, b in zip(edges[:-1], edges[1:], strict=True)])
    return t[edges[:-1]], peaks


def _spans(mask: np.ndarray) -> list[tuple[int, int]]:
    padded = np.concatenate(([False], mask, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


def plot_timeline(rec: ScoredRecording, events: Sequence[DetectedEvent], thresholds: AlarmThresholds,
                  path: Path, note: str | None = None) -> Path:
    """Timeline of one recording: probability, tau_on/tau_off, reference and hypothesis events.

    Parameters
    ----------
    rec : ScoredRecording
        Probabilities (NaN = unscored, not drawn), labels (unrated time shaded grey) and reference
        seizures (red bars).
    events : sequence of DetectedEvent
        Hypothesis events (blue bars; a tick at each alarm time ``raised_s``).
    thresholds : AlarmThresholds
        tau_on and tau_off are drawn as horizontal lines.
    path : Path
        Output PNG.
    note : str, optional
        Why the recording is not scored (``training.evaluate.recording_status``): written across the
        probability panel and in the title, so an empty plot is never read as "no seizure".

    Returns
    -------
    path : Path

    Notes
    -----
    The legend stands outside the probability axes, on their right (:func:`timeline_figure`), so it
    never hides the trace where an alarm fires.
    """
    fig = timeline_figure(rec, events, thresholds, note)
    fig.savefig(path)
    plt.close(fig)
    return path


def timeline_figure(rec: ScoredRecording, events: Sequence[DetectedEvent], thresholds: AlarmThresholds,
                    note: str | None = None) -> plt.Figure:
    """The figure :func:`plot_timeline` saves (same parameters); the caller closes it.

    Returns
    -------
    fig : matplotlib.figure.Figure
        Two axes sharing time: the probability panel (legend outside it, at its right) and the event bars.
    """
    rate = rec.rate_hz
    t = np.arange(rec.probs.size) / rate
    tr, pr = _reduce(t, rec.probs.astype(np.float64))
    fig, (ax, axe) = plt.subplots(2, 1, figsize=(10, 3.6), dpi=100, sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1]})
    for a, b in _spans(rec.labels == UNKNOWN):
        ax.axvspan(a / rate, b / rate, color="0.9", lw=0)
    for e in rec.ref_events:
        ax.axvspan(e.start_s, e.stop_s, color="tab:red", alpha=0.12, lw=0)
    ax.plot(tr, pr, lw=0.7, color="k", label="p(seizure)")
    ax.axhline(thresholds.tau_on, color="tab:red", ls="--", lw=0.8, label=f"tau_on {thresholds.tau_on:g}")
    ax.axhline(thresholds.tau_off, color="tab:orange", ls=":", lw=0.8, label=f"tau_off {thresholds.tau_off:g}")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("probability")
    # Outside the axes, at their right: inside, it covered the trace exactly where an alarm fires.
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), borderaxespad=0.0, fontsize=7)
    ax.set_title(f"{rec.recording_id}  (grey: unrated; red: reference seizure)"
                 + ("  NOT SCORED" if note else ""), fontsize=9, color="tab:red" if note else "black")
    if note:
        ax.text(0.5, 0.5, "\n".join(textwrap.wrap(note, 90)), transform=ax.transAxes, ha="center", va="center",
                fontsize=9, color="tab:red", bbox={"facecolor": "white", "edgecolor": "tab:red", "lw": 0.8})
    for e in rec.ref_events:
        axe.plot([e.start_s, e.stop_s], [1, 1], lw=6, color="tab:red", solid_capstyle="butt")
    for e in events:
        axe.plot([e.onset_s, e.offset_s], [0, 0], lw=6, color="tab:blue", solid_capstyle="butt")
        if math.isfinite(e.raised_s):
            axe.plot([e.raised_s], [0], marker="v", color="navy", ms=6)
    axe.set_yticks([0, 1], ["hyp", "ref"])
    axe.set_ylim(-0.6, 1.6)
    axe.set_xlim(0, max(rec.duration_s, t[-1] if t.size else 0.0))
    axe.set_xlabel("time (s)")
    fig.tight_layout()
    return fig
