"""Per-channel signal quality: flat, saturated, non-finite, line noise; clean real EEG passes."""

from __future__ import annotations

from pathlib import Path

import edfio
import numpy as np
import pytest

from ictal.detector import CANONICAL_CHANNELS
from ictal.detector.config import FrontendConfig
from ictal.detector.frontend import process_recording
from ictal.detector.montage import map_montage
from ictal.detector.quality import QualityThresholds, assess_window

FS = 256.0
T5 = CANONICAL_CHANNELS.index("T5")


@pytest.fixture(scope="module")
def clean_window(shared_data: Path) -> np.ndarray:
    """30 s of clean real ICU EEG (IIIC iiic_01, 200 Hz) through the front-end: (19, 7680) uV at 256 Hz."""
    edf = edfio.read_edf(shared_data / "labelled/iiic_01.edf")
    x = map_montage([s.label for s in edf.signals]).apply(np.stack([s.data for s in edf.signals]))
    return process_recording(x, 200.0, FrontendConfig())[:, 10 * 256 : 40 * 256].astype(np.float64)


def test_clean_real_eeg_has_no_problems(clean_window: np.ndarray) -> None:
    report = assess_window(clean_window, FS)
    assert report.usable and report.problems == [] and report.bad_channels == ()
    assert np.all(report.std_uv > 1.0)


def test_flat_channel_is_flagged_with_its_std(clean_window: np.ndarray) -> None:
    window = clean_window.copy()
    window[T5] = 12.0 + np.random.default_rng(0).normal(0.0, 0.02, window.shape[1])
    report = assess_window(window, FS)
    assert report.problems == ["T5: flat (std 0.02 uV)"]
    assert report.bad_channels == ("T5",) and report.usable


def test_saturated_channel_at_3000_uv_is_flagged(clean_window: np.ndarray) -> None:
    window = clean_window.copy()
    window[T5] = np.clip(window[T5] * 100.0, -3000.0, 3000.0)
    report = assess_window(window, FS)
    assert report.bad_channels == ("T5",)
    assert report.problems[0].startswith("T5: saturated")
    assert report.saturated_fraction[T5] > 0.1


def test_real_high_voltage_seizure_is_not_taken_for_saturation(shared_data: Path) -> None:
    edf = edfio.read_edf(shared_data / "labelled/iiic_02.edf")  # seizure plurality, ~1.8 mV peaks
    x = map_montage([s.label for s in edf.signals]).apply(np.stack([s.data for s in edf.signals]))
    report = assess_window(process_recording(x, 200.0, FrontendConfig())[:, : 30 * 256], FS)
    assert not any("saturated" in p for p in report.problems)


def test_nan_and_inf_samples_are_counted_per_channel(clean_window: np.ndarray) -> None:
    window = clean_window.copy()
    window[T5, 100:130] = np.nan
    window[0, 5] = np.inf
    report = assess_window(window, FS)
    assert report.n_nonfinite[T5] == 30 and report.n_nonfinite[0] == 1
    assert f"T5: non-finite (30 NaN/Inf samples of {window.shape[1]})" in report.problems
    assert set(report.bad_channels) == {"Fp1", "T5"}
    assert np.isfinite(report.std_uv).all()


def test_all_nan_channel_is_non_finite_not_flat(clean_window: np.ndarray) -> None:
    window = clean_window.copy()
    window[T5] = np.nan
    report = assess_window(window, FS)
    assert [p for p in report.problems if p.startswith("T5")] == [
        f"T5: non-finite ({window.shape[1]} NaN/Inf samples of {window.shape[1]})"
    ]


@pytest.mark.parametrize("mains_hz", [50.0, 60.0])
def test_strong_line_noise_is_flagged(clean_window: np.ndarray, mains_hz: float) -> None:
    window = clean_window.copy()
    t = np.arange(window.shape[1]) / FS
    window[T5] += 200.0 * np.sin(2 * np.pi * mains_hz * t)
    report = assess_window(window, FS)
    assert report.bad_channels == ("T5",)
    assert report.problems[0].startswith("T5: line noise")
    assert report.line_noise_ratio[T5] > 0.5 > report.line_noise_ratio[0]


