"""The thresholds file, and the one rule that decides which thresholds are in force.

Written by ``ictal tune`` (:func:`save_thresholds`), read by the daemon (:func:`load_thresholds`,
:func:`thresholds_in_force`). Format (version 2; version 1 files, without ``recordings``, are still read)::

    {
      "format": "ictal-thresholds",
      "version": 2,
      "thresholds": {"tau_on": ..., "tau_off": ..., "min_duration_s": ..., "merge_gap_s": ...,
                     "max_duration_s": ..., "refractory_s": ...},
      "provenance": {"target_fa_per_24h": ..., "dataset": ..., "checkpoint_id": ...,
                     "recordings": ["<recording_id>", ...] or null,
                     "recording_hashes": ["<16 hex>", ...] or null,
                     "created_utc": "2026-...Z", "extra": {...}}
    }

``checkpoint_id`` is the id of the checkpoint whose probabilities were tuned (the weights hash of
``detector.checkpoint``, the daemon's ``model_id``). ``recordings`` lists the recording ids tuned on;
beyond :data:`MAX_LISTED_RECORDINGS` ids the file keeps ``recording_hashes`` instead (the first 16
hex digits of the SHA-256 of each id, :func:`recording_hash`); null in both: not recorded (version 1,
or a caller that did not say).

Precedence (the one rule, shared by ``ictal serve``, its reload and ``ictal config check``)
-----------------------------------------------------------------------------------------
1. ``alarms.thresholds_file`` when set. Its ``provenance.checkpoint_id`` must be the served
   checkpoint's id, else :class:`ThresholdsMismatchError` (exit 2 of ``ictal serve``, both ids named),
   unless ``alarms.accept_thresholds_of_checkpoint`` names exactly the file's checkpoint id: then the
   file is used, the source says so, and the daemon logs a WARNING and publishes a ``daemon`` event
   (reason ``foreign_thresholds``) at start and at every reload.
2. else the checkpoint's tuned thresholds (``ictal tune --write-checkpoint``) when
   ``alarms.use_checkpoint_thresholds`` is true (the default) and the checkpoint has them;
3. else ``alarms.thresholds`` (their defaults when the section is absent).

``alarms.thresholds`` written out in the config file while 1. or 2. applies is an error
(:class:`ThresholdsPrecedenceError`), never a silent override: the operator wrote numbers that would
not be used. Why an error rather than "the config wins": the checkpoint's thresholds were chosen for
that model's FA budget and the config's for another reason; which matters is the operator's call, and
the fix is one line either way (remove ``alarms.thresholds``, set ``use_checkpoint_thresholds: false``,
or remove ``thresholds_file``). "Written out" means present in the file (pydantic ``model_fields_set``),
even when equal to the defaults. The thresholds in force and their source are logged at start and at
every reload (``daemon_starting``/``thresholds_in_force`` lines).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ictal.alarms.config import AlarmsConfig, AlarmThresholds

THRESHOLDS_FORMAT = "ictal-thresholds"
THRESHOLDS_VERSION = 2
MAX_LISTED_RECORDINGS = 2000
"""Up to this many recording ids are listed in ``provenance.recordings``; beyond, their hashes
(16 hex digits each) keep the file small (TUSZ train has ~4600 recordings)."""


MIN_DURATION_FLOOR_S = 5.0
"""Minimum durations below this are flagged (:func:`threshold_warnings`): half the usual shortest
electrographic seizure (10 s); shorter minimums alarm on artefact bursts."""


def threshold_warnings(thresholds: AlarmThresholds, min_duration_floor_s: float = MIN_DURATION_FLOOR_S) -> list[str]:
    """What is unusual about a set of thresholds, one sentence each (empty when nothing is).

    Flags ``tau_off == tau_on`` (no hysteresis: a probability hovering at tau_on starts and ends
    events over and over) and ``min_duration_s`` below ``min_duration_floor_s``. ``ictal tune`` prints
    them and stores them in the file's ``provenance.extra.warnings``; the daemon logs them at start and
    at every reload.
    """
    out = []
    if thresholds.tau_off >= thresholds.tau_on:
        out.append(f"no hysteresis: tau_off {thresholds.tau_off:g} equals tau_on {thresholds.tau_on:g}")
    if thresholds.min_duration_s < min_duration_floor_s:
        out.append(f"min_duration_s {thresholds.min_duration_s:g} s is below the floor of "
                   f"{min_duration_floor_s:g} s")
    return out


def recording_hash(recording_id: str) -> str:
    """First 16 hex digits of the SHA-256 of a recording id (UTF-8): how many ids are recorded."""
    return hashlib.sha256(recording_id.encode("utf-8")).hexdigest()[:16]


class ThresholdsProvenance(BaseModel):
    """Where a set of thresholds comes from."""

    model_config = ConfigDict(extra="forbid")

    target_fa_per_24h: float = Field(ge=0, description="False-alarm rate per 24 h the tuning aimed at.")
    dataset: str = Field(description="Data set (and split) the thresholds were tuned on.")
    checkpoint_id: str = Field(description="Checkpoint whose probabilities were tuned (its weights hash).")
    recordings: list[str] | None = Field(
        None, description="Recording ids tuned on; null when not recorded (version 1) or when hashed instead."
    )
    recording_hashes: list[str] | None = Field(
        None, description=f"recording_hash of each id tuned on, used beyond {MAX_LISTED_RECORDINGS} ids."
    )
    created_utc: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    extra: dict[str, Any] = Field(default_factory=dict, description="Anything else, e.g. achieved FA/24h.")

    def tuned_on(self, recording_ids: Sequence[str]) -> list[str] | None:
        """The ids among ``recording_ids`` these thresholds were tuned on; None when not recorded."""
        if self.recordings is not None:
            known = set(self.recordings)
            return [r for r in recording_ids if r in known]
        if self.recording_hashes is not None:
            hashes = set(self.recording_hashes)
            return [r for r in recording_ids if recording_hash(r) in hashes]
        return None


class ThresholdsFile(BaseModel):
    """The whole thresholds file (version 1 or 2)."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["ictal-thresholds"] = THRESHOLDS_FORMAT
    version: Literal[1, 2] = THRESHOLDS_VERSION
    thresholds: AlarmThresholds
    provenance: ThresholdsProvenance


