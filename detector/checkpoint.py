"""Checkpoints: a directory with ``model.safetensors`` (weights) and ``metadata.json`` (everything else).

Loading never unpickles: the weights are read with safetensors and the metadata with ``json``. The
metadata records what is needed to rebuild and trust the model:

- ``format``, ``format_version``: ``"ictal-checkpoint"``, 1.
- ``checkpoint_id``: the first 16 hex digits of the SHA-256 of the weights (names, dtypes, shapes and
  bytes in name order); it does not change when the metadata is edited (e.g. by ``ictal tune``).
- ``model_config``, ``stack``: the :class:`~ictal.detector.config.ModelConfig` the weights belong to.
- ``frontend_config``: the :class:`~ictal.detector.config.FrontendConfig` the model was trained with.
- ``montage``: the row names of the model's input, in order: the 19 electrodes of
  :data:`ictal.detector.CANONICAL_CHANNELS` (``frontend_config.montage`` referential) or the 18 derivations of
  :data:`ictal.detector.montage.DOUBLE_BANANA_CHANNELS` (double_banana). It must be the channels of the
  front-end's montage and of length ``model_config.n_chans``; a loader that feeds another montage
  (``load_checkpoint(..., montage=...)``) is refused with both montages named.
- ``training``: the training data summary (``extra["training"]``), or null.
- ``thresholds``: tuned alarm thresholds (``alarms.thresholds.AlarmThresholds`` fields), or null.
- ``calibration`` (optional): post-hoc temperature scaling fitted on training recordings
  (:mod:`ictal.detector.calibration`), applied by ``Detector``; a malformed entry is refused.
- ``lookahead_s``: the output position the model was trained for (``detector.output_position``):
  seconds of future signal beyond the newest probability of a window's served span. Written by
  training; read by the daemon, ``ictal evaluate`` and ``ictal tune``. A checkpoint written before the
  key existed is read as ``lookahead_s = 0`` and says so (``LoadedCheckpoint.lookahead_declared``).
- ``provenance`` (optional): the data the weights were fitted on, written by training
  (``training.provenance.build_provenance``)::

      {"dataset": {"format", "root"}, "split": {"seed", "dev_fraction", "eval_recordings", "rule"},
       "train_recordings": [ids], "validation_recordings": [ids], "evaluation_recordings": [ids],
       "recording_id_rule": "<how an id is made>"}

  A list longer than ``training.provenance.MAX_LISTED_IDS`` is stored instead as
  ``<name>_recording_hashes`` (sorted SHA-256 hex digests of the UTF-8 ids) with ``"hashed": [names]``.
  A checkpoint without the key loads with a logged warning that its training data is unknown
  (``LoadedCheckpoint.provenance`` is None); a malformed one is refused.
- ``code_version``: the installed ``ictal`` version; ``torch_version``; ``created_utc``.
- any other key of ``extra`` (JSON values only).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ictal.detector.calibration import read_calibration
from ictal.detector.config import Backend, FrontendConfig, ModelConfig
from ictal.detector.montage import MONTAGES, montage_channels, montage_of_channels
from ictal.detector.output_position import MAX_LOOKAHEAD_S, seconds_to_samples

WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "metadata.json"
FORMAT = "ictal-checkpoint"
FORMAT_VERSION = 1
PROVENANCE_LISTS: tuple[str, ...] = ("train", "validation", "evaluation")
"""The recording lists of ``metadata["provenance"]``: ``<name>_recordings`` or ``<name>_recording_hashes``."""
PROVENANCE_KEYS: tuple[str, ...] = ("dataset", "split", "recording_id_rule")
"""Keys every ``metadata["provenance"]`` holds besides its recording lists."""
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")

logger = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, truncated or does not match its own config."""


