"""Post-hoc calibration stored with a checkpoint: the ``calibration`` entry of ``metadata.json``.

A checkpoint may carry a temperature fitted after training (Guo et al. 2017) on its TRAINING recordings
(never on held-out ones; ``ictal tune --calibrate`` fits it, :mod:`ictal.training.calibration`)::

    "calibration": {"method": "temperature", "temperature": T,
                    "fitted_on": {"dataset": ..., "recordings": [ids], "n_samples": n,
                                  "n_seizure_samples": k, "positions": "served"},
                    "nll_before": ..., "nll_after": ..., "checkpoint_id": "<id of the weights>"}

:class:`~ictal.detector.inference.Detector` applies it wherever it makes a probability (``predict`` and
``step``): :math:`p = \\sigma(z / T)` for the logit :math:`z`, so the daemon, ``ictal evaluate``,
``ictal tune`` and the Python API all read calibrated probabilities, and tuned thresholds (``tau_on``,
``tau_off``) refer to them. ``T > 1`` softens over-confident logits, ``T < 1`` sharpens timid ones; one
positive scalar keeps the ranking of samples (AUROC, rated-span AUCs) unchanged. No entry (or null)
means ``T = 1``: the raw sigmoid.

References
----------
Guo C., Pleiss G., Sun Y., Weinberger K. Q. (2017). On calibration of modern neural networks. ICML.
Platt J. (1999). Probabilistic outputs for support vector machines. (the two-parameter variant).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

METHODS: tuple[str, ...] = ("temperature",)
"""Calibration methods a checkpoint may name."""

MIN_TEMPERATURE: float = 0.05
"""Smallest temperature accepted: below it the probabilities are a 0/1 step, no longer a probability."""

MAX_TEMPERATURE: float = 100.0
"""Largest temperature accepted: above it every probability sits at 0.5 and no threshold separates."""


@dataclass(frozen=True)
class TemperatureCalibration:
    """Temperature scaling of logits, :math:`p = \\sigma(z / T)`.

    Attributes
    ----------
    temperature : float
        ``T`` in [:data:`MIN_TEMPERATURE`, :data:`MAX_TEMPERATURE`]; 1.0 is the identity.
    entry : dict or None
        The metadata entry it was read from (None for the identity).
    """

    temperature: float = 1.0
    entry: dict[str, Any] | None = None

    @property
    def identity(self) -> bool:
        """Whether the probabilities are the raw sigmoid (no calibration stored)."""
        return self.temperature == 1.0 and self.entry is None


def read_calibration(entry: Any, where: str = "metadata.json") -> TemperatureCalibration:
    """Validate a checkpoint's ``calibration`` entry.

    Parameters
    ----------
    entry : dict or None
        ``metadata["calibration"]``; None (or absent) is the identity.
    where : str
        Named in the error (e.g. the metadata file's path).

    Returns
    -------
    TemperatureCalibration

    Raises
    ------
    ValueError
        If the entry is not an object, names another method than ``"temperature"``, or its temperature
        is not a finite number in [MIN_TEMPERATURE, MAX_TEMPERATURE]; the message names the value found.
    """
    if entry is None:
        return TemperatureCalibration()
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: calibration must be an object or null (found {type(entry).__name__} "
                         f"{str(entry)[:40]!r})")
    method = entry.get("method")
    if method not in METHODS:
        raise ValueError(f"{where}: calibration.method is {method!r}, expected one of {list(METHODS)}")
    t = entry.get("temperature")
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) \
            or not MIN_TEMPERATURE <= t <= MAX_TEMPERATURE:
        raise ValueError(f"{where}: calibration.temperature is {str(t)[:40]!r}, expected a finite number in "
                         f"[{MIN_TEMPERATURE}, {MAX_TEMPERATURE}]")
    return TemperatureCalibration(float(t), dict(entry))
