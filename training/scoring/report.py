"""Score a reference list against a hypothesis list with every scorer; text and JSON renderings.

This is what ``ictal score`` runs. JSON layout (ratios are fractions in [0, 1], times in seconds,
rates per 24 h)::

    {
      "ref_list": str, "hyp_list": str, "n_files": int, "duration_s": float,
      "nedc": {                                  # NEDC EEG Eval v6.0.0-compatible scorers
        "dpalign" | "epoch" | "overlap" | "taes": {
          "scorer": str, "n_files": int, "duration_s": float,
          "labels": {"seiz" | "bckg": {
              "label", "targets", "hits", "misses", "false_alarms", "insertions", "deletions",
              "tp", "tn", "fp", "fn", "sensitivity", "specificity", "precision", "npv", "miss_rate",
              "fpr", "fdr", "false_omission_rate", "accuracy", "misclassification_rate",
              "prevalence", "f1", "mcc", "fa_per_24h"}},
          "total_false_alarms": float, "total_fa_per_24h": float}},
      "szcore": {"n_files", "duration_s", "ref_events", "tp", "fp", "fn", "sensitivity",
                 "precision", "f1", "fp_per_24h"}   # null where undefined (no events)
    }

EPOCH counts are epochs of 0.25 s and its FA/24h is seconds of false alarm per 24 h, as NEDC prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ictal.training.scoring import nedc_dpalign, nedc_epoch, nedc_overlap, nedc_taes, szcore
from ictal.training.scoring.annotations import Annotation, AnnotationError, read_annotation, read_list
from ictal.training.scoring.nedc_common import SEIZ, NedcSummary

NEDC_SCORERS = {
    "dpalign": ("NEDC DP alignment", nedc_dpalign.score),
    "epoch": ("NEDC EPOCH (0.25 s)", nedc_epoch.score),
    "overlap": ("NEDC OVERLAP", nedc_overlap.score),
    "taes": ("NEDC TAES", nedc_taes.score),
}


def _recording_name(path: Path) -> str:
    return path.name.split(".")[0]


def load_pairs(ref_list: str | Path, hyp_list: str | Path) -> list[tuple[Annotation, Annotation]]:
    """Read the annotation pairs named by two list files.

    Parameters
    ----------
    ref_list, hyp_list : str or Path
        List files of reference and hypothesis annotations, in the same order.

    Returns
    -------
    list of (Annotation, Annotation)

    Raises
    ------
    AnnotationError
        If the lists have different lengths, a pair names different recordings (file names up to the
        first dot differ), or a file is malformed.
    OSError
        If a file cannot be read.
    """
    refs = read_list(ref_list)
    hyps = read_list(hyp_list)
    if len(refs) != len(hyps):
        raise AnnotationError(
            f"{ref_list} lists {len(refs)} files but {hyp_list} lists {len(hyps)}, expected the same number"
        )
    pairs = []
    for line, (ref, hyp) in enumerate(zip(refs, hyps, strict=True), start=1):
        if _recording_name(ref) != _recording_name(hyp):
            raise AnnotationError(
                f"entry {line} pairs different recordings: ref {ref.name} ({ref_list}) with hyp "
                f"{hyp.name} ({hyp_list}), expected the same recording name"
            )
        pairs.append((read_annotation(ref), read_annotation(hyp)))
    return pairs


@dataclass
class ScoreReport:
    """Results of every scorer over the same ref/hyp pairs."""

    ref_list: str
    hyp_list: str
    nedc: dict[str, NedcSummary]
    szcore: szcore.SzcoreSummary

    @property
    def n_files(self) -> int:
        """Number of ref/hyp pairs."""
        return self.szcore.n_files

    @property
    def duration_s(self) -> float:
        """Total reference duration in seconds."""
        return self.szcore.duration_s

    def to_dict(self) -> dict:
        """The JSON layout of the module docstring."""
        return {
            "ref_list": self.ref_list,
            "hyp_list": self.hyp_list,
            "n_files": self.n_files,
            "duration_s": self.duration_s,
            "nedc": {name: summary.to_dict() for name, summary in self.nedc.items()},
            "szcore": self.szcore.to_dict(),
        }


def score_pairs(
    pairs: list[tuple[Annotation, Annotation]], ref_list: str = "", hyp_list: str = ""
) -> ScoreReport:
    """Run the four NEDC scorers (default parameters) and SzCORE on the same pairs."""
    nedc = {name: fn(pairs) for name, (_, fn) in NEDC_SCORERS.items()}
    return ScoreReport(str(ref_list), str(hyp_list), nedc, szcore.score(pairs))


def score_lists(ref_list: str | Path, hyp_list: str | Path) -> ScoreReport:
    """`load_pairs` then `score_pairs`; raises what they raise."""
    return score_pairs(load_pairs(ref_list, hyp_list), str(ref_list), str(hyp_list))


def _pct(x: float) -> str:
    return f"{100 * x:9.4f}%"


def format_text(report: ScoreReport) -> str:
    """A readable table: one block per NEDC scorer (a row per label) and the SzCORE line."""
    lines = [
        f"Ref: {report.ref_list}",
        f"Hyp: {report.hyp_list}",
        f"Files: {report.n_files}   total reference duration: {report.duration_s:.4f} s",
        "",
        f"{'scorer':<22}{'label':<6}{'targets':>10}{'hits':>10}{'misses':>10}{'FA':>10}"
        f"{'sens':>11}{'spec':>11}{'prec':>11}{'F1':>8}{'FA/24h':>12}",
    ]
    for name, summary in report.nedc.items():
        title = NEDC_SCORERS[name][0]
        fmt = "{:10.2f}" if name == "taes" else "{:10.0f}"
        for label, s in summary.labels.items():
            lines.append(
                f"{title if label == SEIZ else '':<22}{label.upper():<6}"
                + fmt.format(s.targets)
                + fmt.format(s.hits)
                + fmt.format(s.misses)
                + fmt.format(s.false_alarms)
                + f" {_pct(s.sensitivity)} {_pct(s.specificity)} {_pct(s.precision)}{s.f1:8.4f}{s.fa_per_24h:12.4f}"
            )
    sz = report.szcore

    def opt(x: float, pct: bool) -> str:
        if x != x:  # NaN: undefined
            return f"{'n/a':>10}"
        return _pct(x) if pct else f"{x:8.4f}"

    lines += [
        "",
        "EPOCH counts are 0.25 s epochs; its FA/24h is seconds of false alarm per 24 h (as NEDC prints).",
        "",
        "SzCORE (timescoring: +30 s/-60 s tolerance, merge < 90 s, split > 300 s), seizure events:",
        f"  ref events {sz.ref_events}   TP {sz.tp}   FP {sz.fp}   sensitivity {opt(sz.sensitivity, True)}"
        f"   precision {opt(sz.precision, True)}   F1 {opt(sz.f1, False)}   FP/24h {sz.fp_per_24h:.4f}",
    ]
    return "\n".join(lines)