@dataclass
class LoadedCheckpoint:
    """A model rebuilt from a checkpoint, with its metadata.

    Attributes
    ----------
    model : nn.Module
        The detector in eval mode on the requested device.
    model_config : ModelConfig
        Its config (``backend`` as requested at load time).
    frontend_config : FrontendConfig
        The front-end it was trained with.
    thresholds : dict or None
        Tuned alarm thresholds (``AlarmThresholds`` fields) when the checkpoint has them.
    metadata : dict
        The whole ``metadata.json``.
    checkpoint_id : str
        Hash of the weights (16 hex digits).
    lookahead_s : float
        The output position the model was trained for (``metadata["lookahead_s"]``; 0 when absent).
    lookahead_declared : bool
        False for a checkpoint written before ``lookahead_s`` existed (trained on whole windows).
    provenance : dict or None
        ``metadata["provenance"]``: dataset, split and training / validation / evaluation recording
        ids (or their hashes); None for a checkpoint that does not say (its training data is unknown).
    """

    model: nn.Module
    model_config: ModelConfig
    frontend_config: FrontendConfig
    thresholds: dict[str, Any] | None
    metadata: dict[str, Any]
    checkpoint_id: str
    lookahead_s: float = 0.0
    lookahead_declared: bool = True
    provenance: dict[str, Any] | None = None

    @property
    def provenance_known(self) -> bool:
        """Whether the checkpoint says which recordings it was trained on (``metadata["provenance"]``)."""
        return self.provenance is not None


def weights_id(state: dict[str, torch.Tensor]) -> str:
    """Identifier of a set of weights: SHA-256 over names, dtypes, shapes and bytes, 16 hex digits.

    Parameters
    ----------
    state : dict of str to Tensor
        A state dict (any device).

    Returns
    -------
    checkpoint_id : str
    """
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()[:16]


