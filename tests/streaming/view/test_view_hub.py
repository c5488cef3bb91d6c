"""`ViewHub`: what the page is given of a bed (EEG at the display rate, trend, CSA, events, state)."""

from __future__ import annotations

import numpy as np
import pytest

from ictal.alarms.schema import AlarmEvent, BedStatus, Probability
from ictal.streaming.chunk import Chunk
from ictal.streaming.view.hub import CSA_EPOCH_S, DISPLAY_FS_HZ, TREND_BIN_S, ViewHub


def _sine_chunks(fs: float, seconds: float, freq_hz: float, chunk_s: float = 0.25, first_index: int = 0,
                 amplitude_uv: float = 50.0):
    n = int(round(seconds * fs))
    t = (first_index + np.arange(n)) / fs
    data = np.tile((amplitude_uv * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32), (19, 1))
    step = int(round(chunk_s * fs))
    for start in range(0, n, step):
        yield Chunk(data=data[:, start:start + step], first_index=first_index + start,
                    clock_s=(first_index + start) / fs, fs=fs)


def test_eeg_is_resampled_to_the_display_rate_and_aligned_in_stream_time():
    hub = ViewHub(minutes=1)
    for chunk in _sine_chunks(200.0, 20.0, 1.0):  # 1 Hz sine at 200 Hz: zero crossings at whole seconds
        hub.on_chunk("bed", chunk)
    page = hub.eeg("bed", 10.0, 2.0)
    data = np.asarray(page["data"])
    assert page["fs_hz"] == DISPLAY_FS_HZ and data.shape == (19, 2 * DISPLAY_FS_HZ)
    t = page["t0_s"] + np.arange(data.shape[1]) / DISPLAY_FS_HZ
    expected = 50.0 * np.sin(2 * np.pi * 1.0 * t)
    # the resampler's group delay is taken out of the time stamps: the trace is where its samples were
    assert np.max(np.abs(data[0] - expected)) < 1.0, "display EEG misaligned with stream time (> 1 uV off a 50 uV sine)"


def test_csa_peaks_at_the_rhythm_frequency():
    hub = ViewHub(minutes=1)
    for chunk in _sine_chunks(256.0, 12.0, 6.0):
        hub.on_chunk("bed", chunk)
    snap = hub.snapshot("bed")
    freqs = np.asarray(hub.csa_freqs_hz)
    assert len(snap["csa"]["t_s"]) >= 5
    assert np.diff(snap["csa"]["t_s"]).min() == CSA_EPOCH_S
    for column in snap["csa"]["power_db"][1:]:
        assert freqs[int(np.argmax(column))] == pytest.approx(6.0)


def test_trend_keeps_the_maximum_and_the_usable_flag_per_bin():
    hub = ViewHub(minutes=1)
    per_bin = int(TREND_BIN_S * 256)
    probs = np.full(3 * per_bin, 0.2, np.float32)
    probs[per_bin + 7] = 0.9  # a peak inside the second bin
    hub.add_probabilities("bed", [(10 * per_bin, probs)], True)
    hub.add_probabilities("bed", [(13 * per_bin, np.full(per_bin, 0.5, np.float32))], False)
    trend = hub.snapshot("bed")["trend"]
    assert trend["t_s"] == [10.0, 11.0, 12.0, 13.0]
    assert trend["p"] == pytest.approx([0.2, 0.9, 0.2, 0.5])
    assert trend["usable"] == [True, True, True, False]


def test_live_updates_carry_only_what_changed_even_far_back():
    hub = ViewHub(minutes=5)
    hub.add_probabilities("bed", [(0, np.full(256 * 60, 0.1, np.float32))], True)
    v = hub.snapshot("bed")["version"]
    assert hub.snapshot("bed", since_version=v)["trend"]["t_s"] == []
    # a late window (the scoring fell behind) revises a bin 50 s back: it is sent again
    hub.add_probabilities("bed", [(256 * 10, np.full(256, 0.8, np.float32))], True)
    assert hub.snapshot("bed", since_version=v)["trend"]["t_s"] == [10.0]


def test_old_data_is_dropped_after_minutes():
    hub = ViewHub(minutes=1)
    for chunk in _sine_chunks(256.0, 100.0, 5.0, chunk_s=1.0):
        hub.on_chunk("bed", chunk)
    hub.add_probabilities("bed", [(0, np.full(256 * 100, 0.3, np.float32))], True)
    snap = hub.snapshot("bed")
    assert snap["eeg_end_s"] - snap["eeg_start_s"] <= 61.0
    assert min(snap["trend"]["t_s"]) >= 100 - 61
    assert min(snap["csa"]["t_s"]) >= 100 - 62
    assert hub.eeg("bed", 0.0, 10.0)["data"][0] == []  # nothing held there any more


def test_a_gap_is_missing_samples_and_the_eeg_after_it_is_in_place():
    hub = ViewHub(minutes=1)
    for chunk in _sine_chunks(256.0, 5.0, 1.0):
        hub.on_chunk("bed", chunk)
    for chunk in _sine_chunks(256.0, 5.0, 1.0, first_index=256 * 20):  # 15 s lost
        hub.on_chunk("bed", chunk)
    page = hub.eeg("bed", 0.0, 30.0)
    data = np.array(page["data"][0], dtype=float)  # None -> nan
    t = page["t0_s"] + np.arange(data.size) / DISPLAY_FS_HZ
    assert np.isnan(data[(t > 5.5) & (t < 19.5)]).all(), "the gap is not shown as missing samples"
    assert np.isfinite(data[(t > 1) & (t < 4.5)]).all(), "the EEG before the gap was dropped"
    after = (t > 21) & (t < 24.5)
    assert np.max(np.abs(data[after] - 50.0 * np.sin(2 * np.pi * t[after]))) < 1.0, "EEG after the gap misplaced"
    # a stream that goes back in time (a new recording on the bed) replaces what was held
    for chunk in _sine_chunks(256.0, 3.0, 1.0):
        hub.on_chunk("bed", chunk)
    assert hub.snapshot("bed")["eeg_end_s"] < 3.5


def test_events_are_rows_once_and_states_are_kept():
    hub = ViewHub()
    onset = AlarmEvent(bed_id="bed", kind="onset", stream_time_s=46.0, onset_s=41.5, reason="min_duration",
                       probability=Probability(peak=0.9, mean=0.7))
    hub.on_event(onset)
    hub.on_event(onset)  # the journal read twice
    hub.on_event(AlarmEvent(kind="daemon", reason="started"))  # not a bed's
    snap = hub.snapshot("bed")
    assert [(e["kind"], e["onset_s"], e["peak"]) for e in snap["events"]] == [("onset", 41.5, 0.9)]
    hub.on_state("bed", BedStatus(state="monitored", reason="windows scored; input usable"))
    assert hub.snapshot("bed")["state"]["state"] == "monitored"


def test_unknown_bed_and_bad_span_are_errors():
    hub = ViewHub()
    with pytest.raises(KeyError):
        hub.snapshot("nobody")
    hub.bed("bed")
    with pytest.raises(ValueError, match="duration"):
        hub.eeg("bed", 0.0, float("nan"))
