"""The notebook API: load a detector, score one recording, evaluate a dataset.

``import ictal`` exposes (lazily, nothing heavy is imported until a function is called):

- :func:`load_detector` -- a checkpoint loaded as the daemon loads it (``Detector.from_checkpoint``);
- :func:`predict_file` -- one EDF file (or an ``mne.io.Raw``) scored through the daemon's per-bed path,
  returned as a :class:`Prediction` (times, probabilities, alarm events, signal-quality events);
- :func:`evaluate` -- ``ictal evaluate`` as a function (:func:`ictal.training.evaluate.evaluate`), returning
  the report as a dict;
- :func:`demo_checkpoint` -- where the shipped demo checkpoint lies.

One path, the daemon's
----------------------
:func:`predict_file` runs the recording through :func:`ictal.streaming.bed.run_recording` with the
arguments ``ictal evaluate`` gives it (:class:`ictal.training.evaluate.DaemonPathRunner`): chunks of the
file in order -> front-end in streaming chunks -> ring buffer -> a window every ``hop_s`` -> model ->
causal stitching at the checkpoint's output position (``lookahead_s``) -> alarm post-processor. The
mode is the daemon's ``detector.mode`` (``window`` or ``stream``), by default the checkpoint's natural
one (``stream`` for a causal checkpoint, else ``window``: :func:`ictal.training.evaluate.natural_mode`). So
the probabilities and events returned are those ``ictal serve`` would have produced replaying the file,
and those ``ictal evaluate`` stores for it. Nothing of that path is re-implemented here.

The thresholds, when not given, follow the daemon's precedence (:mod:`ictal.alarms.thresholds`): the
checkpoint's tuned thresholds, else the defaults of :class:`ictal.alarms.config.AlarmThresholds`.

Times
-----
``Prediction.times_s[i]`` is ``i / 256`` s from the first sample of the recording;
``Prediction.probabilities[i]`` is the stitched probability of that sample, NaN before the first scored
window (the first ``min_history_s - hop_s - lookahead_s`` seconds) and wherever no window scored it.
Event times (``onset_s``, ``offset_s``, ``raised_s``) are on the same clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CHECKPOINT_FILES = ("metadata.json", "model.safetensors")
"""The files that make a folder a checkpoint (:mod:`ictal.detector.checkpoint`)."""


class DemoCheckpointMissing(FileNotFoundError):
    """Neither the packaged nor the checkout's demo checkpoint exists (the message names both places)."""


def _is_checkpoint(folder: Path) -> bool:
    return folder.is_dir() and all((folder / name).is_file() for name in CHECKPOINT_FILES)


def demo_checkpoint() -> Path:
    """The folder of the shipped demo checkpoint.

    It is package data (:func:`ictal.resources.demo_checkpoint`): the checkout's ``checkpoints/demo`` in
    an editable install, the copy inside the installed ``ictal`` package from a wheel.

    Returns
    -------
    path : Path
        A folder holding ``metadata.json`` and ``model.safetensors``.

    Raises
    ------
    DemoCheckpointMissing
        A ``FileNotFoundError`` naming the folder, when the install lacks it or its files.

    Notes
    -----
    The demo checkpoint is a tiny model trained in minutes on the CPU on public data; it shows the
    pipeline working and is not a clinical detector (see its ``MODEL_CARD.md``).
    """
    from ictal import resources

    try:
        folder = resources.demo_checkpoint()
    except FileNotFoundError as exc:
        raise DemoCheckpointMissing(f"demo checkpoint not found: {exc}") from exc
    if not _is_checkpoint(folder):
        raise DemoCheckpointMissing(
            f"demo checkpoint {folder} does not hold {' and '.join(CHECKPOINT_FILES)}; reinstall ictal, or pass "
            "the path of a checkpoint")
    return folder


