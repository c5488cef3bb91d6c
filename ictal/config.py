"""Loading and validating the YAML config files.

Every file names its kind on its first key (`kind: daemon`, `kind: model`, `kind: train`); the kind
picks the pydantic model that validates it. The models live next to the code they configure:
`streaming.config.DaemonConfig`, `detector.config.ModelConfig`, `training.config.TrainConfig`.

A daemon config is refused when it would stop a bed at run time: a hop that is not a whole number of
samples at 256 Hz, two beds that could select the same LSL stream, an LSL selector with a quote (the
validators of `streaming.config`), and a hop that does not fit beside the checkpoint's `lookahead_s`
(:func:`daemon_checkpoint_problems`). `ictal config check` and the daemon both load through
:func:`load_config`.
"""

from __future__ import annotations

import difflib
import json
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ictal.detector import FS_HZ, WINDOW_SAMPLES
from ictal.detector.config import ModelConfig
from ictal.streaming.config import DaemonConfig
from ictal.training.config import TrainConfig

CONFIG_KINDS: dict[str, type[BaseModel]] = {
    "daemon": DaemonConfig,
    "model": ModelConfig,
    "train": TrainConfig,
}


class ConfigError(ValueError):
    """A config file that cannot be read or does not validate; the message names file and key."""


_MAX_INPUT_REPR = 120
"""Characters of an offending value quoted in an error message (a YAML alias bomb expands to megabytes)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key given twice in one mapping (YAML 1.2 forbids it)."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict[object, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {seen[key] + 1})", key_node.start_mark
                )
            seen[key] = key_node.start_mark.line
        except TypeError:  # an unhashable key (a list or mapping): SafeLoader rejects it below
            break
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _format_location(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "<top level>"


def _model_at(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model class that holds the key at ``loc`` (list indices and dict keys skipped)."""
    current: Any = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        if isinstance(part, int) or part not in current.model_fields:
            continue
        annotation = current.model_fields[part].annotation
        candidates = [annotation, *typing.get_args(annotation)]
        for inner in list(candidates):
            candidates += typing.get_args(inner)
        current = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` (difflib), or an empty string."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def format_validation_error(
    path: Path | str, error: ValidationError, model: type[BaseModel] | None = None
) -> str:
    """Render a pydantic error as one line per problem: ``FILE: key.path: message (found: value)``.

    With ``model`` (the config's class) an unknown key also gets the closest known key of its
    section (``difflib.get_close_matches``): ``unknown key 'scheduler.hop' (did you mean 'hop_s'?)``.
    """
    lines = []
    for item in error.errors():
        where = _format_location(item["loc"])
        if item["type"] == "extra_forbidden":
            owner = _model_at(model, tuple(item["loc"][:-1]))
            hint = _did_you_mean(item["loc"][-1], owner.model_fields) if owner is not None else ""
            message = f"unknown key {where!r}{hint or ' (not a field of this config; check its spelling)'}"
        else:
            message = f"{where}: {item['msg']}"
            if "input" in item and not isinstance(item["input"], dict):
                found = repr(item["input"])
                if len(found) > _MAX_INPUT_REPR:
                    found = f"{found[:_MAX_INPUT_REPR]}... ({len(found)} characters)"
                message += f" (found: {found})"
        lines.append(f"{path}: {message}")
    return "\n".join(lines)


def read_yaml(path: Path | str) -> dict[str, Any]:
    """Read a YAML mapping from ``path``.

    Raises
    ------
    ConfigError
        If the file is missing, is not UTF-8 text, is not valid YAML (a key given twice, a Python tag,
        nesting deeper than the parser's recursion limit) or is not a mapping.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r})") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML: nested too deep for the parser") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level (found {type(data).__name__})")
    return data


def load_config(path: Path | str, kind: str | None = None) -> BaseModel:
    """Read and validate a config file.

    Parameters
    ----------
    path : path-like
        YAML file whose top-level ``kind`` is one of ``daemon``, ``model``, ``train``.
    kind : str, optional
        The kind the caller needs; a file of another kind is an error.

    Returns
    -------
    config : DaemonConfig or ModelConfig or TrainConfig
        The validated config, defaults filled in.

    Raises
    ------
    ConfigError
        If the file cannot be read, names no or an unknown kind, is of another kind than ``kind``, or
        does not validate (the message names every offending key).
    """
    data = read_yaml(path)
    if "kind" not in data:
        keys = [str(k) for k in data]
        near = difflib.get_close_matches("kind", keys, n=1, cutoff=0.5)
        named = f"; found key {near[0]!r}: a misspelling of 'kind'?" if near else (
            f"; top-level keys found: {', '.join(map(repr, keys[:8]))}" if keys else "; the file is empty")
        raise ConfigError(
            f"{path}: no top-level key 'kind' (it must be one of {sorted(CONFIG_KINDS)}){named}"
        )
    found = data["kind"]
    if not isinstance(found, str) or found not in CONFIG_KINDS:
        raise ConfigError(
            f"{path}: top-level key 'kind' must be one of {sorted(CONFIG_KINDS)} (found: {found!r})"
            + _did_you_mean(found, CONFIG_KINDS)
        )
    if kind is not None and found != kind:
        raise ConfigError(f"{path}: expected a {kind!r} config (found kind: {found!r})")
    try:
        config = CONFIG_KINDS[found].model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc, CONFIG_KINDS[found])) from None
    if isinstance(config, DaemonConfig):
        problems = daemon_checkpoint_problems(config)
        if problems:
            raise ConfigError("\n".join(f"{path}: {problem}" for problem in problems))
    return config


def daemon_checkpoint_problems(config: DaemonConfig) -> list[str]:
    """What in a daemon config does not fit its checkpoint, and would stop every bed at run time.

    The hop and the checkpoint's ``lookahead_s`` (metadata.json) must fit in one 60 s window:
    ``hop_s + lookahead_s <= 60`` (``detector.output_position.check_positions``, run when a bed opens).
    Only the metadata JSON is read (no model is loaded). A checkpoint that is missing or unreadable is
    not judged here: the daemon refuses to start on it and names the problem (``streaming.daemon``).

    Parameters
    ----------
    config : DaemonConfig
        A validated daemon config; ``detector.checkpoint`` is resolved against the working directory,
        as the daemon does.

    Returns
    -------
    problems : list of str
        One line per problem, naming the keys and values (empty when none).
    """
    meta_path = Path(config.detector.checkpoint) / "metadata.json"
    try:
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return []  # the daemon's checkpoint loading names this problem at start
    lookahead_s = metadata.get("lookahead_s", 0.0) if isinstance(metadata, dict) else 0.0
    if isinstance(lookahead_s, bool) or not isinstance(lookahead_s, (int, float)):
        return []  # invalid metadata: refused by the daemon's checkpoint loading
    hop_samples = round(config.scheduler.hop_s * FS_HZ)
    lookahead_samples = round(lookahead_s * FS_HZ)
    if hop_samples + lookahead_samples > WINDOW_SAMPLES:
        return [
            f"scheduler.hop_s: {config.scheduler.hop_s:g} s plus the checkpoint's lookahead_s {lookahead_s:g} s "
            f"({meta_path}) must fit in one {WINDOW_SAMPLES / FS_HZ:g} s window (found "
            f"{config.scheduler.hop_s + lookahead_s:g} s); expected hop_s <= {(WINDOW_SAMPLES - lookahead_samples) / FS_HZ:g} s"
        ]
    return []


def dump_config(config: BaseModel) -> str:
    """Render a validated config as YAML, defaults included."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
