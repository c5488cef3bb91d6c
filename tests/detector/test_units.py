"""Physical dimensions of EDF/LSL signals -> factor to microvolts."""

from __future__ import annotations

import pytest

from ictal.detector.units import scale_to_uv


@pytest.mark.parametrize(
    ("dimension", "factor"),
    [
        ("V", 1e6),
        ("v", 1e6),
        ("mV", 1e3),
        ("MV", 1e3),
        ("mv", 1e3),
        ("uV", 1.0),
        ("UV", 1.0),
        ("uv", 1.0),
        ("\u00b5V", 1.0),
        ("\u03bcV", 1.0),
        ("      uV", 1.0),
        ("mV      ", 1e3),
        ("nV", 1e-3),
    ],
)
def test_voltage_dimensions_scale_to_microvolts(dimension: str, factor: float) -> None:
    assert scale_to_uv(dimension) == factor


def test_millivolt_samples_become_microvolts() -> None:
    assert 0.05 * scale_to_uv("mV") == pytest.approx(50.0)


@pytest.mark.parametrize("dimension", ["", "   ", "degC", "%", "mmHg", "Ohm"])
def test_unknown_dimension_is_an_error_naming_it(dimension: str) -> None:
    with pytest.raises(ValueError, match="unknown physical dimension") as info:
        scale_to_uv(dimension)
    assert repr(dimension) in str(info.value)
    assert "uV" in str(info.value)
