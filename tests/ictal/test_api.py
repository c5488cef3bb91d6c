"""The notebook API (``ictal.api``): ``import ictal`` is light, ``predict_file`` is the daemon's path.

The demo checkpoint scores real EEG of ../shared/data (skipped when absent): a 10 s GROND clip (one
scored window) keeps each run to seconds on the CPU.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ictal import api

CLIP = "labelled/grond_lpd_07.edf"
"""10 s, 200 Hz, a reference artifact of several mV on every channel (README): one quality event."""
CLEAN_CLIP = "labelled/grond_gpd_01.edf"


@pytest.fixture(scope="module")
def detector():
    return api.load_detector(api.demo_checkpoint(), device="cpu")


def _equal_nan(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(np.isnan(a), np.isnan(b))) and bool(
        np.allclose(a[~np.isnan(a)], b[~np.isnan(b)], rtol=0, atol=0))


def test_import_ictal_loads_neither_torch_nor_numpy_and_serves_the_api_lazily(repo_root):
    code = ("import sys, ictal; heavy = [m for m in ('torch', 'numpy', 'ictal.api') if m in sys.modules]; "
            "print(heavy); from ictal import predict_file; import ictal.api as a; "
            "print(predict_file is a.predict_file, ictal.load_detector is a.load_detector, "
            "'predict_file' in dir(ictal))")
    out = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["[]", "True True True"]


def test_unknown_attribute_of_ictal_names_the_api():
    import ictal

    with pytest.raises(AttributeError, match="predict_file"):
        ictal.no_such_function  # noqa: B018


def test_demo_checkpoint_without_its_files_is_named(tmp_path, monkeypatch):
    from ictal import resources

    empty = tmp_path / "checkpoints" / "demo"
    empty.mkdir(parents=True)  # a folder without the files is no checkpoint
    monkeypatch.setattr(resources, "demo_checkpoint", lambda: empty)
    with pytest.raises(FileNotFoundError) as info:
        api.demo_checkpoint()
    assert str(empty) in str(info.value) and "metadata.json" in str(info.value)


def test_the_shipped_demo_checkpoint_is_found(repo_root):
    assert api.demo_checkpoint() == (repo_root / "checkpoints" / "demo").resolve()


def test_load_detector_gives_thresholds_as_alarm_thresholds(detector, repo_root):
    from ictal.alarms.config import AlarmThresholds

    stored = json.loads((repo_root / "checkpoints/demo/metadata.json").read_text())["thresholds"]
    assert isinstance(detector.thresholds, AlarmThresholds)
    assert detector.thresholds.model_dump() == AlarmThresholds.model_validate(stored).model_dump()


def test_thresholds_follow_the_daemon_precedence(tmp_path):
    from ictal.alarms.config import AlarmThresholds
    from ictal.alarms.thresholds import ThresholdsError, ThresholdsMismatchError, save_thresholds

    tuned = {"tau_on": 0.6, "tau_off": 0.3, "min_duration_s": 4.0}
    with_dict = SimpleNamespace(model_id="ck1", thresholds=tuned)  # a Detector before the one-type fix
    got, source = api._resolve_thresholds(None, with_dict)
    assert (got.tau_on, got.tau_off, got.min_duration_s, source) == (0.6, 0.3, 4.0, "checkpoint")
    got, source = api._resolve_thresholds(None, SimpleNamespace(model_id="ck1", thresholds=None))
    assert got == AlarmThresholds() and source == "config"
    got, source = api._resolve_thresholds({"tau_on": 0.9}, with_dict)
    assert got.tau_on == 0.9 and source == "argument"
    path = save_thresholds(tmp_path / "th.json", AlarmThresholds(tau_on=0.7), target_fa_per_24h=1.0,
                           dataset="d", checkpoint_id="ck1")
    got, source = api._resolve_thresholds(path, with_dict)
    assert got.tau_on == 0.7 and str(path) in source
    with pytest.raises(ThresholdsMismatchError, match="ck2"):
        api._resolve_thresholds(path, SimpleNamespace(model_id="ck2", thresholds=None))
    with pytest.raises(ThresholdsError, match="tau_off"):
        api._resolve_thresholds({"tau_on": 0.3, "tau_off": 0.5}, with_dict)


def test_predict_file_gives_what_evaluate_runs_for_the_file(detector, shared_data):
    from ictal.training.datasets import Recording
    from ictal.training.evaluate import DaemonPathRunner

    path = shared_data / CLIP
    pred = api.predict_file(path, checkpoint=detector)
    runner = DaemonPathRunner(detector, detector.frontend_config, detector.thresholds, pred.hop_s)
    ref = runner(Recording("clip", path, "", None, []))
    assert _equal_nan(pred.probabilities, np.asarray(ref.probs, dtype=np.float32))
    assert pred.events == ref.events
    assert [q.reason for q in pred.quality_events] == [q.reason for q in ref.quality_events]
    assert pred.mode == runner.mode == "window"  # the demo checkpoint is bidirectional


def test_prediction_arrays_are_per_sample_from_the_recording_start(detector, shared_data):
    pred = api.predict_file(shared_data / CLIP, checkpoint=detector)
    n = 10 * 256
    assert pred.times_s.shape == pred.probabilities.shape == pred.usable.shape == (n,)
    assert pred.times_s[1] == 1 / 256 and pred.duration_s == 10.0
    finite = np.flatnonzero(np.isfinite(pred.probabilities))
    assert finite[0] / 256 == pytest.approx(pred.min_history_s - pred.hop_s - pred.lookahead_s)
    # the mV artifact on every channel makes the input unusable: said as an event, alarms withheld
    assert [q.reason for q in pred.quality_events] == ["signal_unusable"]
    assert not pred.usable.any() and pred.events == []
    assert pred.checkpoint_id == detector.model_id and pred.thresholds_source == "checkpoint"


def test_predict_file_refuses_what_the_daemon_refuses(detector, shared_data, tmp_path):
    from ictal.detector.montage import MontageError

    with pytest.raises(MontageError, match="bipolar"):
        api.predict_file(shared_data / "bipolar/chbmit/chb01_sz01_ictal.edf", checkpoint=detector)
    with pytest.raises(FileNotFoundError, match="nothing.edf"):
        api.predict_file(tmp_path / "nothing.edf", checkpoint=detector)
    with pytest.raises(TypeError, match="mne.io.Raw"):
        api.predict_file(42, checkpoint=detector)
    with pytest.raises(ValueError, match="stream mode needs a causal checkpoint"):
        api.predict_file(shared_data / CLIP, checkpoint=detector, mode="stream")


class _RawLike:
    """The part of ``mne.io.Raw`` that predict_file reads, filled from a real EDF (volts, EDF labels).

    Channels are reversed and an ECG channel is added, so the montage mapping is exercised.
    """

    def __init__(self, path: Path):
        from ictal.streaming.edf import read_edf

        rec = read_edf(path)
        order = list(range(len(rec.labels)))[::-1]
        self.ch_names = [rec.labels[i] for i in order] + ["ECG"]
        self._data = np.stack([np.asarray(rec.signals[i]) * 1e-6 for i in order]
                              + [np.zeros_like(rec.signals[0])])
        self.info = {"sfreq": rec.sampling_rates_hz[0]}
        self.filenames = [str(path)]
        self.annotations = [{"onset": a, "duration": d, "description": t} for a, d, t in rec.annotations]

    def get_data(self, picks=None):
        rows = range(len(self.ch_names)) if picks is None else [self.ch_names.index(p) for p in picks]
        return self._data[list(rows)]


def test_predict_file_on_raw_equals_predict_file_on_its_edf(detector, shared_data):
    path = shared_data / CLEAN_CLIP
    from_file = api.predict_file(path, checkpoint=detector)
    from_raw = api.predict_file(_RawLike(path), checkpoint=detector)
    assert from_raw.source == str(path) and from_raw.probabilities.shape == from_file.probabilities.shape
    finite = np.isfinite(from_file.probabilities)
    assert finite.any() and np.array_equal(finite, np.isfinite(from_raw.probabilities))
    # volts -> microvolts in float64 vs the EDF's calibration: equal up to float32 rounding
    np.testing.assert_allclose(from_raw.probabilities[finite], from_file.probabilities[finite], atol=1e-4)
    assert len(from_raw.events) == len(from_file.events)


def test_predict_file_on_mne_raw(detector, shared_data):
    mne = pytest.importorskip("mne", reason="MNE is the optional extra ictal[mne]")
    path = shared_data / CLEAN_CLIP
    raw = mne.io.read_raw_edf(path, preload=True, verbose="error")
    from_raw = api.predict_file(raw, checkpoint=detector)
    from_file = api.predict_file(path, checkpoint=detector)
    finite = np.isfinite(from_file.probabilities)
    np.testing.assert_allclose(from_raw.probabilities[finite], from_file.probabilities[finite], atol=1e-4)


def test_to_dataframe_needs_pandas_and_says_so():
    pred = api.Prediction(np.arange(3) / 256, np.array([np.nan, 0.2, 0.3], np.float32), np.array([0, 1, 1], bool),
                          [], [], "x.edf", 3 / 256, 256, "id", "window", 4.0, 10.0, 0.0, None, "argument")
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install pandas"):
            pred.to_dataframe()
        return
    frame = pred.to_dataframe()
    assert list(frame.columns) == ["time_s", "probability", "usable"] and len(frame) == 3


def test_evaluate_returns_the_report_of_ictal_evaluate(shared_data, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "clip.edf").symlink_to(shared_data / CLEAN_CLIP)
    report = api.evaluate(api.demo_checkpoint(), data, tmp_path / "out", plots=False, device="cpu")
    stored = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["meta"]["out_dir"] == str(tmp_path / "out") == stored["meta"]["out_dir"]
    assert [r["recording_id"] for r in report["recordings"]] == ["clip"]
    assert set(report) >= {"meta", "scores", "sample_level", "recordings"}


def test_notebook_example_runs_and_draws_the_probabilities(repo_root, shared_data, tmp_path):
    png = tmp_path / "p.png"
    out = subprocess.run([sys.executable, str(repo_root / "docs" / "notebook_example.py"), str(shared_data / CLIP),
                          str(png)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "times_s (2560,), probabilities (2560,)" in out.stdout
    assert "signal quality at 10.00 s: signal_unusable" in out.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