def test_window_with_too_many_bad_channels_is_unusable(clean_window: np.ndarray) -> None:
    window = clean_window.copy()
    window[:4] = 0.0
    report = assess_window(window, FS)
    assert not report.usable and len(report.bad_channels) == 4
    assert assess_window(window, FS, thresholds=QualityThresholds(max_bad_channels=4)).usable


def test_real_reference_channel_of_the_neonatal_file_is_flat(shared_data: Path) -> None:
    edf = edfio.read_edf(shared_data / "quirks/neonatal_burst_malformed_header.edf")
    x = map_montage([s.label for s in edf.signals]).apply(np.stack([s.data[: 30 * 256] for s in edf.signals]))
    report = assess_window(x, FS)
    assert report.bad_channels == ("Cz",)
    assert report.problems[0].startswith("Cz: flat (std 0.2")


def test_bad_window_shapes_and_rates_are_errors() -> None:
    with pytest.raises(ValueError, match=r"\(19, n_samples\)"):
        assess_window(np.zeros((18, 512)), FS)
    with pytest.raises(ValueError, match="at least 1 s"):
        assess_window(np.zeros((19, 100)), FS)
    with pytest.raises(ValueError, match="120 Hz"):
        assess_window(np.zeros((19, 1000)), 100.0)


def test_line_noise_between_frequency_bins_is_flagged(clean_window: np.ndarray) -> None:
    window = clean_window.copy()
    t = np.arange(window.shape[1]) / FS
    window[T5] += 200.0 * np.sin(2 * np.pi * 50.4 * t + 0.3)  # mains off a 1 Hz bin centre
    report = assess_window(window, FS)
    assert report.bad_channels == ("T5",) and report.problems[0].startswith("T5: line noise")


def test_float32_and_float64_windows_give_the_same_report(clean_window: np.ndarray) -> None:
    window = clean_window.copy()
    window[T5] = np.clip(window[T5] * 100.0, -3000.0, 3000.0)
    window[3, 10:20] = np.nan
    a, b = assess_window(window, FS), assess_window(window.astype(np.float32), FS)
    assert a.problems == b.problems
    np.testing.assert_allclose(a.std_uv, b.std_uv, rtol=1e-4)
    np.testing.assert_allclose(a.line_noise_ratio, b.line_noise_ratio, atol=1e-4)
    np.testing.assert_array_equal(a.saturated_fraction, b.saturated_fraction)


def test_nan_on_the_subsampled_positions_still_gives_finite_statistics(clean_window: np.ndarray) -> None:
    window = clean_window.copy()
    window[T5, ::8] = np.nan  # every sample the channel's centre is estimated from
    report = assess_window(window, FS)
    assert report.n_nonfinite[T5] == window.shape[1] // 8
    assert np.isfinite(report.std_uv).all() and report.std_uv[T5] > 1.0
    assert [p.split(" (")[0] for p in report.problems] == ["T5: non-finite"]


def test_window_whose_length_is_not_whole_seconds_is_assessed(clean_window: np.ndarray) -> None:
    window = clean_window[:, : 10 * 256 + 100].copy()
    t = np.arange(window.shape[1]) / FS
    window[T5] += 200.0 * np.sin(2 * np.pi * 60.0 * t)
    report = assess_window(window, FS)
    assert report.bad_channels == ("T5",) and report.problems[0].startswith("T5: line noise")
    np.testing.assert_allclose(report.std_uv[0], window[0].std(), rtol=1e-6)


def _rails(raw: np.ndarray, piece: int = 400):
    from ictal.detector.quality import rail_stats, rail_summary

    return rail_summary(rail_stats(raw[:, i:i + piece]) for i in range(0, raw.shape[1], piece))


