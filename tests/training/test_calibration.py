"""Calibration figures: ECE, Brier score and the reliability bins behave as their definitions say."""

from __future__ import annotations

import numpy as np
import pytest

from ictal.training.calibration import calibration, plot_reliability, recordings_calibration
from ictal.training.evaluate_metrics import ScoredRecording


def test_a_calibrated_source_has_a_small_ece_and_an_overconfident_one_a_large_one():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 200_000)
    y = rng.uniform(0, 1, p.size) < p  # P(seizure | p) = p: calibrated by construction
    good = calibration(p, y)
    assert good.ece < 0.01
    assert good.brier == pytest.approx(np.mean((p - y) ** 2))
    # the same samples reported as far more certain than they are
    sharp = np.where(p > 0.5, 0.99, 0.01)
    bad = calibration(sharp, y)
    assert bad.ece > 0.2 and bad.max_calibration_error > 0.2
    filled = bad.bin_count > 0
    assert filled.sum() == 2  # only the bins of 0.01 and 0.99


def test_ece_is_the_count_weighted_gap_of_hand_made_bins():
    p = np.array([0.05, 0.05, 0.05, 0.05, 0.95, 0.95])
    y = np.array([0, 0, 0, 1, 1, 1])
    cal = calibration(p, y, n_bins=10)
    # bin 0: mean p 0.05, observed 0.25 (4 samples); bin 9: mean p 0.95, observed 1.0 (2 samples)
    assert cal.ece == pytest.approx(4 / 6 * 0.20 + 2 / 6 * 0.05)
    assert cal.brier == pytest.approx((3 * 0.05**2 + 0.95**2 + 2 * 0.05**2) / 6)
    assert cal.brier_reference == pytest.approx(0.5 * 0.5)
    assert cal.p999 == pytest.approx(0.95, abs=1e-9)
    assert calibration(np.array([1.0]), np.array([1])).bin_count[-1] == 1  # p = 1 falls in the last bin


def test_bad_input_is_refused_and_no_sample_gives_nan():
    with pytest.raises(ValueError, match="same length"):
        calibration(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        calibration(np.array([1.2]), np.array([1]))
    empty = calibration(np.zeros(0), np.zeros(0))
    assert empty.n == 0 and np.isnan(empty.ece) and empty.to_dict()["ece"] is None


def test_recordings_pool_only_labelled_scored_samples_and_the_diagram_is_written(tmp_path):
    probs = np.array([0.9, 0.9, np.nan, 0.1, 0.1, 0.7], dtype=np.float32)
    labels = np.array([1, 1, 1, 0, -1, 0], dtype=np.int8)
    rec = ScoredRecording("r", 6 / 256, probs, labels, [])
    cal = recordings_calibration([rec], n_bins=10)
    assert (cal.n, cal.n_positive) == (4, 2)  # the NaN and the unrated sample are left out
    png = plot_reliability(cal, tmp_path / "reliability.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
