"""The thresholds file: tuned post-processor thresholds with their provenance (JSON).

Written by ``ictal tune`` (:func:`save_thresholds`), read by the daemon (:func:`load_thresholds`,
:func:`resolve_thresholds`). Format::

    {
      "format": "ictal-thresholds",
      "version": 1,
      "thresholds": {"tau_on": ..., "tau_off": ..., "min_duration_s": ..., "merge_gap_s": ...,
                     "max_duration_s": ..., "refractory_s": ...},
      "provenance": {"target_fa_per_24h": ..., "dataset": ..., "checkpoint_id": ...,
                     "created_utc": "2026-...Z", "extra": {...}}
    }
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from alarms.config import AlarmsConfig, AlarmThresholds

THRESHOLDS_FORMAT = "ictal-thresholds"
THRESHOLDS_VERSION = 1


class ThresholdsProvenance(BaseModel):
    """Where a set of thresholds comes from."""

    model_config = ConfigDict(extra="forbid")

    target_fa_per_24h: float = Field(ge=0, description="False-alarm rate per 24 h the tuning aimed at.")
    dataset: str = Field(description="Data set (and split) the thresholds were tuned on.")
    checkpoint_id: str = Field(description="Checkpoint whose probabilities were tuned.")
    created_utc: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    extra: dict[str, Any] = Field(default_factory=dict, description="Anything else, e.g. achieved FA/24h.")


class ThresholdsFile(BaseModel):
    """The whole thresholds file."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["ictal-thresholds"] = THRESHOLDS_FORMAT
    version: Literal[1] = THRESHOLDS_VERSION
    thresholds: AlarmThresholds
    provenance: ThresholdsProvenance


class ThresholdsFileError(ValueError):
    """A thresholds file that cannot be read or does not validate; the message names the file."""


def save_thresholds(path: Path | str, thresholds: AlarmThresholds, *, target_fa_per_24h: float,
                    dataset: str, checkpoint_id: str, extra: dict[str, Any] | None = None) -> Path:
    """Write a thresholds file.

    Parameters
    ----------
    path : path
        Destination (``.json``); written atomically (temporary file + rename).
    thresholds : AlarmThresholds
    target_fa_per_24h : float
        The false-alarm rate per 24 h the tuning aimed at.
    dataset, checkpoint_id : str
        Provenance: what the thresholds were tuned on and for.
    extra : dict, optional
        JSON-serialisable extra provenance (achieved FA/24h, sensitivity, ...).

    Returns
    -------
    path : Path
    """
    path = Path(path)
    content = ThresholdsFile(
        thresholds=thresholds,
        provenance=ThresholdsProvenance(target_fa_per_24h=target_fa_per_24h, dataset=dataset,
                                        checkpoint_id=checkpoint_id, extra=extra or {}),
    )
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(content.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def load_thresholds_file(path: Path | str) -> ThresholdsFile:
    """Read and validate a whole thresholds file (thresholds + provenance).

    Raises
    ------
    ThresholdsFileError
        If the file is missing, is not JSON, is not an ictal thresholds file, or does not validate;
        the message names the file, the key and the value found.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ThresholdsFileError(f"{path}: cannot read thresholds file ({exc.strerror})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ThresholdsFileError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != THRESHOLDS_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ThresholdsFileError(
            f"{path}: not an ictal thresholds file (found format {found!r}, expected {THRESHOLDS_FORMAT!r})"
        )
    try:
        return ThresholdsFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (found: {e.get('input')!r})" for e in exc.errors()
        )
        raise ThresholdsFileError(f"{path}: invalid thresholds file: {problems}") from exc


def load_thresholds(path: Path | str) -> AlarmThresholds:
    """Read the thresholds of a thresholds file (see :func:`load_thresholds_file` for the errors)."""
    return load_thresholds_file(path).thresholds


def thresholds_in_force(
    config: AlarmsConfig, checkpoint_thresholds: Mapping[str, Any] | None = None
) -> tuple[AlarmThresholds, str]:
    """The thresholds in force and where they come from, in the one order the daemon and evaluation share.

    Parameters
    ----------
    config : AlarmsConfig
        The alarms section of the daemon config (evaluation builds one from its options).
    checkpoint_thresholds : mapping or None
        The tuned thresholds stored in the checkpoint's metadata (AlarmThresholds fields), if any.

    Returns
    -------
    thresholds : AlarmThresholds
        ``config.thresholds_file`` when set; else the checkpoint's tuned thresholds when
        ``config.use_checkpoint_thresholds`` and the checkpoint has them; else ``config.thresholds``.
    source : str
        ``"file <path>"``, ``"checkpoint"`` or ``"config"``: logged and reported.

    Raises
    ------
    ThresholdsFileError
        If the thresholds file does not validate.
    ValueError
        If the checkpoint's thresholds are not valid AlarmThresholds.
    """
    if config.thresholds_file is not None:
        return load_thresholds(config.thresholds_file), f"file {config.thresholds_file}"
    if config.use_checkpoint_thresholds and checkpoint_thresholds is not None:
        try:
            return AlarmThresholds.model_validate(dict(checkpoint_thresholds)), "checkpoint"
        except ValidationError as exc:
            raise ValueError(f"the checkpoint's tuned thresholds are invalid: {exc}") from exc
    return config.thresholds, "config"


def resolve_thresholds(config: AlarmsConfig, checkpoint_thresholds: Mapping[str, Any] | None = None) -> AlarmThresholds:
    """The thresholds in force (see :func:`thresholds_in_force` for the order)."""
    return thresholds_in_force(config, checkpoint_thresholds)[0]