def _thresholds_of(value: Any, where: str):
    """``value`` (None, an ``AlarmThresholds`` or a mapping of its fields) as ``AlarmThresholds`` or None.

    Raises
    ------
    alarms.thresholds.ThresholdsError
        If ``value`` is a mapping that does not validate (names ``where`` and pydantic's reasons), or
        another type.
    """
    from pydantic import ValidationError

    from ictal.alarms.config import AlarmThresholds
    from ictal.alarms.thresholds import ThresholdsError

    if value is None or isinstance(value, AlarmThresholds):
        return value
    if isinstance(value, dict):
        try:
            return AlarmThresholds.model_validate(value)
        except ValidationError as exc:
            raise ThresholdsError(f"{where}: thresholds {value} are not valid AlarmThresholds: {exc}") from exc
    raise ThresholdsError(
        f"{where}: thresholds of type {type(value).__name__} ({str(value)[:60]!r}); expected AlarmThresholds, "
        "a dict of its fields, or None"
    )


def load_detector(checkpoint: Path | str, *, device: str = "auto", backend: str = "auto", max_batch: int = 32):
    """Load a checkpoint once, as the daemon does.

    Parameters
    ----------
    checkpoint : path
        Checkpoint folder (``model.safetensors`` + ``metadata.json``), e.g. :func:`demo_checkpoint`.
    device : str, default "auto"
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
    backend : {"auto", "fused", "reference"}
        Stack backend; ``auto`` takes the fused kernels on CUDA when installed.
    max_batch : int, default 32
        Most windows per forward pass.

    Returns
    -------
    detector : detector.inference.Detector
        Pass it to :func:`predict_file` to score several files without loading it again. Its
        ``thresholds`` (the checkpoint's tuned thresholds) is an ``alarms.config.AlarmThresholds`` or
        None.

    Raises
    ------
    detector.checkpoint.CheckpointError
        If the checkpoint is missing, corrupt or inconsistent (a ``ValueError``).
    alarms.thresholds.ThresholdsError
        If its stored thresholds are not valid ``AlarmThresholds``.
    ValueError
        If CUDA is asked for and absent.
    """
    from ictal.detector.inference import Detector

    detector = Detector.from_checkpoint(Path(checkpoint), device=device, backend=backend, max_batch=max_batch)
    # one thresholds type everywhere: a Detector that still holds the metadata's dict gets the model
    detector.thresholds = _thresholds_of(detector.thresholds, f"{Path(checkpoint) / 'metadata.json'}")
    return detector


@dataclass
class Prediction:
    """One recording scored through the daemon's path (see the module docstring for the clock).

    Attributes
    ----------
    times_s : ndarray of float64, shape (n,)
        Seconds from the recording's first sample of each probability: ``i / rate_hz``.
    probabilities : ndarray of float32, shape (n,)
        Stitched seizure probability per sample at ``rate_hz``; NaN where no window scored the sample.
    usable : ndarray of bool, shape (n,)
        True where the probability reached the alarm post-processor; False where the input was judged
        unusable (alarms suppressed) or no probability exists.
    events : list of training.evaluate_metrics.DaemonEvent
        The alarms raised, one per offset: ``onset_s``, ``offset_s`` (s), ``peak`` and ``mean``
        probability, ``raised_s`` (stream time of the onset alarm), ``end_reason``, ``window_end_s``
        (when the onset alarm leaves the daemon).
    quality_events : list of alarms.schema.AlarmEvent
        ``signal_quality`` events (input unusable / usable again, gaps) in order, as published.
    source : str
        The file scored (or the ``mne.io.Raw``'s file name).
    duration_s : float
        Length of the recording (s).
    rate_hz : int
        Rate of ``probabilities`` (256 Hz).
    checkpoint_id : str
        The detector's ``model_id``.
    mode : {"window", "stream"}
        The daemon mode it ran in.
    hop_s, min_history_s, lookahead_s : float
        Seconds between scored windows, history before the first window, output position.
    thresholds : alarms.config.AlarmThresholds
        The post-processor rules of the run.
    thresholds_source : str
        Where they came from (``checkpoint``, ``config`` = the defaults, ``file <path>``, ``argument``).
    held_samples : int
        Input samples appended by holding the last one (``training.evaluate.complete_short_recording``;
        non-zero only for a clip that falls a fraction of a sample short of its first window).
    """

    times_s: np.ndarray
    probabilities: np.ndarray
    usable: np.ndarray
    events: list
    quality_events: list
    source: str
    duration_s: float
    rate_hz: int
    checkpoint_id: str
    mode: str
    hop_s: float
    min_history_s: float
    lookahead_s: float
    thresholds: Any
    thresholds_source: str
    held_samples: int = 0

    def to_dataframe(self):
        """The per-sample arrays as a pandas DataFrame (needs pandas, which ictal does not depend on).

        Returns
        -------
        frame : pandas.DataFrame
            Columns ``time_s``, ``probability``, ``usable``; one row per sample (n rows).

        Raises
        ------
        ImportError
            If pandas is not installed (the message says how to install it).
        """
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError(
                f"Prediction.to_dataframe needs pandas, which is not installed ({exc}); "
                "`pip install pandas`, or use the numpy arrays times_s / probabilities / usable"
            ) from exc
        return pd.DataFrame({"time_s": self.times_s, "probability": self.probabilities, "usable": self.usable})

    def summary(self) -> str:
        """One line: source, duration, scored span, peak probability, number of events."""
        finite = np.isfinite(self.probabilities)
        peak = float(np.nanmax(self.probabilities)) if finite.any() else math.nan
        return (f"{self.source}: {self.duration_s:.1f} s, {finite.sum() / self.rate_hz:.1f} s scored ({self.mode} mode, "
                f"hop {self.hop_s:g} s), peak p {peak:.3f}, {len(self.events)} events, "
                f"{len(self.quality_events)} quality events, thresholds from {self.thresholds_source}")


