"""Batched inference from a checkpoint: batching, dtype, attributes, refusal of bad windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ictal.detector.checkpoint import CheckpointError, save_checkpoint
from ictal.detector.config import FrontendConfig
from ictal.detector.inference import Detector
from ictal.detector.model import build_model
from tests.detector.model_configs import small_config


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    config = small_config()
    model = build_model(config)
    path = tmp_path_factory.mktemp("inference") / "ckpt"
    return save_checkpoint(path, model, config, FrontendConfig())


@pytest.fixture(scope="module")
def windows():
    return np.random.default_rng(0).standard_normal((5, 19, 256)).astype(np.float32)


def test_batching_in_chunks_gives_the_same_result_as_one_big_batch(checkpoint, windows):
    in_chunks = Detector.from_checkpoint(checkpoint, device="cpu", max_batch=2).predict(windows)
    at_once = Detector.from_checkpoint(checkpoint, device="cpu", max_batch=8).predict(windows)
    one_by_one = np.concatenate(
        [Detector.from_checkpoint(checkpoint, device="cpu", max_batch=1).predict(w[None]) for w in windows]
    )
    np.testing.assert_allclose(in_chunks, at_once, atol=1e-5)
    np.testing.assert_allclose(one_by_one, at_once, atol=1e-5)


def test_predict_returns_float32_probabilities_equal_to_the_sigmoid_of_the_logits(checkpoint, windows):
    detector = Detector.from_checkpoint(checkpoint, device="cpu")
    probs = detector.predict(windows)
    assert probs.shape == (5, 256) and probs.dtype == np.float32
    assert probs.min() >= 0 and probs.max() <= 1
    with torch.no_grad():
        expected = torch.sigmoid(detector.model(torch.from_numpy(windows))).numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    assert detector.predict(windows[:0]).shape == (0, 256)


def test_attributes_name_the_model_for_metrics(checkpoint):
    detector = Detector.from_checkpoint(checkpoint, device="auto", backend="reference")
    assert detector.model_id == detector.checkpoint.checkpoint_id and len(detector.model_id) == 16
    assert detector.stack == "bimamba2"
    assert detector.backend == "reference"
    assert detector.device == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert detector.dtype == (torch.bfloat16 if torch.cuda.is_available() else torch.float32)
    assert detector.frontend_config == FrontendConfig()
    assert detector.thresholds is None
    detector.warmup((1, 2))


def test_bad_windows_are_refused_with_the_shape_found(checkpoint, windows):
    detector = Detector.from_checkpoint(checkpoint, device="cpu")
    with pytest.raises(ValueError, match=r"\(B, 19, 256\).*\(5, 19, 128\)"):
        detector.predict(windows[..., :128])
    bad = windows.copy()
    bad[0, 3, 10:13] = np.nan
    with pytest.raises(ValueError, match="3 non-finite"):
        detector.predict(bad)


def test_a_missing_checkpoint_and_an_unavailable_device_are_refused(checkpoint, tmp_path):
    with pytest.raises(CheckpointError, match="not a directory"):
        Detector.from_checkpoint(tmp_path / "none")
    with pytest.raises(ValueError, match="max_batch"):
        Detector.from_checkpoint(checkpoint, device="cpu", max_batch=0)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            Detector.from_checkpoint(checkpoint, device="cuda")