def _code_version() -> str:
    try:
        return importlib.metadata.version("ictal")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def save_checkpoint(
    path: Path | str,
    model: nn.Module,
    model_config: ModelConfig,
    frontend_config: FrontendConfig,
    extra: dict[str, Any] | None = None,
    lookahead_s: float = 0.0,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint directory.

    Parameters
    ----------
    path : path
        Directory to write (created if missing; ``model.safetensors`` and ``metadata.json`` in it are
        replaced, other files are left alone).
    model : nn.Module
        The detector built from ``model_config`` (its ``state_dict`` is saved, moved to the CPU).
    model_config : ModelConfig
        Config the model was built from.
    frontend_config : FrontendConfig
        Front-end the model was trained with.
    extra : dict, optional
        JSON-serialisable additions: ``training`` (data summary), ``thresholds`` (alarm thresholds as a
        dict), and any other key. They may not override the keys this function writes.
    lookahead_s : float, default 0
        The output position the model was trained for (``detector.output_position``), written as
        ``metadata["lookahead_s"]``.
    provenance : dict, optional
        The training data (layout in the module docstring), written as ``metadata["provenance"]``;
        None writes no key (the checkpoint's data is then unknown to ``ictal evaluate``/``tune``).

    Returns
    -------
    path : Path
        The checkpoint directory.

    Raises
    ------
    ValueError
        If ``model_config.n_chans`` is not the row count of ``frontend_config.montage``, or
        ``extra`` is not JSON-serialisable or overrides a reserved key, or ``lookahead_s`` is not
        a whole number of samples in [0, 30] s, or ``provenance`` is malformed (see
        :func:`check_provenance`).
    """
    lookahead_s = _check_lookahead(lookahead_s, "lookahead_s")
    channels = montage_channels(frontend_config.montage)
    if model_config.n_chans != len(channels):
        raise ValueError(
            f"model_config.n_chans = {model_config.n_chans} does not match the front-end's montage "
            f"{frontend_config.montage!r} ({len(channels)} rows: {', '.join(channels)})"
        )
    if provenance is not None:
        check_provenance(provenance, "provenance")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    checkpoint_id = weights_id(state)
    extra = dict(extra or {})
    metadata: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "checkpoint_id": checkpoint_id,
        "model_config": model_config.model_dump(mode="json"),
        "stack": model_config.stack,
        "frontend_config": frontend_config.model_dump(mode="json"),
        "montage": list(channels),
        "training": extra.pop("training", None),
        "thresholds": extra.pop("thresholds", None),
        "lookahead_s": lookahead_s,
        "code_version": _code_version(),
        "torch_version": torch.__version__,
        "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if provenance is not None:
        metadata["provenance"] = provenance
    clash = sorted(set(extra) & (set(metadata) | {"provenance"}))
    if clash:
        raise ValueError(f"extra may not override checkpoint metadata keys {clash}")
    metadata.update(extra)
    try:
        text = json.dumps(metadata, indent=2, sort_keys=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint metadata is not JSON-serialisable: {exc}") from exc
    weights_tmp = path / (WEIGHTS_FILE + ".tmp")
    save_file(state, str(weights_tmp), metadata={"checkpoint_id": checkpoint_id})
    os.replace(weights_tmp, path / WEIGHTS_FILE)
    meta_tmp = path / (METADATA_FILE + ".tmp")
    meta_tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(meta_tmp, path / METADATA_FILE)
    return path


def read_metadata(path: Path | str) -> dict[str, Any]:
    """Read and check ``metadata.json`` of a checkpoint directory (JSON only, never pickle).

    Raises
    ------
    CheckpointError
        If the directory or the file is missing, the file is not JSON (or nested too deeply), ``format``
        is not ``"ictal-checkpoint"`` version 1, ``montage`` is not the row names of the front-end's
        montage (:func:`check_montage`), or
        ``thresholds`` is neither null nor an object of finite numbers, or ``provenance`` is present
        and malformed (:func:`check_provenance`).
    """
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(
            f"checkpoint {path} is not a directory (expected a directory with {WEIGHTS_FILE} and "
            f"{METADATA_FILE})"
        )
    meta_path = path / METADATA_FILE
    try:
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CheckpointError(f"{meta_path}: checkpoint metadata missing") from exc
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise CheckpointError(f"{meta_path}: checkpoint metadata is not readable JSON ({reason})") from exc
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{meta_path}: expected a JSON object (found {type(metadata).__name__})")
    if metadata.get("format") != FORMAT or metadata.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{meta_path}: not an {FORMAT} version {FORMAT_VERSION} file (found format "
            f"{metadata.get('format')!r} version {metadata.get('format_version')!r})"
        )
    check_montage(metadata, meta_path)
    _check_thresholds(metadata.get("thresholds"), meta_path)
    try:
        read_calibration(metadata.get("calibration"), str(meta_path))
    except ValueError as exc:
        raise CheckpointError(str(exc)) from exc
    if metadata.get("provenance") is not None:
        try:
            check_provenance(metadata["provenance"], f"{meta_path}: provenance")
        except ValueError as exc:
            raise CheckpointError(str(exc)) from exc
    if "lookahead_s" in metadata:
        try:
            _check_lookahead(metadata["lookahead_s"], f"{meta_path}: lookahead_s")
        except ValueError as exc:
            raise CheckpointError(str(exc)) from exc
    return metadata


def checkpoint_montage(metadata: dict[str, Any]) -> str:
    """The montage name a checkpoint's metadata declares (``frontend_config.montage``; referential when
    the front-end config predates the option)."""
    frontend = metadata.get("frontend_config")
    value = frontend.get("montage", "referential") if isinstance(frontend, dict) else "referential"
    return value if isinstance(value, str) else repr(value)


def check_montage(metadata: dict[str, Any], meta_path: Path | str, expected: str | None = None) -> str:
    """Check the ``montage`` of a checkpoint's metadata, and that it is the one a caller feeds.

    Parameters
    ----------
    metadata : dict
        The checkpoint's ``metadata.json``.
    meta_path : path
        Named in messages.
    expected : {"referential", "double_banana"}, optional
        The montage the caller will feed the model; None checks only the metadata's consistency.

    Returns
    -------
    montage : str
        The checkpoint's montage name.

    Raises
    ------
    CheckpointError
        If ``metadata["montage"]`` is not the row names of a known montage, differs from the rows of
        ``frontend_config.montage``, or the montage is not ``expected`` (both montages and their rows
        are named).
    """
    rows = metadata.get("montage")
    declared = checkpoint_montage(metadata)
    named = montage_of_channels(rows) if isinstance(rows, list) and all(isinstance(r, str) for r in rows) else None
    if named is None:
        known = "; ".join(f"{m}: {list(montage_channels(m))}" for m in MONTAGES)
        raise CheckpointError(
            f"{meta_path}: the model was trained on montage {str(rows)[:300]!r}, which is none of the known "
            f"input montages ({known})"
        )
    if named != declared:
        raise CheckpointError(
            f"{meta_path}: metadata montage lists the {named} rows but frontend_config.montage is {declared!r}"
        )
    if expected is not None and expected != named:
        raise CheckpointError(
            f"{meta_path}: the model was trained on the {named} montage ({', '.join(montage_channels(named))}); "
            f"this caller feeds the {expected} montage ({', '.join(montage_channels(expected))}): a model "
            f"trained on one montage cannot read the other"
        )
    return named


def check_provenance(provenance: Any, name: str = "provenance") -> None:
    """Check the layout of a checkpoint's ``provenance`` (module docstring).

    Parameters
    ----------
    provenance : object
        The value to check.
    name : str
        How error messages name it.

    Raises
    ------
    ValueError
        If it is not an object, lacks ``dataset``/``split``/``recording_id_rule``, or a recording list
        (``<list>_recordings`` list of str, or ``<list>_recording_hashes`` list of 64 lower-case hex
        digits) is missing, given both ways, or of the wrong type.
    """
    if not isinstance(provenance, dict):
        raise ValueError(f"{name} must be an object (found {type(provenance).__name__})")
    missing = [k for k in PROVENANCE_KEYS if k not in provenance]
    if missing:
        raise ValueError(f"{name}: key(s) {missing} missing (expected {list(PROVENANCE_KEYS)} and the recording lists)")
    for part in PROVENANCE_LISTS:
        ids_key, hash_key = f"{part}_recordings", f"{part}_recording_hashes"
        present = [k for k in (ids_key, hash_key) if k in provenance]
        if len(present) != 1:
            raise ValueError(f"{name}: expected exactly one of {ids_key!r} and {hash_key!r} (found {present})")
        values = provenance[present[0]]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ValueError(f"{name}.{present[0]} must be a list of strings (found {str(values)[:60]!r})")
        if present[0] == hash_key:
            bad = [v for v in values if not _SHA256_HEX.match(v)]
            if bad:
                raise ValueError(f"{name}.{hash_key}: {len(bad)} value(s) are not SHA-256 hex digests "
                                 f"(first: {bad[0][:70]!r})")


def _check_lookahead(value: Any, name: str) -> float:
    """A lookahead in seconds: a finite number of whole samples at 256 Hz in [0, MAX_LOOKAHEAD_S]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number of seconds (found {str(value)[:40]!r})")
    seconds_to_samples(float(value), name)
    if not 0.0 <= value <= MAX_LOOKAHEAD_S:
        raise ValueError(f"{name} must lie in [0, {MAX_LOOKAHEAD_S:g}] s (found {value})")
    return float(value)


def _check_thresholds(thresholds: Any, meta_path: Path) -> None:
    """Thresholds are null or a mapping of names to finite numbers (``AlarmThresholds`` fields)."""
    if thresholds is None:
        return
    if not isinstance(thresholds, dict):
        raise CheckpointError(
            f"{meta_path}: thresholds must be an object of named numbers or null (found "
            f"{type(thresholds).__name__} {str(thresholds)[:40]!r})"
        )
    for name, value in thresholds.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise CheckpointError(
                f"{meta_path}: thresholds.{name} must be a finite number (found {str(value)[:40]!r})"
            )


def _check_state(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], where: Path) -> None:
    """Raise naming the first tensor (in the model's order) whose name or shape does not match."""
    for name, tensor in expected.items():
        if name not in found:
            raise CheckpointError(
                f"{where}: weights do not match the model config: tensor {name!r} (expected shape "
                f"{tuple(tensor.shape)}) is missing from the file"
            )
        if tuple(found[name].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{where}: weights do not match the model config: first mismatching tensor {name!r}: "
                f"expected shape {tuple(tensor.shape)}, found {tuple(found[name].shape)}"
            )
    unexpected = [name for name in found if name not in expected]
    if unexpected:
        raise CheckpointError(
            f"{where}: weights do not match the model config: unexpected tensor {unexpected[0]!r} "
            f"(shape {tuple(found[unexpected[0]].shape)}; {len(unexpected)} unexpected in all)"
        )


