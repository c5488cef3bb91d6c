"""The output-position contract: one function decides where training takes its loss and what the
daemon stitches, and both agree sample for sample."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ictal.detector import FS_HZ, WINDOW_SAMPLES
from ictal.detector.config import FrontendConfig
from ictal.detector.output_position import (
    first_served_index,
    seconds_to_samples,
    served_offsets,
    served_span,
)
from ictal.streaming.bed import BedSession
from ictal.streaming.chunk import Chunk
from ictal.training.config import ServingConfig
from ictal.training.losses import served_position_loss


def test_served_span_is_the_hop_that_ends_lookahead_before_the_window_end():
    assert served_span(20_000, 1024, 0) == (18_976, 20_000)
    assert served_span(20_000, 1024, 512) == (18_464, 19_488)
    assert served_offsets(1024, 512) == (WINDOW_SAMPLES - 1536, WINDOW_SAMPLES - 512)
    assert first_served_index(0, 10 * FS_HZ, 4 * FS_HZ, 0) == 6 * FS_HZ
    assert first_served_index(100, 2 * FS_HZ, 4 * FS_HZ, 0) == 100  # clipped to the samples that exist


@pytest.mark.parametrize("hop, lookahead", [(0, 0), (1024, -1), (WINDOW_SAMPLES, 1)])
def test_impossible_positions_are_refused(hop, lookahead):
    with pytest.raises(ValueError, match="hop|lookahead"):
        served_span(WINDOW_SAMPLES, hop, lookahead)


def test_a_lookahead_that_is_not_whole_samples_is_refused():
    assert seconds_to_samples(2.5, "lookahead_s") == 640
    with pytest.raises(ValueError, match=r"lookahead_s must be a whole number of samples at 256 Hz \(found 0\.001 s\)"):
        seconds_to_samples(0.001, "lookahead_s")


class IndexScorer:
    """Every window's "probability" is the absolute index of each of its samples (scaled into [0, 1])."""

    scale = 1e-7

    def __init__(self):
        self.ends = []

    def probs_for(self, window) -> np.ndarray:
        self.ends.append(window.end_index)
        return ((window.start_index + np.arange(WINDOW_SAMPLES)) * self.scale).astype(np.float32)


@pytest.mark.parametrize("lookahead_s", [0.0, 2.0, 5.0, 10.0])
def test_the_training_loss_positions_are_the_positions_the_daemon_stitches(lookahead_s):
    hop_s = 4.0
    serving = ServingConfig(hop_s=hop_s, lookahead_s=lookahead_s, min_history_s=10.0)
    seen = []

    def recording_loss(logits, labels):
        seen.append(labels[0].numpy().copy())
        return logits.sum() * 0.0

    loss_fn = served_position_loss(recording_loss, serving, WINDOW_SAMPLES)
    offsets = torch.arange(WINDOW_SAMPLES)[None]
    loss_fn(torch.zeros(1, WINDOW_SAMPLES), offsets)
    trained = seen[0]  # the window offsets the loss was given

    # the daemon's session on 100 s of signal: which offsets of each window become output?
    fs = 256.0
    rng = np.random.default_rng(0)
    data = rng.normal(0, 20, (19, int(100 * fs))).astype(np.float32)
    session = BedSession("bed-p", FrontendConfig(), fs, _thresholds(), hop_s=hop_s, lookahead_s=lookahead_s)
    scorer = IndexScorer()
    full_windows = 0
    for start in range(0, data.shape[1], 512):
        chunk = Chunk(np.ascontiguousarray(data[:, start:start + 512]), start, start / fs, fs)
        for window in session.push(chunk)[0]:
            result = session.score(window, scorer.probs_for(window))
            for first, seg in result.segments:
                served = np.arange(first, first + seg.size) - window.start_index
                np.testing.assert_allclose(seg, (served + window.start_index) * IndexScorer.scale, rtol=1e-6)
                if not getattr(window, "padding_samples", 0) and seg.size == trained.size:
                    full_windows += 1
                    np.testing.assert_array_equal(served, trained)
                else:  # a padded warm-up window (clipped to its real history), or the first full
                    # window after them, whose span partly repeats the last padded one's (not re-emitted)
                    assert set(served.tolist()) <= set(trained.tolist())
    assert full_windows >= 5


def _thresholds():
    from ictal.alarms.config import AlarmThresholds

    return AlarmThresholds(tau_on=0.9, tau_off=0.5, min_duration_s=2.0)


def test_served_loss_ignores_every_position_but_the_span_and_the_whole_window_option_adds_the_rest():
    from ictal.training.losses import focal_loss

    serving = ServingConfig(hop_s=4.0, lookahead_s=2.0)
    base = lambda logits, labels: focal_loss(logits, labels, 0.5, 2.0)  # noqa: E731
    loss_fn = served_position_loss(base, serving, WINDOW_SAMPLES)
    lo, hi = served_offsets(1024, 512)
    labels = torch.zeros(2, WINDOW_SAMPLES, dtype=torch.int64)
    logits = torch.full((2, WINDOW_SAMPLES), -4.0)
    reference = float(loss_fn(logits, labels))
    wrong_elsewhere = logits.clone()
    wrong_elsewhere[:, :lo] = 8.0  # confidently wrong outside the span: not trained there
    wrong_elsewhere[:, hi:] = 8.0
    assert float(loss_fn(wrong_elsewhere, labels)) == pytest.approx(reference)
    wrong_inside = logits.clone()
    wrong_inside[:, lo] = 8.0
    assert float(loss_fn(wrong_inside, labels)) > reference
    with_whole = served_position_loss(base, serving.model_copy(update={"whole_window_loss_weight": 0.5}),
                                      WINDOW_SAMPLES)
    assert float(with_whole(wrong_elsewhere, labels)) > float(with_whole(logits, labels))
    window_loss = served_position_loss(base, serving.model_copy(update={"loss_positions": "window"}),
                                       WINDOW_SAMPLES)
    assert window_loss is base
