"""streaming.scheduler: warm-up until the first full window, then one window per hop."""

from __future__ import annotations

import pytest

from ictal.streaming.scheduler import WindowScheduler


def test_nothing_is_due_during_warm_up_then_first_full_window():
    scheduler = WindowScheduler(hop_samples=1024, window_samples=15360)
    scheduler.start(0)
    assert scheduler.due(15359) == []
    assert scheduler.warming_up
    assert scheduler.due(15360) == [15360]
    assert not scheduler.warming_up


def test_one_window_per_hop_and_each_only_once():
    scheduler = WindowScheduler(hop_samples=1024, window_samples=15360)
    scheduler.start(0)
    assert scheduler.due(15360 + 3 * 1024 + 5) == [15360, 16384, 17408, 18432]
    assert scheduler.due(15360 + 3 * 1024 + 6) == []
    assert scheduler.due(15360 + 4 * 1024) == [19456]


def test_origin_offsets_the_grid():
    scheduler = WindowScheduler(hop_samples=256, window_samples=1000)
    scheduler.start(500)
    assert scheduler.due(1499) == []
    assert scheduler.due(1756) == [1500, 1756]


def test_invalid_hop_and_use_before_start_are_errors():
    with pytest.raises(ValueError, match="hop_samples"):
        WindowScheduler(hop_samples=0)
    with pytest.raises(ValueError, match="hop_samples"):
        WindowScheduler(hop_samples=20000)
    scheduler = WindowScheduler(hop_samples=10, window_samples=100)
    with pytest.raises(RuntimeError, match="before start"):
        scheduler.due(10)
    scheduler.start(0)
    with pytest.raises(RuntimeError, match="already started"):
        scheduler.start(5)
