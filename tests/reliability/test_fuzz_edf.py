"""Property-based fuzzing of the EDF header handling around edfio (``streaming.edf``).

Each example is a copy of a real recording with 1-3 header fields replaced (numbers of every
spelling, text, binary), optionally cut short. Two properties:

1. Bounded: whatever the header says, a load allocates at most ``MAX_TRACED_MB`` (tracemalloc traces
   numpy's buffers too) and returns or raises within the hypothesis deadline. Holds today.
2. Clear: the load returns 19 finite channels or raises a ValueError naming the file. Fails today
   (xfail strict, derandomized so the outcome is stable): edfio's IndexError, OverflowError,
   ZeroDivisionError, UnboundLocalError escape through ``streaming.edf.read_edf``, and a header with
   a NaN physical minimum loads a channel of NaN. See test_hostile_edf.py for each case by name.
"""

from __future__ import annotations

import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ictal.detector import CANONICAL_CHANNELS
from ictal.streaming.edf import load_canonical, open_canonical
from tests.reliability.edf_surgery import MAIN_FIELD_NAMES, SIGNAL_FIELD_NAMES, num_signals, set_field

SOURCE = "labelled/iiic_01.edf"
MAX_TRACED_MB = 64
"""The source file holds 20 x 10000 samples (1.6 MB as float64); a bounded load stays far below this."""

FIELD_VALUES = st.one_of(
    st.integers(-(10**9), 10**10).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda x: f"{x:.6g}"),
    st.sampled_from(["", " ", "-0", "0", "1", "-1", "nan", "inf", "1e308", "99999999", "abc", "1,5", "0x1F"]),
    st.text(max_size=10),
    st.binary(max_size=10),
)


@st.composite
def header_edits(draw, ns: int) -> tuple[list[tuple[str, int | None, bytes]], float | None]:
    """1-3 field replacements (name, signal index or None, value) and an optional cut (fraction kept)."""
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(MAIN_FIELD_NAMES + SIGNAL_FIELD_NAMES))
        signal = draw(st.integers(0, ns - 1)) if name in SIGNAL_FIELD_NAMES else None
        value = draw(FIELD_VALUES)
        edits.append((name, signal, value if isinstance(value, bytes) else value.encode("utf-8")))
    cut = draw(st.floats(0, 1)) if draw(st.integers(0, 3)) == 0 else None
    return edits, cut


def _apply(raw: bytes, edits: tuple[list[tuple[str, int | None, bytes]], float | None]) -> bytes:
    fields, cut = edits
    out = raw
    for name, signal, value in fields:
        out = set_field(out, name, value, signal, layout=raw)
    return out if cut is None else out[: int(cut * len(out))]


NS = 21  # signals in SOURCE (20 + EDF Annotations); checked by the fixture


@pytest.fixture(scope="module")
def source_bytes(shared_data) -> bytes:
    raw = (shared_data / SOURCE).read_bytes()
    assert num_signals(raw) == NS, f"{SOURCE} has {num_signals(raw)} signals, expected {NS}"
    return raw


def _load(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # edfio warns on repaired headers; the properties judge the outcome
        return load_canonical(path)


FUZZ = settings(max_examples=150, deadline=5000, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _bounded_property(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.edf"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        _load(path)
    except Exception:  # noqa: BLE001 - this property is about memory and time; the next one judges errors
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < MAX_TRACED_MB * 2**20, f"a hostile header made the load allocate {peak / 2**20:.0f} MB"


def _clear_property(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.edf"
    path.write_bytes(data)
    try:
        rec = _load(path)
    except ValueError as exc:
        assert str(path) in str(exc), f"ValueError naming no file: {exc!r}"
        return
    assert rec.data.shape[0] == len(CANONICAL_CHANNELS) and rec.data.dtype == np.float32
    assert np.isfinite(rec.data).all(), "the load returned non-finite samples"


def test_hostile_headers_load_in_bounded_memory_and_time(tmp_path, source_bytes):
    @FUZZ
    @given(edits=header_edits(NS))
    def run(edits):
        _bounded_property(tmp_path, _apply(source_bytes, edits))

    run()


def test_hostile_headers_give_finite_channels_or_a_value_error_naming_the_file(tmp_path, source_bytes):
    @FUZZ
    @given(edits=header_edits(NS))
    def run(edits):
        _clear_property(tmp_path, _apply(source_bytes, edits))

    run()


def _outcome(load, path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ("ok", load(path))
        except ValueError as exc:
            return ("error", type(exc).__name__, str(exc))


def _blocks(path: Path) -> np.ndarray:
    with open_canonical(path) as stream:
        return np.concatenate([data for _, data in stream.blocks(333)], axis=1)


def test_block_reader_agrees_with_load_canonical_on_hostile_headers(tmp_path, source_bytes):
    """3. Same outcome: ``open_canonical`` + its blocks give load_canonical's samples or its error."""
    @FUZZ
    @given(edits=header_edits(NS))
    def run(edits):
        path = tmp_path / "fuzz.edf"
        path.write_bytes(_apply(source_bytes, edits))
        whole, blocks = _outcome(lambda p: load_canonical(p).data, path), _outcome(_blocks, path)
        assert whole[0] == blocks[0], (whole[:3], blocks[:3])
        if whole[0] == "ok":
            np.testing.assert_array_equal(blocks[1], whole[1])
        else:
            assert blocks == whole

    run()


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_long_fuzz_of_edf_headers(tmp_path, source_bytes):
    """Long run (random seeds): both properties over 3000 examples; prints the outcome classes."""
    outcomes: dict[str, int] = {}

    @settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
    @given(edits=header_edits(NS))
    def run(edits):
        data = _apply(source_bytes, edits)
        _bounded_property(tmp_path, data)
        try:
            _clear_property(tmp_path, data)
            key = "ok or clear ValueError"
        except Exception as exc:  # noqa: BLE001 - tallied and printed: the census of what escapes today
            key = type(exc).__name__
        outcomes[key] = outcomes.get(key, 0) + 1

    run()
    print(f"EDF header fuzz outcomes over {sum(outcomes.values())} examples: {outcomes}")
    assert sum(outcomes.values()) >= 3000
