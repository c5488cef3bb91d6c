"""Issue 22: temperature scaling fitted on training recordings, stored in the checkpoint, applied by Detector."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from ictal.alarms.config import AlarmThresholds
from ictal.detector.checkpoint import CheckpointError, save_checkpoint
from ictal.detector.config import FrontendConfig
from ictal.detector.inference import Detector
from ictal.detector.model import build_model
from ictal.training.calibration import (
    apply_temperature,
    calibration,
    calibration_entry,
    fit_temperature,
    write_checkpoint_calibration,
)
from ictal.training.evaluate_metrics import ScoredRecording
from tests.detector.model_configs import small_config


def _miscalibrated(true_temperature: float, n: int = 40000, seed: int = 0):
    """Probabilities sigmoid(z) whose labels follow sigmoid(z / true_temperature)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 3.0, n)
    y = rng.random(n) < 1 / (1 + np.exp(-z / true_temperature))
    return 1 / (1 + np.exp(-z)), y


@pytest.mark.parametrize("true_temperature", [0.5, 2.0])
def test_fit_recovers_the_temperature_and_lowers_the_ece(true_temperature):
    p, y = _miscalibrated(true_temperature)
    fit = fit_temperature(p, y)
    assert fit.temperature == pytest.approx(true_temperature, rel=0.05)
    assert fit.nll_after < fit.nll_before
    assert calibration(apply_temperature(p, fit.temperature), y).ece < 0.5 * calibration(p, y).ece


def test_fit_refuses_labels_of_one_class():
    with pytest.raises(ValueError, match="0 seizure of 3"):
        fit_temperature(np.array([0.1, 0.2, 0.9]), np.zeros(3, bool))


def test_apply_temperature_keeps_unscored_samples_and_the_ranking():
    p = np.array([0.2, np.nan, 0.9, 0.6], dtype=np.float32)
    out = apply_temperature(p, 0.5)
    assert np.isnan(out[1])
    assert out[2] > 0.98 and out[0] < 0.06
    assert list(np.argsort(out[[0, 2, 3]])) == list(np.argsort(p[[0, 2, 3]]))
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature(p, 0.0)


@pytest.fixture()
def checkpoint(tmp_path):
    torch.manual_seed(0)
    config = small_config()
    return save_checkpoint(tmp_path / "ckpt", build_model(config), config, FrontendConfig(),
                           extra={"thresholds": {"tau_on": 0.7, "tau_off": 0.4}})


def _entry(checkpoint, temperature: float, checkpoint_id: str | None = None) -> dict:
    meta = json.loads((checkpoint / "metadata.json").read_text())
    fit = fit_temperature(*_miscalibrated(temperature, n=2000))
    return calibration_entry(fit, 1.0, checkpoint_id=checkpoint_id or meta["checkpoint_id"], dataset="synthetic",
                             recordings=["a"])


def test_detector_predicts_the_sigmoid_of_the_logits_over_the_stored_temperature(checkpoint):
    windows = np.random.default_rng(0).standard_normal((3, 19, 256)).astype(np.float32)
    raw = Detector.from_checkpoint(checkpoint, device="cpu")
    entry = _entry(checkpoint, 2.0)
    write_checkpoint_calibration(checkpoint, entry)
    calibrated = Detector.from_checkpoint(checkpoint, device="cpu")
    assert calibrated.model_id == raw.model_id  # metadata only: the weights' id is unchanged
    assert calibrated.calibration.temperature == pytest.approx(entry["temperature"])
    with torch.no_grad():
        logits = raw.model(torch.from_numpy(windows))
    expected = torch.sigmoid(logits / entry["temperature"]).numpy()
    np.testing.assert_allclose(calibrated.predict(windows), expected, atol=1e-6)
    assert not np.allclose(raw.predict(windows), expected, atol=1e-3)