@pytest.fixture(scope="module")
def raw_iiic_02(shared_data: Path) -> np.ndarray:
    edf = edfio.read_edf(shared_data / "labelled/iiic_02.edf")  # seizure plurality, ~1.8 mV peaks
    return map_montage([s.label for s in edf.signals]).apply(np.stack([s.data for s in edf.signals]))


def test_raw_rail_plateaus_make_a_channel_saturated_where_the_filtered_window_shows_none(raw_iiic_02):
    raw = raw_iiic_02[:, : 30 * 200].copy()
    raw[T5] = np.clip(raw[T5] * 50.0, -2500.0, 2500.0)
    filtered = process_recording(raw, 200.0, FrontendConfig())
    rails = _rails(raw)
    assert rails.fraction[T5] > 0.1 and rails.high[T5] == 2500.0 and rails.low[T5] == -2500.0
    report = assess_window(filtered, FS, rails=rails)
    assert [p for p in report.problems if p.startswith("T5")][0].startswith("T5: saturated (")
    assert "-2500 uV and 2500 uV" in report.problems[0]
    assert report.saturated_fraction[T5] == pytest.approx(rails.fraction[T5])


def test_a_lead_pinned_at_its_rail_is_saturated_and_a_lead_stuck_at_zero_only_flat(raw_iiic_02):
    raw = raw_iiic_02[:, : 30 * 200].copy()
    raw[T5] = np.clip(raw[T5] * 50.0 - 5000.0, -2500.0, 2500.0)  # a DC offset: on the rail nearly always
    raw[0] = 0.0
    rails = _rails(raw)
    assert rails.fraction[T5] > 0.8 and rails.fraction[0] == 0.0
    report = assess_window(process_recording(raw, 200.0, FrontendConfig()), FS, rails=rails)
    assert any(p.startswith("T5: saturated") and "-2500 uV" in p for p in report.problems), report.problems
    assert not any(p.startswith("Fp1: saturated") for p in report.problems)


def test_the_raw_samples_of_a_real_seizure_sit_on_no_rail(raw_iiic_02):
    rails = _rails(raw_iiic_02)
    assert rails.fraction.max() < 0.002, rails.fraction
    report = assess_window(process_recording(raw_iiic_02, 200.0, FrontendConfig())[:, : 30 * 256], FS,
                           rails=_rails(raw_iiic_02[:, : 30 * 200]))
    assert not any("saturated" in p for p in report.problems)


def _labelled_raw(shared_data: Path, name: str) -> np.ndarray:
    edf = edfio.read_edf(shared_data / "labelled" / name)
    return map_montage([s.label for s in edf.signals]).apply(np.stack([s.data for s in edf.signals])).astype(np.float32)


@pytest.mark.parametrize("level", [50.0, 100.0, 150.0, 500.0])
def test_real_eeg_clipped_at_any_level_is_found_on_the_clipped_leads_only(shared_data, level):
    from ictal.detector.quality import DEFAULT_THRESHOLDS

    for name in ("iiic_01.edf", "iiic_04.edf", "iiic_10.edf", "iiic_19.edf"):
        raw = _labelled_raw(shared_data, name)[:, : 30 * 200]
        rails = _rails(np.clip(raw, -level, level))
        share = (np.abs(raw) >= level).mean(axis=1)
        found = rails.fraction > DEFAULT_THRESHOLDS.saturation_fraction
        pinned = rails.high - rails.low < DEFAULT_THRESHOLDS.rail_min_range_uv  # on the rail all along: flat
        assert np.all(found[(share > 0.02) & ~pinned]), (name, share, rails.fraction)
        assert not np.any(found[share == 0]), (name, share, rails.fraction)
        np.testing.assert_allclose(rails.fraction[found], share[found], atol=0.01)  # the natural extreme