def _resolve_thresholds(thresholds: Any, detector: Any):
    """The run's thresholds and their source, by the daemon's precedence when not given."""
    from ictal.alarms.config import AlarmsConfig
    from ictal.alarms.thresholds import thresholds_in_force

    model_id = getattr(detector, "model_id", None)
    if isinstance(thresholds, (str, Path)):  # a thresholds file, refused when tuned for another checkpoint
        chosen, source = thresholds_in_force(AlarmsConfig(thresholds_file=Path(thresholds)), None, model_id)
        return chosen, str(source)
    if thresholds is not None:
        return _thresholds_of(thresholds, "predict_file(thresholds=...)"), "argument"
    stored = _thresholds_of(getattr(detector, "thresholds", None), f"checkpoint {model_id}")
    chosen, source = thresholds_in_force(AlarmsConfig(), None if stored is None else stored.model_dump(), model_id)
    return chosen, str(source)


def _is_raw(source: Any) -> bool:
    """Whether ``source`` looks like an ``mne.io.Raw`` (``ch_names``, ``info["sfreq"]``, ``get_data()``)."""
    return all(hasattr(source, name) for name in ("ch_names", "info", "get_data"))


def raw_to_canonical(raw: Any, frontend_config: Any = None):
    """An ``mne.io.Raw`` as the canonical 19-channel recording the daemon reads from an EDF.

    Parameters
    ----------
    raw : mne.io.Raw
        Any labelling ``detector.montage.map_montage`` accepts (``EEG FP1-REF``, ``Fp1``, ...); EEG in
        volts (MNE's unit); other channels are ignored as in an EDF.
    frontend_config : FrontendConfig, optional
        Supplies ``repair_missing``; default ``FrontendConfig()``.

    Returns
    -------
    recording : streaming.edf.CanonicalRecording
        ``data`` float32 of shape (19, n_samples) in microvolts at ``raw.info["sfreq"]`` Hz.

    Raises
    ------
    detector.montage.MontageError
        If channels are missing or the montage is bipolar (every missing channel named).
    ValueError
        If the sampling rate is not a positive finite number or a mapped sample is not finite.
    """
    from ictal.detector.config import FrontendConfig
    from ictal.detector.montage import map_montage
    from ictal.streaming.edf import CanonicalRecording

    config = frontend_config or FrontendConfig()
    filenames = [f for f in (getattr(raw, "filenames", None) or ()) if f is not None]
    name = str(filenames[0]) if filenames else "<mne.io.Raw>"
    fs = float(raw.info["sfreq"])
    if not (math.isfinite(fs) and fs > 0):
        raise ValueError(f"{name}: sampling rate {fs!r} Hz; expected a positive finite rate")
    montage = map_montage(list(raw.ch_names), source=name, repair_missing=config.repair_missing)
    used = sorted({i for i in montage.indices if i >= 0})
    volts = np.asarray(raw.get_data(picks=[raw.ch_names[i] for i in used]), dtype=np.float64)
    stacked = np.zeros((len(raw.ch_names), volts.shape[1]), dtype=np.float32)
    stacked[used] = volts * 1e6  # MNE holds EEG in volts; the detector reads microvolts
    if not np.isfinite(stacked[used]).all():
        bad = [raw.ch_names[i] for i in used if not np.isfinite(stacked[i]).all()]
        raise ValueError(f"{name}: channels {bad} hold non-finite samples in microvolts; expected finite EEG")
    annotations = []
    for ann in getattr(raw, "annotations", None) or ():
        annotations.append((float(ann["onset"]), float(ann["duration"]), str(ann["description"])))
    return CanonicalRecording(data=montage.apply(stacked), fs=fs, annotations=annotations, montage=montage,
                              path=Path(name))


