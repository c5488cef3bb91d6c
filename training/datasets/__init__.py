"""Dataset layouts (TUSZ v2, EDF+ folders, rated windows) -> recording descriptors with patient splits.

``discover(data_config)`` is the entry point: it finds the recordings of the configured layout,
reports every skipped file with its reason, and makes sure each has a patient-level split.
"""

from __future__ import annotations

from ictal.training.config import DataConfig
from ictal.training.datasets.base import (
    BACKGROUND,
    SEIZURE,
    SPLITS,
    UNKNOWN,
    DatasetIndex,
    LabelSpan,
    Recording,
    Skipped,
)
from ictal.training.datasets.edf_folder import discover_edf_folder
from ictal.training.datasets.rated_windows import discover_rated_windows
from ictal.training.datasets.splits import assign_splits, check_patient_splits, hold_out
from ictal.training.datasets.tusz import discover_tusz


def discover(config: DataConfig) -> DatasetIndex:
    """Find the recordings of a dataset and give each a patient-level split.

    Parameters
    ----------
    config : DataConfig
        ``format`` picks the layout, ``root`` where it is; ``dev_fraction`` and ``split_seed`` draw
        the split of layouts that carry none (TUSZ carries its own); ``eval_recordings`` holds
        recordings out in split eval first (see :func:`ictal.training.datasets.splits.hold_out`).

    Returns
    -------
    index : DatasetIndex
        Recordings (each with split train/dev/eval) and skipped files with reasons.

    Raises
    ------
    FileNotFoundError
        If the root does not hold the layout.
    ValueError
        If a patient ends up on both sides of a split.
    """
    if config.format == "tusz":
        index = discover_tusz(config.root)
    elif config.format == "edf_folder":
        unannotated = "bckg" if config.unannotated == "background" else "unknown"
        index = discover_edf_folder(config.root, unannotated, config.patient_pattern)
    else:
        index = discover_rated_windows(config.root)
    hold_out(index.recordings, config.eval_recordings)
    assign_splits(index.recordings, config.dev_fraction, config.split_seed)
    check_patient_splits(index.recordings)
    return index


__all__ = [
    "BACKGROUND", "SEIZURE", "SPLITS", "UNKNOWN", "DatasetIndex", "LabelSpan", "Recording", "Skipped",
    "assign_splits", "check_patient_splits", "discover", "discover_edf_folder", "discover_rated_windows",
    "discover_tusz", "hold_out",
]
