"""Fuzzing the LSL stream metadata -> montage/units/rate mapping (``streaming.sources.lsl``).

A ``pylsl.StreamInfo`` is built in-process (no outlet, no network) with fuzzed channel labels, units,
channel count and nominal rate, and given to ``channels_from_description`` and
``LslSource._configure``, the code that turns an amplifier's self-description into the montage and
the scale to microvolts. Contract: the stream is refused with a ValueError (MontageError included)
naming it, or it is configured with every canonical channel mapped, a finite positive scale for each
channel used, and a rate the front-end can resample.

Bugs found:
- ``detector.resample`` raised ZeroDivisionError (``Fraction(1, 0)``) for a rate below 1e-6 Hz;
  fixed (ValueError naming the rates).
- ``LslSource._configure`` accepted a NaN or infinite nominal rate (``fs <= 0`` is False for NaN);
  fixed (ValueError naming the stream and the rate).
"""

from __future__ import annotations

import math

import pylsl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ictal.detector import CANONICAL_CHANNELS
from ictal.detector.config import FrontendConfig
from ictal.detector.frontend import Frontend
from ictal.detector.resample import MAX_INPUT_FS_HZ, MIN_INPUT_FS_HZ
from ictal.streaming.config import LslSourceConfig
from ictal.streaming.sources.lsl import LslSource, channels_from_description

STREAM = "ictal-fuzz-metadata"
FUZZ = settings(max_examples=150, deadline=2000, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

_SAFE_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
LABELS = st.one_of(
    st.sampled_from(CANONICAL_CHANNELS),
    st.sampled_from(CANONICAL_CHANNELS).map(lambda c: f"EEG {c.upper()}-REF"),
    st.sampled_from(CANONICAL_CHANNELS).map(lambda c: f" eeg {c.lower()}-le "),
    st.sampled_from(["T7", "T8", "P7", "P8", "A1", "A2", "EKG", "ECG ECG", "F7-C3", "Cz-Pz", "EEG Effort-Ref"]),
    _SAFE_TEXT,
)
UNITS = st.one_of(st.sampled_from(["microvolts", "millivolts", "volts", "nanovolts", "uV", "µV", "\u03bcV",
                                   "mV", "V", "nV", "", " ", "kV", "uv ", "degC", "<b>&amp;</b>"]), _SAFE_TEXT)
RATES = st.one_of(st.sampled_from([128.0, 200.0, 250.0, 256.0, 500.0, 512.0, 1000.0, 2048.0]),
                  st.floats(0.5, 50000.0, allow_nan=False))


def _info(labels: list[str], units: list[str], fs: float, channel_count: int | None = None) -> pylsl.StreamInfo:
    info = pylsl.StreamInfo(STREAM, "EEG", channel_count if channel_count is not None else len(labels), fs,
                            "float32", "fuzz-source")
    channels = info.desc().append_child("channels")
    for label, unit in zip(labels, units, strict=True):
        channel = channels.append_child("channel")
        channel.append_child_value("label", label)
        channel.append_child_value("unit", unit)
    return info


def _configure_or_refuse(info: pylsl.StreamInfo) -> LslSource | None:
    source = LslSource(LslSourceConfig(name=STREAM))
    try:
        source._configure(info)
    except ValueError as exc:
        assert STREAM in str(exc), f"refusal naming no stream: {exc}"
        return None
    montage = source.montage
    assert len(montage.indices) == len(CANONICAL_CHANNELS)
    used = [i for i in montage.indices if i >= 0]
    assert len(set(used)) == len(used) and all(0 <= i < info.channel_count() for i in used)
    for i in used:
        assert math.isfinite(source._scale[i]) and source._scale[i] > 0, (i, source._scale[i])
    assert math.isfinite(source.fs) and source.fs > 0, source.fs
    # An accepted stream never stops its bed: its rate is in range and the front-end takes it exactly.
    assert MIN_INPUT_FS_HZ <= info.nominal_srate() <= MAX_INPUT_FS_HZ
    assert abs(source.fs / info.nominal_srate() - 1) <= 5.2e-4
    Frontend(FrontendConfig(), fs_in=source.fs)
    return source


@st.composite
def stream_descriptions(draw):
    n = draw(st.integers(1, 30))
    labels = draw(st.lists(LABELS, min_size=n, max_size=n))
    units = draw(st.lists(UNITS, min_size=n, max_size=n))
    if draw(st.integers(0, 4)) == 0:  # a canonical montage, shuffled, with fuzzed units
        labels = draw(st.permutations(list(CANONICAL_CHANNELS)))
        units = draw(st.lists(UNITS, min_size=19, max_size=19))
    count = len(labels) + draw(st.sampled_from([0, 0, 0, 1, -1]))
    return labels, units, draw(RATES), max(1, count)


@FUZZ
@given(description=stream_descriptions())
def test_any_stream_description_is_mapped_or_refused_naming_the_stream(description):
    labels, units, fs, count = description
    _configure_or_refuse(_info(labels, units, fs, count))


def test_a_canonical_stream_in_any_unit_is_scaled_to_microvolts():
    for unit, factor in (("microvolts", 1.0), ("millivolts", 1e3), ("volts", 1e6), ("µV", 1.0), ("nV", 1e-3)):
        source = _configure_or_refuse(_info(list(CANONICAL_CHANNELS), [unit] * 19, 256.0))
        assert source is not None and float(source._scale[0]) == pytest.approx(factor)


def test_description_with_fewer_channels_than_announced_is_refused():
    info = _info(list(CANONICAL_CHANNELS), ["uV"] * 19, 256.0, channel_count=25)
    with pytest.raises(ValueError, match=r"describes 19 channels .* \(25\)"):
        channels_from_description(info)


@pytest.mark.parametrize("fs", [math.nan, math.inf])
def test_a_non_finite_nominal_rate_is_refused(fs):
    source = LslSource(LslSourceConfig(name=STREAM))
    with pytest.raises(ValueError, match="rate"):
        source._configure(_info(list(CANONICAL_CHANNELS), ["uV"] * 19, fs))


@FUZZ
@given(fs=st.floats(min_value=1e-300, max_value=1e300, allow_nan=False, allow_infinity=False))
def test_any_positive_rate_builds_a_frontend_or_is_refused_with_a_value_error(fs):
    try:
        frontend = Frontend(FrontendConfig(), fs_in=fs)
    except ValueError as exc:
        assert "Hz" in str(exc) or "rate" in str(exc), exc
        return
    assert frontend is not None


@pytest.mark.parametrize("fs", [1e-9, 1e-7, 5e-324])
def test_a_vanishing_rate_is_a_value_error_not_a_division_by_zero(fs):
    with pytest.raises(ValueError, match="sampling rates must be at least"):
        Frontend(FrontendConfig(), fs_in=fs)


@pytest.mark.slow
@settings(max_examples=20000, deadline=None, suppress_health_check=list(HealthCheck))
@given(description=stream_descriptions())
def test_long_fuzz_of_stream_descriptions(description):
    labels, units, fs, count = description
    _configure_or_refuse(_info(labels, units, fs, count))
