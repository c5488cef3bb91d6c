"""ECE, Brier and the 99.9th percentile on seizure samples, before and after a checkpoint's calibration.

Usage: PYTHONPATH=$PWD python scripts/calibration_before_after.py EVAL_DIR CHECKPOINT

EVAL_DIR is the output of ``ictal evaluate --out`` for a checkpoint with a temperature (its served
probabilities are calibrated); the uncalibrated ones are recovered exactly as sigmoid(logit(p) * T)
(up to the 1e-7 clip of :func:`ictal.training.calibration.logits_of`). Nothing is re-run.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from ictal.detector.calibration import read_calibration
from ictal.training.calibration import apply_temperature, recordings_calibration
from ictal.training.evaluate import load_scored


def main() -> None:
    eval_dir, checkpoint = Path(sys.argv[1]), Path(sys.argv[2])
    meta = json.loads((checkpoint / "metadata.json").read_text())
    t = read_calibration(meta.get("calibration")).temperature
    report = json.loads((eval_dir / "report.json").read_text())
    if report["meta"]["checkpoint_id"] != meta["checkpoint_id"]:
        sys.exit(f"{eval_dir} scored checkpoint {report['meta']['checkpoint_id']}, not {meta['checkpoint_id']}")
    recs = load_scored(eval_dir)
    raw = [replace(r, probs=apply_temperature(r.probs, 1.0 / t)) for r in recs]
    n_seiz = sum(len(r.ref_events) for r in recs)
    n_rec_seiz = sum(1 for r in recs if (r.labels == 1).any())
    for name, rs in (("before calibration (T = 1)", raw), (f"after calibration (T = {t:.4g})", recs)):
        c = recordings_calibration(rs)
        print(f"{name}: ECE {c.ece:.3f}, Brier {c.brier:.4f} (prevalence-only {c.brier_reference:.4f}), "
              f"99.9th percentile on seizure samples {c.p999:.4f}, max {max(np.nanmax(r.probs) for r in rs):.4f}; "
              f"{c.n:,} labelled samples, {c.n_positive:,} seizure, from {n_seiz} seizures in {n_rec_seiz} of "
              f"{len(rs)} recordings")


if __name__ == "__main__":
    main()