class ThresholdsError(ValueError):
    """The thresholds in force cannot be decided; the message names what and how to fix it."""


class ThresholdsFileError(ThresholdsError):
    """A thresholds file that cannot be read or does not validate; the message names the file."""


class ThresholdsMismatchError(ThresholdsFileError):
    """A thresholds file tuned for another checkpoint than the one served (and not accepted).

    Attributes
    ----------
    path : Path
    file_checkpoint_id, checkpoint_id : str
        The id the file was tuned for; the id of the checkpoint served.
    """

    def __init__(self, path: Path, file_checkpoint_id: str, checkpoint_id: str, accepted: str | None) -> None:
        self.path, self.file_checkpoint_id, self.checkpoint_id = path, file_checkpoint_id, checkpoint_id
        accept = ("" if accepted is None else
                  f"; alarms.accept_thresholds_of_checkpoint is {accepted!r}, not the file's id")
        super().__init__(
            f"{path}: thresholds tuned for checkpoint {file_checkpoint_id}, but the checkpoint served is "
            f"{checkpoint_id}{accept}. Tune for this checkpoint (`ictal tune --checkpoint ...`), or accept "
            f"the file explicitly with `alarms.accept_thresholds_of_checkpoint: {file_checkpoint_id}`"
        )


class ThresholdsPrecedenceError(ThresholdsError):
    """``alarms.thresholds`` written in the config while a thresholds file or the checkpoint's would win."""


class ThresholdsSource(str):
    """Where the thresholds in force come from: a ``str`` (logged and reported) with its parts.

    Attributes
    ----------
    kind : {"file", "checkpoint", "config"}
    foreign_checkpoint_id : str or None
        The checkpoint id a thresholds file was tuned for when it differs from the one served and the
        config accepted it (``alarms.accept_thresholds_of_checkpoint``); None otherwise.
    checkpoint_id : str or None
        The checkpoint served, as given to :func:`thresholds_in_force`.
    """

    kind: str
    foreign_checkpoint_id: str | None
    checkpoint_id: str | None

    def __new__(cls, text: str, kind: str, foreign_checkpoint_id: str | None = None,
                checkpoint_id: str | None = None) -> ThresholdsSource:
        self = super().__new__(cls, text)
        self.kind, self.foreign_checkpoint_id, self.checkpoint_id = kind, foreign_checkpoint_id, checkpoint_id
        return self