def predict_file(source: Any, checkpoint: Any, *, thresholds: Any = None, hop_s: float | None = None,
                 min_history_s: float | None = None, mode: str | None = None, device: str = "auto",
                 backend: str = "auto") -> Prediction:
    """Score one recording through the daemon's per-bed path (module docstring).

    Parameters
    ----------
    source : path or mne.io.Raw
        An EDF/EDF+ file the daemon accepts (19 referential 10-20 channels under any labelling
        ``detector.montage.map_montage`` knows; read block by block, so any length fits in memory), or
        an ``mne.io.Raw`` (``pip install ictal[mne]``; its EEG is read whole, in volts).
    checkpoint : path or Detector
        A checkpoint folder (loaded with :func:`load_detector`), or a detector already loaded by it
        (to score several files without loading it again).
    thresholds : AlarmThresholds, dict, path or None
        Post-processor rules: an ``AlarmThresholds``, a dict of its fields, a thresholds file written
        by ``ictal tune`` (refused when tuned for another checkpoint), or None for the daemon's
        precedence (the checkpoint's tuned thresholds, else the defaults).
    hop_s : float, optional
        Seconds between scored windows; default the daemon's (``SchedulerConfig().hop_s``).
    min_history_s : float, optional
        Signal before the first (left-padded) window; default the daemon's (``SchedulerConfig()``).
    mode : {"window", "stream"}, optional
        The daemon's ``detector.mode``; default the checkpoint's natural mode (``stream`` for a causal
        checkpoint, else ``window``).
    device, backend : str
        As :func:`load_detector` (used only when ``checkpoint`` is a path).

    Returns
    -------
    prediction : Prediction
        ``times_s`` and ``probabilities`` of shape (n,) with n = the recording's length at 256 Hz.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    detector.montage.MontageError
        If the recording lacks canonical channels (each one named) or is bipolar.
    streaming.edf.EdfFormatError
        If the EDF breaks a rule the daemon enforces (a ``ValueError`` naming the field and values).
    alarms.thresholds.ThresholdsError
        If the thresholds do not validate or a thresholds file was tuned for another checkpoint.
    ValueError
        If ``mode`` is neither ``window`` nor ``stream``, or ``stream`` is asked of a bidirectional
        checkpoint.
    TypeError
        If ``source`` is neither a path nor an ``mne.io.Raw``.

    Examples
    --------
    >>> import ictal
    >>> pred = ictal.predict_file("record.edf", checkpoint=ictal.demo_checkpoint())  # doctest: +SKIP
    >>> pred.times_s.shape == pred.probabilities.shape                              # doctest: +SKIP
    True
    """
    from ictal.streaming.config import SchedulerConfig
    from ictal.training.evaluate import DaemonPathRunner

    if not isinstance(source, (str, Path)) and not _is_raw(source):
        raise TypeError(f"predict_file: source of type {type(source).__name__}; expected a path to an EDF file "
                        "or an mne.io.Raw")
    detector = load_detector(checkpoint, device=device, backend=backend) if isinstance(checkpoint, (str, Path)) \
        else checkpoint
    chosen, th_source = _resolve_thresholds(thresholds, detector)
    scheduler = SchedulerConfig()
    hop_s = scheduler.hop_s if hop_s is None else float(hop_s)
    runner = DaemonPathRunner(detector, detector.frontend_config, chosen, hop_s,
                              scheduler.min_history_s if min_history_s is None else float(min_history_s), mode)
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"EDF file {path} does not exist")
        run, duration_s, name = _run_file(runner, path), None, str(path)
    else:
        recording = raw_to_canonical(source, detector.frontend_config)
        run, name = _run_canonical(runner, recording), str(recording.path)
        duration_s = recording.duration_s
    probs = np.asarray(run.probs, dtype=np.float32)
    rate = 256
    usable = np.isfinite(probs) if run.usable is None else np.asarray(run.usable, dtype=bool)
    return Prediction(
        times_s=np.arange(probs.size, dtype=np.float64) / rate, probabilities=probs, usable=usable,
        events=list(run.events), quality_events=list(run.quality_events), source=name,
        duration_s=float(probs.size / rate if duration_s is None else duration_s), rate_hz=rate,
        checkpoint_id=str(getattr(detector, "model_id", "")), mode=runner.mode, hop_s=hop_s,
        min_history_s=runner.min_history_s, lookahead_s=runner.lookahead_s, thresholds=chosen,
        thresholds_source=th_source, held_samples=int(run.held_samples),
    )


