"""Segment-level report of the rated windows: the manifest, the definition of "flagged", a real subset."""

from __future__ import annotations

import numpy as np
import pytest

from ictal.alarms.config import AlarmThresholds
from ictal.alarms.postprocess import DetectedEvent
from ictal.detector.config import FrontendConfig
from ictal.training.evaluate import DaemonPathRunner, dataset_config, run_dataset, select_recordings
from ictal.training.segments import RatedWindow, flag_window, read_rated_windows, segment_report


def test_manifest_windows_and_classes(shared_data):
    windows = read_rated_windows(shared_data)
    # 24 IIIC segments, hms_1000913311 and the 75 GROND clips have one rated window; hms_1628180742 nine
    assert len(windows) == 109
    hms = [w for w in windows if w.recording_id == "labelled__hms_1628180742"]
    assert [(w.start_s, w.stop_s) for w in hms][:3] == [(20.0, 30.0), (26.0, 36.0), (28.0, 38.0)]
    assert {w.label for w in hms} == {"seizure"}
    labels = [w.label for w in windows if w.recording_id.startswith("labelled__iiic")]
    assert labels.count("seizure") == 4 and labels.count("lpd") == 4 and labels.count("gpd") == 5
    # the GROND clips: hard negatives only, each rated over the whole 10 s clip with its own class
    grond = [w for w in windows if w.recording_id.startswith("labelled__grond_")]
    assert len(grond) == 75
    assert all((w.start_s, w.stop_s) == (0.0, 10.0) for w in grond)
    assert all(w.recording_id.split("_")[-2] == w.label for w in grond)
    assert {w.label: sum(x.label == w.label for x in grond) for w in grond} == {
        "lpd": 18, "gpd": 19, "lrda": 19, "grda": 19}


def test_manifest_errors_name_the_row(tmp_path):
    (tmp_path / "labelled").mkdir()
    (tmp_path / "labelled" / "manifest.csv").write_text("file,rated_windows,plurality\nlabelled/a.edf,30-20,lpd\n")
    with pytest.raises(ValueError, match=r"manifest.csv:2: rated window '30-20'"):
        read_rated_windows(tmp_path)
    with pytest.raises(FileNotFoundError, match="manifest"):
        read_rated_windows(tmp_path / "nowhere")


def test_flagged_means_an_overlapping_event_or_a_sample_at_or_above_tau_on():
    rate = 4.0
    window = RatedWindow("r", 20.0, 30.0, "lpd")
    probs = np.full(200, 0.2, dtype=np.float32)  # 50 s
    quiet = flag_window(window, probs, rate, [], tau_on=0.8)
    assert quiet.scored and not quiet.flagged and quiet.max_prob == pytest.approx(0.2)
    # an event that started before the window and runs into it flags it, probabilities aside
    running = flag_window(window, probs, rate, [DetectedEvent(10.0, 20.25, 0.9, 0.85)], tau_on=0.8)
    assert running.alarm and not running.above_tau_on and running.flagged
    touching = flag_window(window, probs, rate, [DetectedEvent(10.0, 20.0, 0.9, 0.85)], tau_on=0.8)
    assert not touching.flagged  # ends exactly where the window starts: no overlap
    spike = probs.copy()
    spike[29 * 4] = 0.8  # one sample at tau_on, inside [20, 30)
    assert flag_window(window, spike, rate, [], tau_on=0.8).above_tau_on
    after = probs.copy()
    after[30 * 4] = 0.99  # the first sample after the window does not count
    assert not flag_window(window, after, rate, [], tau_on=0.8).flagged
    unscored = flag_window(window, np.full(200, np.nan, dtype=np.float32), rate, [], tau_on=0.8)
    assert not unscored.scored and unscored.max_prob is None and not unscored.flagged


class AmplitudeScorer:
    """A deterministic stand-in for the model: probability rises with the mean |amplitude| of the last second."""

    max_batch = 8

    def predict(self, windows: np.ndarray) -> np.ndarray:
        energy = np.abs(windows).mean(axis=1)  # (B, 15360)
        c = np.cumsum(np.pad(energy, ((0, 0), (256, 0)), mode="edge"), axis=1)
        smooth = (c[:, 256:] - c[:, :-256]) / 256  # trailing 1 s mean
        return (1.0 / (1.0 + np.exp(-(smooth - 0.75) * 8.0))).astype(np.float32)


@pytest.mark.parametrize("min_history_s", [60.0, 30.0])
def test_segment_report_of_a_subset_through_the_daemon_path(shared_data, min_history_s):
    thresholds = AlarmThresholds(tau_on=0.6, tau_off=0.4, min_duration_s=2.0)
    recs, _ = select_recordings(dataset_config(shared_data),
                                include=["labelled__iiic_01", "labelled__iiic_05", "labelled__iiic_13"])
    runner = DaemonPathRunner(AmplitudeScorer(), FrontendConfig(), thresholds, hop_s=4.0, min_history_s=min_history_s)
    evaluated = run_dataset(recs, runner, thresholds)
    report = segment_report(read_rated_windows(shared_data), {e.scored.recording_id: e.scored.probs for e in evaluated},
                            {e.scored.recording_id: e.scored.events for e in evaluated}, thresholds,
                            min_history_s=min_history_s)
    assert [(c.label, c.windows) for c in report.classes] == [("seizure", 1), ("lpd", 1), ("lrda", 1)]
    assert report.min_history_s == min_history_s
    if min_history_s == 60.0:
        # 50 s segments never fill a 60 s window: nothing is scored and no rate is claimed
        assert all(not w.scored for w in report.windows)
        assert all(c.scored == 0 and np.isnan(c.rate) for c in report.classes)
    else:
        assert all(w.scored for w in report.windows)
        for w, e in zip(report.windows, evaluated, strict=True):
            seg = e.scored.probs[20 * 256:30 * 256]  # scored from 30 - 4 = 26 s on
            assert np.isnan(seg[:6 * 256]).all() and np.isfinite(seg[6 * 256:]).all()
            assert w.max_prob == pytest.approx(float(np.nanmax(seg)))
            assert w.above_tau_on == bool(np.nanmax(seg) >= 0.6)
        for c in report.classes:
            assert c.flagged == sum(w.flagged for w in report.windows if w.label == c.label)
        assert report.to_dict()["seizure_vs_rest"]["seizure_windows"] == 1