def _legacy_model_config(config: Any) -> Any:
    """A checkpoint's ``model_config`` with the architecture keys added since it was written.

    ``fusion_norm`` (issue 22): absent means the checkpoint predates it and was built with the
    fusion's LayerNorm (``"layernorm"``); the new default, ``"none"``, would not match its weights.
    """
    if isinstance(config, dict) and "fusion_norm" not in config:
        logger.warning("checkpoint model_config has no fusion_norm: written before the read-out saw "
                       "un-normalised features (issue 22), loaded with fusion_norm 'layernorm', whose "
                       "probabilities saturate near 0.96; retrain it")
        return {**config, "fusion_norm": "layernorm"}
    return config


def load_checkpoint(
    path: Path | str, backend: Backend = "auto", device: str | torch.device = "cpu", montage: str | None = None,
) -> LoadedCheckpoint:
    """Rebuild a detector from a checkpoint directory without unpickling anything.

    Parameters
    ----------
    path : path
        Checkpoint directory written by :func:`save_checkpoint`.
    backend : {"auto", "fused", "reference"}
        Stack backend to build (weights load on either).
    device : str or torch.device
        Where the model goes.
    montage : {"referential", "double_banana"}, optional
        The input montage the caller will feed; a checkpoint trained on another is refused (both
        named). None accepts either: the caller then feeds ``frontend_config.montage``.

    Returns
    -------
    loaded : LoadedCheckpoint
        Model in eval mode.

    Raises
    ------
    CheckpointError
        If a file is missing, the metadata is not valid JSON or its configs do not validate, the
        weights file is corrupt or truncated, the weights' hash differs from ``checkpoint_id``, or a
        tensor is missing, unexpected or of another shape than the config implies (the first such tensor
        is named with expected and found shape), or ``provenance`` is malformed.

    Notes
    -----
    A checkpoint without ``provenance`` (written before the key existed, or by hand) loads, with a
    warning on the ``detector.checkpoint`` logger that its training data is unknown, and
    ``provenance`` None.
    """
    from ictal.detector.model import build_model

    path = Path(path)
    metadata = read_metadata(path)
    if montage is not None:
        check_montage(metadata, path / METADATA_FILE, montage)
    try:
        model_config = ModelConfig.model_validate(
            {**_legacy_model_config(metadata["model_config"]), "backend": backend}
        )
        frontend_config = FrontendConfig.model_validate(metadata["frontend_config"])
    except KeyError as exc:
        raise CheckpointError(f"{path / METADATA_FILE}: key {exc.args[0]!r} missing") from exc
    except (ValidationError, TypeError) as exc:
        raise CheckpointError(f"{path / METADATA_FILE}: config does not validate: {exc}") from exc
    rows = montage_channels(frontend_config.montage)
    if model_config.n_chans != len(rows):
        raise CheckpointError(
            f"{path / METADATA_FILE}: model_config.n_chans = {model_config.n_chans} but the {frontend_config.montage} "
            f"montage has {len(rows)} rows ({', '.join(rows)})"
        )
    weights_path = path / WEIGHTS_FILE
    if not weights_path.is_file():
        raise CheckpointError(f"{weights_path}: checkpoint weights missing")
    try:
        state = load_file(str(weights_path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        size = weights_path.stat().st_size
        raise CheckpointError(
            f"{weights_path}: not a readable safetensors file, corrupt or truncated ({size} bytes): {exc}"
        ) from exc
    checkpoint_id = weights_id(state)
    recorded = metadata.get("checkpoint_id")
    if recorded != checkpoint_id:
        raise CheckpointError(
            f"{weights_path}: weights hash {checkpoint_id} differs from the checkpoint_id {recorded!r} of "
            f"{METADATA_FILE}: the weights were altered or belong to another checkpoint"
        )
    model = build_model(model_config)
    _check_state(model.state_dict(), state, weights_path)
    model.load_state_dict(state, strict=True)
    model.to(device).eval()
    thresholds = metadata.get("thresholds") or None
    declared = "lookahead_s" in metadata
    provenance = metadata.get("provenance")
    if provenance is None:
        logger.warning("checkpoint %s (%s) has no provenance in %s: its training data is unknown, so no "
                       "tool can tell whether a recording it scores is held out", checkpoint_id, path, METADATA_FILE)
    return LoadedCheckpoint(model, model_config, frontend_config, thresholds, metadata, checkpoint_id,
                            lookahead_s=float(metadata.get("lookahead_s", 0.0)), lookahead_declared=declared,
                            provenance=provenance)
