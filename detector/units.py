"""Physical units of EEG signals: the factor that brings an EDF/LSL physical dimension to microvolts."""

from __future__ import annotations

_FACTORS_TO_UV: dict[str, float] = {
    "v": 1e6,
    "mv": 1e3,
    "uv": 1.0,
    "\u00b5v": 1.0,  # MICRO SIGN, as EDF files written on Windows spell it
    "\u03bcv": 1.0,  # GREEK SMALL LETTER MU, as some LSL outlets spell it
    "nv": 1e-3,
}


def scale_to_uv(dimension: str) -> float:
    """Factor that converts samples in ``dimension`` to microvolts.

    Parameters
    ----------
    dimension : str
        The physical dimension of a signal as an EDF header (EDF spec, "physical dimension", 8 ASCII
        characters, space padded) or an LSL stream description writes it: ``"V"``, ``"mV"``,
        ``"uV"``, ``"µV"`` (micro sign or Greek mu), ``"nV"``. Surrounding spaces and letter case are
        ignored (``"UV"``, ``"MV"`` read as uV and mV: EEG is never recorded in megavolts).

    Returns
    -------
    factor : float
        Multiply samples in ``dimension`` by this to get microvolts (``"mV"`` -> 1000.0).

    Raises
    ------
    ValueError
        If the dimension is empty or not a voltage unit; the message names the value found and the
        values accepted.
    """
    key = dimension.strip().lower()
    try:
        return _FACTORS_TO_UV[key]
    except KeyError:
        raise ValueError(
            f"unknown physical dimension {dimension!r}: expected a voltage unit, one of "
            f"V, mV, uV, \u00b5V, nV (any case)"
        ) from None
