"""streaming.ringbuffer: absolute indexing, wrap-around, gaps recorded (never glued)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ictal.streaming.ringbuffer import RingBuffer


def _ramp(start: int, n: int, n_channels: int = 3) -> np.ndarray:
    """Samples whose value is their absolute index (channel c adds 1000 * c)."""
    return (np.arange(start, start + n)[None, :] + 1000.0 * np.arange(n_channels)[:, None]).astype(np.float32)


def test_read_after_wraparound_returns_samples_at_their_absolute_index():
    ring = RingBuffer(3, 100)
    for start in range(0, 250, 30):
        ring.append(_ramp(start, 30), start)
    assert (ring.start_index, ring.end_index) == (170, 270)
    data, valid = ring.read(180, 265)
    np.testing.assert_array_equal(data, _ramp(180, 85))
    assert valid.all()


def test_gap_is_recorded_filled_with_zeros_and_masked():
    ring = RingBuffer(3, 100)
    ring.append(_ramp(10, 20), 10)
    ring.append(_ramp(30, 20))  # no index given: contiguous with the previous samples
    assert ring.end_index == 50 and ring.gaps == []
    ring.append(_ramp(70, 10), 70)
    assert ring.gaps == [(50, 70)]
    data, valid = ring.read(40, 80)
    np.testing.assert_array_equal(valid, np.r_[np.ones(10), np.zeros(20), np.ones(10)].astype(bool))
    assert (data[:, 10:30] == 0).all()
    np.testing.assert_array_equal(data[:, 30:], _ramp(70, 10))


def test_gap_longer_than_the_buffer_leaves_only_filler_and_new_samples():
    ring = RingBuffer(2, 50)
    ring.append(_ramp(0, 50, 2), 0)
    ring.append(_ramp(1000, 5, 2), 1000)
    data, valid = ring.read(955, 1005)
    assert not valid[:45].any() and valid[45:].all()
    np.testing.assert_array_equal(data[:, 45:], _ramp(1000, 5, 2))
    assert ring.gaps == [(50, 1000)]


def test_old_gaps_are_forgotten_once_overwritten():
    ring = RingBuffer(1, 10)
    ring.append(np.ones((1, 5), np.float32), 0)
    ring.append(np.ones((1, 5), np.float32), 8)
    assert ring.gaps == [(5, 8)]
    ring.append(np.ones((1, 20), np.float32))
    assert ring.gaps == []


def test_overlapping_append_is_an_error():
    ring = RingBuffer(1, 10)
    ring.append(np.zeros((1, 5), np.float32), 100)
    with pytest.raises(ValueError, match="index 103 overlaps .*expected >= 105"):
        ring.append(np.zeros((1, 5), np.float32), 103)


def test_reading_outside_the_samples_held_is_an_error():
    ring = RingBuffer(1, 10)
    with pytest.raises(RuntimeError, match="empty"):
        ring.read(0, 1)
    ring.append(np.zeros((1, 30), np.float32), 0)
    with pytest.raises(IndexError, match=r"\[19, 25\) outside .*\[20, 30\)"):
        ring.read(19, 25)
    with pytest.raises(IndexError):
        ring.read(25, 31)


def test_wrong_channel_count_is_an_error():
    with pytest.raises(ValueError, match=r"\(4, n_samples\)"):
        RingBuffer(4, 10).append(np.zeros((3, 5), np.float32))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 70)), min_size=1, max_size=30))
def test_random_appends_match_a_plain_array(steps):
    capacity = 64
    ring = RingBuffer(2, capacity)
    reference: dict[int, float] = {}
    index = 0
    for gap, n in steps:
        index += gap
        ring.append(_ramp(index, n, 2), index)
        reference.update({i: float(i) for i in range(index, index + n)})
        index += n
    start = ring.start_index
    data, valid = ring.read(start, ring.end_index)
    for offset, i in enumerate(range(start, ring.end_index)):
        assert valid[offset] == (i in reference)
        assert data[0, offset] == (reference[i] if i in reference else 0.0)


def test_read_recent_gives_filler_for_samples_older_than_the_buffer_holds():
    ring = RingBuffer(2, 10)
    ring.append(np.arange(30, dtype=np.float32).reshape(2, 15) + 1, first_index=100)  # holds [105, 115)
    data, valid = ring.read_recent(95, 115)
    assert valid.tolist() == [False] * 10 + [True] * 10
    assert np.all(data[:, :10] == 0) and np.array_equal(data[:, 10:], ring.read(105, 115)[0])
    with pytest.raises(IndexError, match="beyond the newest sample 115"):
        ring.read_recent(100, 116)