def test_detector_step_applies_the_same_temperature(tmp_path):
    torch.manual_seed(0)
    config = small_config(direction="causal")
    path = save_checkpoint(tmp_path / "causal", build_model(config), config, FrontendConfig(normalisation="running"))
    x = np.random.default_rng(1).standard_normal((1, 19, 256)).astype(np.float32)
    raw = Detector.from_checkpoint(path, device="cpu")
    write_checkpoint_calibration(path, _entry(path, 0.5))
    det = Detector.from_checkpoint(path, device="cpu")
    t = det.calibration.temperature
    probs, _ = det.step(x, det.init_state(1))
    raw_probs, _ = raw.step(x, raw.init_state(1))
    np.testing.assert_allclose(probs[0], apply_temperature(raw_probs[0], t), atol=2e-5)
    np.testing.assert_allclose(det.predict(x)[0], probs[0], atol=1e-4)


def test_a_calibration_fitted_for_other_weights_is_refused_naming_both(checkpoint):
    write_checkpoint_calibration(checkpoint, _entry(checkpoint, 2.0, checkpoint_id="0123456789abcdef"))
    with pytest.raises(CheckpointError, match="0123456789abcdef"):
        Detector.from_checkpoint(checkpoint, device="cpu")


@pytest.mark.parametrize("entry", [{"method": "platt", "temperature": 1.0}, {"method": "temperature", "temperature": 0},
                                   {"method": "temperature", "temperature": "hot"}, [1.0]])
def test_a_malformed_calibration_is_refused_at_load(checkpoint, entry):
    meta_path = checkpoint / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["calibration"] = entry
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="calibration"):
        Detector.from_checkpoint(checkpoint, device="cpu")


def test_detector_thresholds_are_alarm_thresholds(checkpoint):
    th = Detector.from_checkpoint(checkpoint, device="cpu").thresholds
    assert isinstance(th, AlarmThresholds)
    assert (th.tau_on, th.tau_off) == (0.7, 0.4)


def _scored(rid: str, probs: np.ndarray, labels: np.ndarray) -> ScoredRecording:
    return ScoredRecording(recording_id=rid, duration_s=probs.size / 256, probs=probs.astype(np.float32),
                           labels=labels.astype(np.int8), ref_events=[], rate_hz=256.0, events=[])


def test_tune_calibrate_fits_on_training_recordings_then_hands_calibrated_probabilities_to_tuning(checkpoint):
    from ictal.commands.tune import TuneInputError, _calibrate

    p, y = _miscalibrated(2.0, n=4096)
    recs = [_scored("train_a", p[:2048], y[:2048]), _scored("train_b", p[2048:], y[2048:])]
    known = {"known": True, "evaluation": [], "validation": [], "train": ["train_a", "train_b"]}
    meta_id = json.loads((checkpoint / "metadata.json").read_text())["checkpoint_id"]
    out, entry = _calibrate(str(checkpoint), recs, known, "synthetic", meta_id)
    assert entry["temperature"] == pytest.approx(2.0, rel=0.15)
    np.testing.assert_allclose(out[0].probs, apply_temperature(recs[0].probs, entry["temperature"]), atol=1e-6)
    stored = json.loads((checkpoint / "metadata.json").read_text())["calibration"]
    assert stored["fitted_on"]["recordings"] == ["train_a", "train_b"]
    # a second fit composes with the first: the stored temperature is that of the raw logits
    _, again = _calibrate(str(checkpoint), out, known, "synthetic", meta_id)
    assert again["temperature"] == pytest.approx(entry["temperature"], rel=0.02)
    with pytest.raises(TuneInputError, match="held out"):
        _calibrate(str(checkpoint), recs, {**known, "evaluation": ["train_b"]}, "synthetic", meta_id)
    with pytest.raises(TuneInputError, match="no training data"):
        _calibrate(str(checkpoint), recs, {"known": False}, "synthetic", meta_id)


def test_tune_refuses_calibrate_without_write_checkpoint(capsys):
    from ictal.commands.tune import run

    args = argparse.Namespace(target_fa=10.0, min_duration_floor_s=None, calibrate=True, from_eval=None,
                              write_checkpoint=False, checkpoint="c", data="d")
    assert run(args) == 2
    assert "--calibrate needs --write-checkpoint" in capsys.readouterr().err
