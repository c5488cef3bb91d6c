"""Files shipped with ictal: the default daemon config, the demo checkpoint, the systemd unit, and the
default place of the alarm journal.

The files are package data (``ictal.configs``, ``ictal.checkpoints``, ``ictal.systemd``; see
pyproject.toml). In a checkout installed with ``pip install -e .`` they are the checkout's own
``configs/``, ``checkpoints/`` and ``systemd/`` folders; from a wheel they lie inside the installed
``ictal`` package. Either way :mod:`importlib.resources` finds them, so ``ictal serve`` and
``ictal.demo_checkpoint()`` work without a checkout and from any working directory.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEMO_CHECKPOINT_NAME = "checkpoints/demo"
"""How configs and command lines name the shipped demo checkpoint (a path relative to the checkout)."""


def _package_path(package: str, *parts: str) -> Path:
    """The file system path of a package-data file; raises FileNotFoundError naming it when absent."""
    try:
        base = resources.files(package)
    except ModuleNotFoundError as exc:  # a partial install without the data package
        raise FileNotFoundError(f"ictal's package data {package!r} is not installed ({exc}); reinstall ictal") from exc
    target = base.joinpath(*parts)
    path = Path(str(target))
    if not path.exists():
        raise FileNotFoundError(f"{'/'.join(parts)} is missing from ictal's package data {package!r} (looked in "
                                f"{path.parent}); reinstall ictal")
    return path


def demo_checkpoint() -> Path:
    """Directory of the shipped demo checkpoint (``model.safetensors``, ``metadata.json``, ``MODEL_CARD.md``).

    Returns
    -------
    Path
        The checkout's ``checkpoints/demo`` (editable install) or the installed package's copy.

    Raises
    ------
    FileNotFoundError
        The package data is missing (a broken install); the message names where it looked.
    """
    return _package_path("ictal.checkpoints", "demo")


def default_daemon_config() -> Path:
    """The daemon config ``ictal serve``, ``ictal doctor`` and ``ictal demo`` use without ``--config``.

    Raises
    ------
    FileNotFoundError
        The package data is missing (a broken install).
    """
    return _package_path("ictal.configs", "daemon.yaml")


def model_preset(name: str) -> Path:
    """A shipped model preset (``configs/model/NAME.yaml``: tiny_bimamba2, full_gated_deltanet, ...).

    Raises
    ------
    FileNotFoundError
        No preset of that name is installed.
    """
    return _package_path("ictal.configs", "model", f"{name}.yaml")


def systemd_unit() -> Path:
    """The systemd unit file ``ictal.service`` (install steps: systemd/README.md beside it).

    Raises
    ------
    FileNotFoundError
        The package data is missing (a broken install).
    """
    return _package_path("ictal.systemd", "ictal.service")


def resolve_checkpoint(path: Path) -> Path:
    """Where a configured checkpoint directory is: ``path`` itself, except the demo's default name.

    A relative ``checkpoints/demo`` (the default of ``detector.checkpoint`` and of the shipped config)
    that does not exist under the working directory names the demo checkpoint installed with ictal:
    a daemon started outside a checkout then serves the same model. Any other path is returned as
    given (a missing one fails where it is loaded, with its name).

    Parameters
    ----------
    path : Path
        The configured checkpoint directory.

    Returns
    -------
    Path
        The directory to load.
    """
    path = Path(path)
    if not path.is_absolute() and path == Path(DEMO_CHECKPOINT_NAME) and not path.exists():
        return demo_checkpoint()
    return path