def save_thresholds(path: Path | str, thresholds: AlarmThresholds, *, target_fa_per_24h: float,
                    dataset: str, checkpoint_id: str, recordings: Sequence[str] | None = None,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write a thresholds file (version 2).

    Parameters
    ----------
    path : path
        Destination (``.json``); written atomically (temporary file + rename).
    thresholds : AlarmThresholds
    target_fa_per_24h : float
        The false-alarm rate per 24 h the tuning aimed at.
    dataset, checkpoint_id : str
        Provenance: what the thresholds were tuned on and for (``checkpoint_id``: the weights hash the
        daemon compares with its checkpoint's).
    recordings : sequence of str, optional
        Recording ids tuned on: listed up to :data:`MAX_LISTED_RECORDINGS`, hashed beyond; None: not
        recorded.
    extra : dict, optional
        JSON-serialisable extra provenance (achieved FA/24h, sensitivity, ...).

    Returns
    -------
    path : Path
    """
    path = Path(path)
    listed = hashed = None
    if recordings is not None:
        ids = sorted(set(recordings))
        if len(ids) <= MAX_LISTED_RECORDINGS:
            listed = ids
        else:
            hashed = sorted(recording_hash(r) for r in ids)
    content = ThresholdsFile(
        thresholds=thresholds,
        provenance=ThresholdsProvenance(target_fa_per_24h=target_fa_per_24h, dataset=dataset,
                                        checkpoint_id=checkpoint_id, recordings=listed, recording_hashes=hashed,
                                        extra=extra or {}),
    )
    path.parent.mkdir(parents=True, exist_ok=True)  # `--out runs/x/thresholds.json` into a new folder
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(content.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def load_thresholds_file(path: Path | str) -> ThresholdsFile:
    """Read and validate a whole thresholds file (thresholds + provenance; version 1 or 2).

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
    if data.get("version") not in (1, 2):
        raise ThresholdsFileError(
            f"{path}: thresholds file version {data.get('version')!r}, expected 1 or 2 (a newer ictal wrote it?)"
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
    config: AlarmsConfig, checkpoint_thresholds: Mapping[str, Any] | None = None, checkpoint_id: str | None = None
) -> tuple[AlarmThresholds, ThresholdsSource]:
    """The thresholds in force and where they come from (the precedence of the module docstring).

    Parameters
    ----------
    config : AlarmsConfig
        The alarms section of the daemon config (evaluation builds one from its options).
    checkpoint_thresholds : mapping or None
        The tuned thresholds stored in the checkpoint's metadata (AlarmThresholds fields), if any.
    checkpoint_id : str or None
        The id of the checkpoint served (the daemon's ``model_id``); a thresholds file must have been
        tuned for it. None: not checked (no checkpoint known, e.g. a unit test).

    Returns
    -------
    thresholds : AlarmThresholds
    source : ThresholdsSource
        ``"file <path>"``, ``"checkpoint"`` or ``"config"`` (a ``str``); for an accepted foreign file
        ``"file <path> (tuned for checkpoint A, accepted for checkpoint B by
        alarms.accept_thresholds_of_checkpoint)"`` with ``source.foreign_checkpoint_id == A``.

    Raises
    ------
    ThresholdsFileError
        If the thresholds file does not validate.
    ThresholdsMismatchError
        If the file was tuned for another checkpoint than ``checkpoint_id`` and the config does not
        accept that id; the message names the file and both ids.
    ThresholdsPrecedenceError
        If ``config.thresholds`` is written out while the file or the checkpoint's thresholds win.
    ThresholdsError
        If the checkpoint's thresholds are not valid AlarmThresholds.
    """
    explicit = "thresholds" in config.model_fields_set
    if config.thresholds_file is not None:
        if explicit:
            raise ThresholdsPrecedenceError(
                f"alarms.thresholds is set in the config and so is alarms.thresholds_file "
                f"({config.thresholds_file}), which wins: the configured thresholds would be ignored; "
                "remove one of them"
            )
        path = Path(config.thresholds_file)
        content = load_thresholds_file(path)
        file_id = content.provenance.checkpoint_id
        if checkpoint_id is None or file_id == checkpoint_id:
            return content.thresholds, ThresholdsSource(f"file {path}", "file", None, checkpoint_id)
        accepted = config.accept_thresholds_of_checkpoint
        if accepted != file_id:
            raise ThresholdsMismatchError(path, file_id, checkpoint_id, accepted)
        text = (f"file {path} (tuned for checkpoint {file_id}, accepted for checkpoint {checkpoint_id} by "
                "alarms.accept_thresholds_of_checkpoint)")
        return content.thresholds, ThresholdsSource(text, "file", file_id, checkpoint_id)
    if config.use_checkpoint_thresholds and checkpoint_thresholds is not None:
        if explicit:
            tuned = ", ".join(f"{k}={v}" for k, v in dict(checkpoint_thresholds).items())
            raise ThresholdsPrecedenceError(
                f"alarms.thresholds is set in the config (tau_on={config.thresholds.tau_on}, tau_off="
                f"{config.thresholds.tau_off}, min_duration_s={config.thresholds.min_duration_s}) but the "
                f"checkpoint{'' if checkpoint_id is None else ' ' + checkpoint_id} has tuned thresholds ({tuned}) "
                "that win while alarms.use_checkpoint_thresholds is true: set use_checkpoint_thresholds: false "
                "to use the configured ones, or remove alarms.thresholds to use the checkpoint's"
            )
        try:
            thresholds = AlarmThresholds.model_validate(dict(checkpoint_thresholds))
        except ValidationError as exc:
            raise ThresholdsError(f"the checkpoint's tuned thresholds are invalid: {exc}") from exc
        return thresholds, ThresholdsSource("checkpoint", "checkpoint", None, checkpoint_id)
    return config.thresholds, ThresholdsSource("config", "config", None, checkpoint_id)


def resolve_thresholds(config: AlarmsConfig, checkpoint_thresholds: Mapping[str, Any] | None = None,
                       checkpoint_id: str | None = None) -> AlarmThresholds:
    """The thresholds in force (see :func:`thresholds_in_force` for the order and the errors)."""
    return thresholds_in_force(config, checkpoint_thresholds, checkpoint_id)[0]