def _run_file(runner: Any, path: Path):
    """``ictal evaluate``'s run of one file (:class:`ictal.training.evaluate.DaemonPathRunner`)."""
    from ictal.training.datasets import Recording

    return runner(Recording(recording_id=path.stem, path=path, patient="", split=None, annotations=[]))


def _run_canonical(runner: Any, recording: Any):
    """The run :class:`ictal.training.evaluate.DaemonPathRunner` makes of a file, for a recording in memory.

    The same call of :func:`ictal.streaming.bed.run_recording` (same history, output position, mode, and the
    same held last sample for a clip just short of its first window), given the loaded recording.
    """
    from ictal.detector import FS_HZ
    from ictal.streaming.bed import run_recording
    from ictal.training.evaluate import RunOutput, complete_short_recording, detected_events

    duration_s = recording.duration_s
    recording, held = complete_short_recording(recording, runner.min_history_s)
    result = run_recording(recording, runner.scorer, runner.frontend_config, runner.thresholds, runner.hop_s,
                           min_history_s=runner.min_history_s, lookahead_s=runner.lookahead_s,
                           from_start_samples=int(round(duration_s * FS_HZ)), mode=runner.mode)
    return RunOutput(result.probabilities, detected_events(result.events), list(result.quality_events),
                     result.usable, held_samples=held)


def evaluate(checkpoint: Path | str, data: Path | str, out_dir: Path | str | None = None, **options: Any) -> dict:
    """``ictal evaluate`` as a function: score a dataset through the daemon path and return the report.

    Parameters
    ----------
    checkpoint : path
        Checkpoint folder.
    data : path
        Dataset folder (layout guessed: ``tusz``, ``edf_folder`` or ``rated_windows``).
    out_dir : path, optional
        Where the probabilities, csv_bi files, ``report.json``/``report.md`` and plots go; default a
        new temporary folder (kept; its path is ``report["meta"]["out_dir"]``).
    **options
        Passed as they are to :func:`ictal.training.evaluate.evaluate` (``hop_s``, ``thresholds_file``,
        ``min_history_s``, ``data_format``, ``include``, ``split``, ``device``, ``backend``, ``plots``,
        ``progress``, ``warn``, ``mode``, ...: its signature is the reference).

    Returns
    -------
    report : dict
        The ``report.json`` layout (``meta``, ``scores``, ``sample_level``, ``sensitivity_at_fa``,
        ``sweep``, ``latency``, ``background_only``, ``recordings``, ...).

    Raises
    ------
    training.evaluate.EvaluationError
        As :func:`ictal.training.evaluate.evaluate` (nothing to evaluate, nothing scored, unreadable metadata).
    """
    import tempfile

    from ictal.training.evaluate import evaluate as run_evaluation

    if out_dir is None:
        out_dir = tempfile.mkdtemp(prefix="ictal-evaluate-")
    report = run_evaluation(checkpoint, data, out_dir, **options)
    return report.to_dict()
