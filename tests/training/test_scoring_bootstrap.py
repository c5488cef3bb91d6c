"""Bootstrap intervals by unit: reproducible, around the value, absent (with the reason) for too few units."""

from __future__ import annotations

import numpy as np
import pytest

from ictal.training.evaluate_metrics import auroc_auprc
from ictal.training.scoring.bootstrap import (
    MIN_UNITS,
    auroc_interval,
    exact_proportion_interval,
    format_interval,
    poisson_rate_interval,
    ratio_interval,
)


def test_ratio_interval_is_reproducible_and_holds_the_pooled_value():
    hits, targets = [1, 2, 0, 1, 3, 0, 2], [2, 2, 1, 1, 3, 0, 4]
    a = ratio_interval(hits, targets, what="with seizures")
    assert a == ratio_interval(hits, targets, what="with seizures")  # fixed seed
    assert a["value"] == pytest.approx(9 / 13) and a["n_units"] == 6  # the unit without targets does not count
    assert a["lo"] < a["value"] < a["hi"] and 0.0 <= a["lo"] and a["hi"] <= 1.0 and a["note"] is None


def test_interval_narrows_as_units_are_added():
    rng = np.random.default_rng(3)
    widths = []
    for n in (6, 60):
        targets = rng.integers(1, 4, n)
        hits = rng.binomial(targets, 0.6)
        ci = ratio_interval(hits, targets)
        widths.append(ci["hi"] - ci["lo"])
    assert widths[1] < widths[0] / 2


def test_too_few_units_give_no_interval_and_say_why_and_never_nan():
    ci = ratio_interval([3, 1], [4, 2], what="with seizures")
    assert ci["value"] == pytest.approx(4 / 6) and ci["lo"] is None and ci["hi"] is None
    assert ci["note"] == f"no interval: 2 patients with seizures, fewer than {MIN_UNITS}"
    assert format_interval(ci, ".2f", 100, "%") == f"66.67% (no interval: 2 patients with seizures, fewer than {MIN_UNITS})"
    empty = ratio_interval([0, 0], [0, 0])
    assert empty["value"] is None and format_interval(empty) == "n/a"


def test_units_of_one_rate_give_no_degenerate_interval():
    """No false alarm in any of 8 patients: every resample is 0, so [0, 0] would be a false certainty."""
    ci = ratio_interval([0] * 8, [3600.0] * 8, scale=86400.0)
    assert ci["value"] == 0.0 and ci["lo"] is None and ci["hi"] is None and ci["n_units"] == 8
    assert ci["note"] == "no interval: all 8 patients have the same rate, so every resample does; see the exact interval"
    assert format_interval(ci) == f"0.00 ({ci['note']})"
    one_fa = ratio_interval([0] * 7 + [1], [3600.0] * 8, scale=86400.0)
    assert one_fa["lo"] == 0.0 < one_fa["value"] < one_fa["hi"] and one_fa["note"] is None


def test_ratio_interval_rejects_bad_counts():
    with pytest.raises(ValueError, match="one length"):
        ratio_interval([1, 2], [1])
    with pytest.raises(ValueError, match="finite and >= 0"):
        ratio_interval([1, -1], [1, 1])


def test_auroc_interval_is_stratified_and_contains_the_exact_value():
    rng = np.random.default_rng(1)
    probs, targets = [], []
    for unit in range(12):  # 6 patients with seizures, 6 without
        y = rng.random(4000) < (0.2 if unit % 2 else 0.0)
        probs.append(np.clip(rng.normal(0.3 + 0.25 * y + 0.05 * (unit % 3), 0.2), 0, 1))
        targets.append(y)
    exact = auroc_auprc(np.concatenate(probs), np.concatenate(targets))[0]
    ci = auroc_interval(exact, probs, targets)
    assert ci["value"] == exact and ci["n_units"] == 12
    assert ci["lo"] < exact < ci["hi"] and ci["hi"] - ci["lo"] < 0.2
    few = auroc_interval(exact, probs[:6], targets[:6])  # 3 patients with seizure samples
    assert few["lo"] is None and "3 patients with seizure samples" in few["note"]


def test_exact_proportion_interval_is_clopper_pearson():
    one_of_two = exact_proportion_interval(1, 2)
    # Clopper-Pearson limits of 1/2: Beta(0.025; 1, 2) and Beta(0.975; 2, 1)
    assert one_of_two["value"] == 0.5 and one_of_two["n_units"] == 2 and one_of_two["note"] is None
    assert one_of_two["lo"] == pytest.approx(1 - np.sqrt(0.975), abs=1e-9)
    assert one_of_two["hi"] == pytest.approx(np.sqrt(0.975), abs=1e-9)
    none_found = exact_proportion_interval(0, 5)
    assert none_found["lo"] == 0.0 and none_found["hi"] == pytest.approx(1 - 0.025 ** (1 / 5), abs=1e-9)
    assert exact_proportion_interval(10, 10)["hi"] == 1.0
    empty = exact_proportion_interval(0, 0)
    assert empty["value"] is None and empty["lo"] is None and "no seizure" in empty["note"]
    assert format_interval(empty) == "n/a"
    with pytest.raises(ValueError, match="must lie in"):
        exact_proportion_interval(3, 2)


def test_poisson_rate_interval_bounds_zero_events_by_the_time_observed():
    day = 86400.0
    zero = poisson_rate_interval(0, 7200.0, scale=day)  # 0 FA in 2 h
    assert zero["value"] == 0.0 and zero["lo"] == 0.0
    assert zero["hi"] == pytest.approx(-np.log(0.025) / 7200.0 * day, rel=1e-9)  # 44.3 per 24 h
    three = poisson_rate_interval(3, day, scale=day)  # 3 in 24 h: Garwood limits 0.619 and 8.767
    assert three["value"] == 3.0
    assert three["lo"] == pytest.approx(0.6187, abs=1e-3) and three["hi"] == pytest.approx(8.7673, abs=1e-3)
    longer = poisson_rate_interval(30, 10 * day, scale=day)  # same rate, ten times the time: narrower
    assert longer["hi"] - longer["lo"] < three["hi"] - three["lo"]
    assert poisson_rate_interval(0, 0.0)["value"] is None
    with pytest.raises(ValueError):
        poisson_rate_interval(-1, 10.0)