def test_a_lead_clipped_at_100_uv_is_named_with_its_rails_and_share(raw_iiic_02):
    raw = raw_iiic_02[:, : 30 * 200].copy()
    raw[T5] = np.clip(raw[T5], -100.0, 100.0)
    report = assess_window(process_recording(raw, 200.0, FrontendConfig()), FS, rails=_rails(raw))
    share = 100 * np.mean(np.abs(raw_iiic_02[T5, : 30 * 200]) >= 100.0)
    assert share > 50.0
    assert report.problems == [f"T5: saturated (clipped at -100 uV and 100 uV: {share:.1f}% of raw samples on a rail)"]
    assert report.bad_channels == ("T5",) and report.usable


def test_a_clipped_spike_one_sample_on_the_rail_each_time_is_found(shared_data):
    """grond_gpd_11's Fp1 carries a 20 Hz spike train: beyond 500 uV for single samples, 4 % of them."""
    raw = _labelled_raw(shared_data, "grond_gpd_11.edf")
    clipped = np.clip(raw, -500.0, 500.0)
    assert not np.any(np.abs(np.diff(np.flatnonzero(np.abs(raw[0]) >= 500.0))) == 1)  # never two in a row
    rails = _rails(clipped)
    assert rails.fraction[0] == pytest.approx(np.mean(np.abs(raw[0]) >= 500.0)) and rails.fraction[0] > 0.02


def test_no_rail_on_any_real_recording_as_recorded_or_digitised_at_half_a_microvolt(shared_data):
    """Every EEG signal of every EDF of ../shared/data, windows of 8-60 s of 4 s pieces (the scan of
    ``detector.bench_quality``); the one recording whose amplifier clipped is left to the next test."""
    from ictal.detector.bench_quality import REALLY_CLIPPED, eeg_signals, judge

    n_windows = n_files = 0
    for path in sorted(shared_data.rglob("*.edf")):
        if path.name == REALLY_CLIPPED:
            continue
        x, fs = eeg_signals(path)
        n_files += 1
        for y in (x, np.round(x / 0.5).astype(np.float32) * 0.5):
            for found, fraction, _, _, _ in judge(y, fs):
                n_windows += found.size
                assert not found.any(), (path.name, fraction)
    assert n_files >= 140 and n_windows > 40000


def test_the_real_recording_clipped_by_its_amplifier_at_1000_uv_is_found(shared_data):
    from ictal.detector.bench_quality import REALLY_CLIPPED, eeg_signals, judge

    x, fs = eeg_signals(shared_data / "quirks" / REALLY_CLIPPED)
    verdicts = judge(x, fs)
    found = np.array([v[0] for v in verdicts])
    share = np.array([(np.abs(x[:, a:b]) >= 1000.0).mean(axis=1) for _, _, _, a, b in verdicts])
    assert found.sum() >= 50 and np.array_equal(found, share > 0.01)


def test_a_lead_pinned_on_its_rail_for_the_whole_window_is_flat_only(raw_iiic_02):
    raw = raw_iiic_02[:, : 30 * 200].copy()
    raw[T5] = 100.0  # beyond +100 uV all along: one value
    rails = _rails(raw)
    assert rails.fraction[T5] == 0.0
    report = assess_window(process_recording(raw, 200.0, FrontendConfig()), FS, rails=rails)
    assert [p.split(" (")[0] for p in report.problems if p.startswith("T5")] == ["T5: flat"]


def test_non_finite_raw_samples_are_left_out_of_the_rails(raw_iiic_02):
    from ictal.detector.quality import rail_stats, rail_summary

    raw = np.clip(raw_iiic_02[:, : 30 * 200], -100.0, 100.0)
    clean = _rails(raw)
    raw[T5, 1000:1100] = np.nan
    raw[T5, 2000] = np.inf  # beyond the rail, but no sample: it must not become the rail
    raw[0] = np.nan  # a channel without a finite sample has no rail
    rails = _rails(raw)
    assert rails.high[T5] == 100.0 and rails.fraction[0] == 0.0
    # the 101 replaced samples no longer count, the others on the rail still do
    assert clean.fraction[T5] - 101 / raw.shape[1] - 1e-12 <= rails.fraction[T5] < clean.fraction[T5]
    empty = rail_summary([rail_stats(raw[:, :0])])
    assert empty is None
