"""``ictal evaluate`` reads recordings in blocks (``streaming.edf.open_canonical``) and gives exactly what
the whole-file read gave: the same probabilities, usable mask, events and held samples.

The reference is the former path, kept here: ``load_canonical`` (the whole file as float32), then
``complete_short_recording`` and ``run_recording`` on the loaded recording. Files: EEGMAT
``Subject00_1`` (182 s at 500 Hz: several 30 s blocks, a chunk size that does not divide them),
HMS ``hms_1628180742`` (90 s at 200 Hz, rated seizure) and GROND ``grond_lpd_01`` (a 10 s clip that needs
its last sample held, see ``training.evaluate``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import yaml

from ictal.alarms.config import AlarmThresholds
from ictal.detector import FS_HZ
from ictal.detector.config import FrontendConfig
from ictal.streaming.bed import run_recording
from ictal.streaming.edf import load_canonical, open_canonical
from ictal.training.datasets.base import Recording
from ictal.training.evaluate import (
    DaemonPathRunner,
    complete_short_recording,
    detected_events,
    held_samples_needed,
)
from tests.streaming.daemon_helpers import LineLengthScorer

THRESHOLDS = AlarmThresholds(tau_on=0.2, tau_off=0.15, min_duration_s=3.0, merge_gap_s=5.0, refractory_s=5.0)
FILES = ("background/eegmat/Subject00_1.edf", "labelled/hms_1628180742.edf", "labelled/grond_lpd_01.edf")


def _whole_file_run(path, scorer, hop_s: float, min_history_s: float):
    """What ``DaemonPathRunner`` computed before it read in blocks (the whole file loaded)."""
    canonical = load_canonical(path, FrontendConfig())
    duration_s = canonical.duration_s
    canonical, held = complete_short_recording(canonical, min_history_s)
    result = run_recording(canonical, scorer, FrontendConfig(), THRESHOLDS, hop_s, min_history_s=min_history_s,
                           lookahead_s=float(getattr(scorer, "lookahead_s", 0.0)))
    n = max(int(round(duration_s * FS_HZ)), result.first_index + result.probabilities.size)
    probs, usable = np.full(n, np.nan, dtype=np.float32), np.zeros(n, dtype=bool)
    probs[result.first_index:result.first_index + result.probabilities.size] = result.probabilities
    usable[result.first_index:result.first_index + result.probabilities.size] = result.usable
    return probs, usable, detected_events(result.events), held


def _alarm_strip(events) -> list[tuple]:
    """The stream-time content of AlarmEvents (ids and wall-clock stamps differ between runs)."""
    return [(e.kind, e.stream_time_s, e.onset_s, e.offset_s, e.window_end_s, e.reason,
             e.probability.model_dump() if e.probability else None) for e in events]


def _strip(events) -> list[str]:
    """Every field of each DaemonEvent (repr, so that NaN equals NaN)."""
    return [repr(dataclasses.astuple(e)) for e in events]


@pytest.mark.parametrize("relpath", FILES)
def test_evaluate_by_blocks_gives_the_whole_file_results(shared_data, relpath):
    path = shared_data / relpath
    rec = Recording(recording_id=path.stem, path=path, patient="p", split="eval", annotations=[])
    out = DaemonPathRunner(LineLengthScorer(), FrontendConfig(), THRESHOLDS, hop_s=4.0)(rec)
    probs, usable, events, held = _whole_file_run(path, LineLengthScorer(), 4.0, 10.0)
    assert out.probs.dtype == np.float32 and np.isfinite(out.probs).any()
    np.testing.assert_array_equal(out.probs, probs)
    np.testing.assert_array_equal(out.usable, usable)
    assert _strip(out.events) == _strip(events)
    assert out.held_samples == held == (1 if "grond" in relpath else 0)


def test_the_stand_in_scorer_raises_events_so_the_comparison_means_something(shared_data):
    path = shared_data / "labelled" / "hms_1628180742.edf"
    _, _, events, _ = _whole_file_run(path, LineLengthScorer(), 4.0, 10.0)
    assert events


def test_run_recording_of_a_file_a_stream_and_a_loaded_recording_agree(shared_data):
    path = shared_data / FILES[1]  # 18000 samples: 6000-sample blocks, 37-sample chunks
    loaded = run_recording(load_canonical(path), LineLengthScorer(), FrontendConfig(), THRESHOLDS, 4.0, 37)
    from_path = run_recording(path, LineLengthScorer(), FrontendConfig(), THRESHOLDS, 4.0, 37)
    with open_canonical(path) as stream:
        from_stream = run_recording(stream, LineLengthScorer(), FrontendConfig(), THRESHOLDS, 4.0, 37)
        assert not stream.closed  # a stream given by the caller stays open
    for result in (from_path, from_stream):
        assert result.first_index == loaded.first_index and result.duration_s == loaded.duration_s
        np.testing.assert_array_equal(result.probabilities, loaded.probabilities)
        np.testing.assert_array_equal(result.usable, loaded.usable)
        assert _alarm_strip(result.events + result.quality_events) == _alarm_strip(loaded.events + loaded.quality_events)
    assert [e.kind for e in loaded.events].count("onset") >= 1


def test_held_samples_depend_on_the_length_alone(shared_data):
    clip = load_canonical(shared_data / FILES[2])
    _, held = complete_short_recording(clip, 10.0)
    assert held_samples_needed(clip.fs, clip.data.shape[1], 10.0) == held == 1
    assert held_samples_needed(clip.fs, clip.data.shape[1], 20.0) == 0  # too short for 20 s anyway


def test_tiny_random_model_gives_the_same_probabilities_by_blocks(shared_data, tmp_path, repo_root):
    import torch

    from ictal.detector.checkpoint import save_checkpoint
    from ictal.detector.config import ModelConfig
    from ictal.detector.model import build_model

    torch.manual_seed(1234)
    config = ModelConfig.model_validate(yaml.safe_load((repo_root / "configs/model/tiny_bimamba2.yaml").read_text()))
    checkpoint = tmp_path / "tiny_random"
    save_checkpoint(checkpoint, build_model(config).eval(), config, FrontendConfig())
    runner = DaemonPathRunner.from_checkpoint(checkpoint, THRESHOLDS, hop_s=15.0, device="cpu")
    path = shared_data / FILES[1]
    out = runner(Recording(recording_id="hms", path=path, patient="p", split="eval", annotations=[]))
    probs, usable, events, _ = _whole_file_run(path, runner.scorer, 15.0, 10.0)
    assert np.isfinite(out.probs).sum() > 60 * FS_HZ
    np.testing.assert_array_equal(out.probs, probs)
    np.testing.assert_array_equal(out.usable, usable)
    assert _strip(out.events) == _strip(events)
