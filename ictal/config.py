"""Loading and validating the YAML config files.

Every file names its kind on its first key (`kind: daemon`, `kind: model`, `kind: train`); the kind
picks the pydantic model that validates it. The models live next to the code they configure:
`streaming.config.DaemonConfig`, `detector.config.ModelConfig`, `training.config.TrainConfig`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from detector.config import ModelConfig
from streaming.config import DaemonConfig
from training.config import TrainConfig

CONFIG_KINDS: dict[str, type[BaseModel]] = {
    "daemon": DaemonConfig,
    "model": ModelConfig,
    "train": TrainConfig,
}


class ConfigError(ValueError):
    """A config file that cannot be read or does not validate; the message names file and key."""


def _format_location(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "<top level>"


def format_validation_error(path: Path | str, error: ValidationError) -> str:
    """Render a pydantic error as one line per problem: ``FILE: key.path: message (found: value)``."""
    lines = []
    for item in error.errors():
        where = _format_location(item["loc"])
        if item["type"] == "extra_forbidden":
            message = f"unknown key {where!r} (not a field of this config; check its spelling)"
        else:
            message = f"{where}: {item['msg']}"
            if "input" in item and not isinstance(item["input"], dict):
                message += f" (found: {item['input']!r})"
        lines.append(f"{path}: {message}")
    return "\n".join(lines)


def read_yaml(path: Path | str) -> dict[str, Any]:
    """Read a YAML mapping from ``path``.

    Raises
    ------
    ConfigError
        If the file is missing, is not valid YAML or is not a mapping.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
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
    found = data.get("kind")
    if found not in CONFIG_KINDS:
        raise ConfigError(
            f"{path}: top-level key 'kind' must be one of {sorted(CONFIG_KINDS)} (found: {found!r})"
        )
    if kind is not None and found != kind:
        raise ConfigError(f"{path}: expected a {kind!r} config (found kind: {found!r})")
    try:
        return CONFIG_KINDS[found].model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc)) from None


def dump_config(config: BaseModel) -> str:
    """Render a validated config as YAML, defaults included."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
