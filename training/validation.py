"""Dev-split evaluation during training: the score that picks the best checkpoint.

Each dev recording of the cache is cut into consecutive windows of ``n_times`` samples (the last one
aligned to the recording's end), each normalised with ``Frontend.prepare_window`` as the daemon does,
and scored by the model; the per-sample probabilities are stitched in order. With
``normalisation: running`` a window is the slice of the recording's per-sample normalised stream, the
statistics started at the recording's first sample as the daemon starts them at a bed's connection
(:func:`normalised_stream`). A causal model is read as window mode reads it (the newest hop of each
window, lookahead 0); stream mode gives the same probability at the newest hop of a full window to
float rounding, and differs only in the state it carries from before the window. Unrated (unknown) time
is taken out of scoring: its probability is set to 0 so no event can start there, and FA/24h is
counted over labelled hours only.

The probabilities then go through the daemon's alarm post-processor
(:func:`ictal.alarms.postprocess.detect_events`) for a sweep of ``tau_on`` (the other rules from the
config's thresholds, ``tau_off`` capped at ``tau_on``); each sweep point is scored with NEDC OVERLAP
(:mod:`ictal.training.scoring.nedc_overlap`: sensitivity = detected reference seizures / reference
seizures, false alarms = detected events overlapping no reference seizure), and the figure is the
sensitivity at the target FA/24h (:func:`ictal.training.scoring.metrics.sensitivity_at_fa`).

This is a quick model-selection figure, not the evaluation of record: ``ictal evaluate`` runs the
daemon's own causal window scheduler (hop-wise stitching) over the recordings.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ictal.alarms.config import AlarmThresholds
from ictal.training.cache import Cache, CacheEntry
from ictal.training.datasets.base import UNKNOWN
from ictal.training.datasets.labels import seizure_events

TAU_ON_SWEEP: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98)
"""Onset thresholds tried on dev; the operating point is the most sensitive within the FA budget."""


@dataclass
class DevResult:
    """Dev figures after an epoch.

    Attributes
    ----------
    loss : float
        Training loss over labelled dev samples (NaN when there is none).
    sensitivity : float or None
        OVERLAP sensitivity (fraction) at the target FA/24h; None when dev holds no seizure or no
        sweep point is within the FA budget.
    fa_per_24h : float or None
        False alarms per 24 h of labelled dev EEG at that point.
    tau_on : float or None
        Onset threshold of that point.
    n_seizures : int
        Reference seizures in the scored dev recordings.
    labelled_hours : float
        Hours of labelled dev EEG scored.
    points : list of (tau_on, sensitivity, fa_per_24h)
        The whole sweep.
    """

    loss: float
    sensitivity: float | None
    fa_per_24h: float | None
    tau_on: float | None
    n_seizures: int
    labelled_hours: float
    points: list[tuple[float, float, float]] = field(default_factory=list)

    def score(self) -> tuple[float, float]:
        """Ordering key for "best": higher sensitivity first, then lower dev loss."""
        sens = -1.0 if self.sensitivity is None else self.sensitivity
        loss = -self.loss if math.isfinite(self.loss) else -math.inf
        return (sens, loss)


UNSERVED_LOGIT: float = -30.0
"""Logit given to samples no served span covers (before the first one of a recording): p ~ 1e-13,
so no alarm can start there; their labels are masked as unknown in :func:`evaluate_dev`."""


def normalised_stream(frontend, signal: np.ndarray) -> np.ndarray | None:
    """The per-sample normalised stream of a recording under ``normalisation: running``, else None.

    Parameters
    ----------
    frontend : detector.frontend.Frontend
        Its config says the normalisation.
    signal : ndarray of float32, shape (19, n)
        Front-end output in uV at 256 Hz, the recording from its first sample.

    Returns
    -------
    z : ndarray of float32, shape (19, n), or None
        ``RunningNormaliser.normalise_causal`` of the whole recording with statistics started at its
        first sample (a window ending at ``end`` is ``z[:, end - n_times:end]``, what
        ``Frontend.prepare_window(window, end)`` gives after the front-end processed the recording);
        None for ``window_robust`` (a pure function of each window).
    """
    if frontend.running is None:
        return None
    from ictal.detector.normalise import RunningNormaliser

    config = frontend.config
    normaliser = RunningNormaliser(config.running_tau_s, float(config.fs_hz), signal.shape[0], config.clip_sigma,
                                   keep_s=None)
    normaliser.update(signal)
    return normaliser.normalise_causal(signal, 0)


@torch.no_grad()
def predict_served_logits(model: torch.nn.Module, signal: np.ndarray, window_samples: int, frontend,
                          device: torch.device, hop_samples: int, lookahead_samples: int,
                          min_history_samples: int, batch_size: int = 8,
                          autocast: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample logits of a cached recording read where the daemon reads them.

    Windows end every ``hop_samples`` from ``min_history_samples`` on (windows shorter than
    ``window_samples`` of history are left-padded as the daemon's warm-up windows: the real samples
    normalised alone, zeros on the left), and each yields its served span only
    (``detector.output_position.served_span``).

    Parameters
    ----------
    model : torch.nn.Module
        Maps (B, 19, window_samples) normalised windows to logits (B, window_samples).
    signal : ndarray of float32, shape (19, n)
        Front-end output in uV at 256 Hz (from the cache).
    window_samples : int
    frontend : detector.frontend.Frontend
        Supplies ``prepare_window``.
    device : torch.device
    hop_samples, lookahead_samples, min_history_samples : int
        The served positions (``training.config.ServingConfig``) in samples.
    batch_size : int
    autocast : bool

    Returns
    -------
    logits : ndarray of float32, shape (n,)
        Per-sample logits; :data:`UNSERVED_LOGIT` where no span reaches.
    served : ndarray of bool, shape (n,)
        True where a span gave the logit.

    Notes
    -----
    The window ends lie on one grid from the recording's start (``min_history + k * hop``), where the
    daemon switches from its warm-up grid to the full-window grid at 60 s; the two coincide when
    ``60 s - min_history`` is a multiple of the hop (the served positions are the same either way).
    """
    from ictal.detector.output_position import served_span

    n = signal.shape[1]
    out = np.full(n, UNSERVED_LOGIT, dtype=np.float32)
    served = np.zeros(n, dtype=bool)
    ends = list(range(min(min_history_samples, n), n + 1, hop_samples)) if n else []
    stream = normalised_stream(frontend, signal)
    for b in range(0, len(ends), batch_size):
        batch_ends = ends[b:b + batch_size]
        windows = []
        for end in batch_ends:
            start = end - window_samples
            lo = max(start, 0)
            window = np.zeros((signal.shape[0], window_samples), dtype=np.float32)
            window[:, lo - start:] = (frontend.prepare_window(signal[:, lo:end]) if stream is None
                                      else stream[:, lo:end])
            windows.append(window)
        x = torch.from_numpy(np.stack(windows)).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            rows = model(x).float().cpu().numpy()
        for end, row in zip(batch_ends, rows, strict=True):
            lo, hi = served_span(end, hop_samples, lookahead_samples, window_samples)
            lo = max(lo, 0, end - window_samples)
            if hi > lo:
                out[lo:hi] = row[lo - (end - window_samples):hi - (end - window_samples)]
                served[lo:hi] = True
    return out, served


@torch.no_grad()
def predict_logits(model: torch.nn.Module, signal: np.ndarray, window_samples: int, frontend,
                      device: torch.device, batch_size: int = 8, autocast: bool = False) -> np.ndarray:
    """Per-sample seizure logits of a whole cached recording.

    Parameters
    ----------
    model : torch.nn.Module
        Maps (B, 19, window_samples) normalised windows to logits (B, window_samples).
    signal : ndarray of float32, shape (19, n)
        Front-end output in uV at 256 Hz (from the cache).
    window_samples : int
        Window length in samples.
    frontend : detector.frontend.Frontend
        Supplies ``prepare_window``.
    device : torch.device
    batch_size : int
        Windows per forward pass.
    autocast : bool
        bf16 autocast (CUDA).

    Returns
    -------
    logits : ndarray of float32, shape (n,)
        Per-sample logits (probability = sigmoid(logit)); windows are consecutive, the last one ends at
        the recording's end and only its samples not already scored are used; a recording shorter
        than a window is padded at its head with zeros.
    """
    n = signal.shape[1]
    starts = list(range(0, max(n - window_samples, 0) + 1, window_samples))
    if n > window_samples and starts[-1] + window_samples < n:
        starts.append(n - window_samples)
    if n < window_samples:
        starts = [n - window_samples]
    out = np.zeros(n, dtype=np.float32)
    stream = normalised_stream(frontend, signal)
    for b in range(0, len(starts), batch_size):
        batch_starts = starts[b:b + batch_size]
        windows = []
        for start in batch_starts:
            window = np.zeros((signal.shape[0], window_samples), dtype=np.float32)
            lo = max(start, 0)
            if stream is None:
                window[:, lo - start:] = signal[:, lo:start + window_samples]
                windows.append(np.asarray(frontend.prepare_window(window), dtype=np.float32))
            else:
                window[:, lo - start:] = stream[:, lo:start + window_samples]
                windows.append(window)
        x = torch.from_numpy(np.stack(windows)).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(x)
        rows = logits.float().cpu().numpy()
        for start, row in zip(batch_starts, rows, strict=True):
            lo = max(start, 0)
            out[lo:start + window_samples] = row[lo - start:]
    return out


def sweep_operating_points(
    recordings: list[tuple[np.ndarray, np.ndarray]], fs: float, thresholds: AlarmThresholds,
    taus: tuple[float, ...] = TAU_ON_SWEEP,
) -> tuple[list[tuple[float, float, float]], int, float]:
    """OVERLAP sensitivity and FA/24h of the alarm post-processor for a sweep of ``tau_on``.

    Parameters
    ----------
    recordings : list of (probs, labels)
        ``probs`` float of shape (n,) in [0, 1] and ``labels`` int8 of shape (n,) (1, 0, -1) per
        recording, at ``fs`` Hz.
    fs : float
        Sampling rate in Hz.
    thresholds : AlarmThresholds
        Rules of the post-processor; ``tau_on`` is replaced by each swept value and ``tau_off`` capped.
    taus : tuple of float
        Onset thresholds.

    Returns
    -------
    points : list of (tau_on, sensitivity, fa_per_24h)
        Sensitivity as a fraction (0 when there is no reference seizure).
    n_seizures : int
        Reference seizures.
    labelled_s : float
        Seconds of labelled EEG (the FA/24h denominator).
    """
    from ictal.alarms.postprocess import detect_events
    from ictal.training.scoring.annotations import Annotation, Event
    from ictal.training.scoring.nedc_overlap import score_file

    prepared = []
    labelled_s = 0.0
    n_seizures = 0
    for probs, labels in recordings:
        probs = np.where(labels == UNKNOWN, 0.0, probs)
        ref_events = [Event(on, off, "seiz") for on, off in seizure_events(labels, fs)]
        n_seizures += len(ref_events)
        labelled_s += float(np.count_nonzero(labels != UNKNOWN)) / fs
        prepared.append((probs, Annotation(len(labels) / fs, ref_events)))
    points = []
    for tau in taus:
        rules = thresholds.model_copy(update={"tau_on": tau, "tau_off": min(thresholds.tau_off, tau)})
        hits = targets = false_alarms = 0.0
        for probs, ref in prepared:
            hyp_events = [Event(e.onset_s, min(e.offset_s, ref.duration_s), "seiz")
                          for e in detect_events(probs, fs, rules) if e.offset_s > e.onset_s]
            counts = score_file(ref, Annotation(ref.duration_s, hyp_events))["seiz"]
            hits += counts.hits
            targets += counts.targets
            false_alarms += counts.false_alarms
        sensitivity = hits / targets if targets else 0.0
        fa_per_24h = false_alarms / labelled_s * 86400 if labelled_s > 0 else 0.0
        points.append((tau, sensitivity, fa_per_24h))
    return points, n_seizures, labelled_s


def evaluate_dev(
    model: torch.nn.Module,
    cache: Cache,
    entries: list[CacheEntry],
    frontend_config,
    window_samples: int,
    thresholds: AlarmThresholds,
    target_fa_per_24h: float,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    device: torch.device,
    batch_size: int = 8,
    autocast: bool = False,
    serving=None,
) -> DevResult:
    """Score the dev recordings (see the module docstring for the method).

    Parameters
    ----------
    model : torch.nn.Module
        The (unwrapped) detector; put in eval mode for the duration and restored after.
    cache : Cache
    entries : list of CacheEntry
        The dev recordings to score.
    frontend_config : FrontendConfig
    window_samples : int
    thresholds : AlarmThresholds
    target_fa_per_24h : float
        False-alarm budget per 24 h.
    loss_fn : callable
        ``loss(logits (1, n), labels (1, n)) -> scalar``; evaluated on the stitched logits.
    device : torch.device
    batch_size : int
    autocast : bool
    serving : training.config.ServingConfig, optional
        With ``loss_positions: served``, recordings are scored where the daemon reads the model
        (:func:`predict_served_logits`) and samples no span reaches are left out of loss and sweep;
        otherwise by consecutive whole windows (:func:`predict_logits`).

    Returns
    -------
    result : DevResult
    """
    from ictal.detector.frontend import Frontend
    from ictal.training.scoring.metrics import sensitivity_at_fa

    frontend = Frontend(frontend_config, float(frontend_config.fs_hz))
    fs = float(frontend_config.fs_hz)
    was_training = model.training
    model.eval()
    recordings = []
    loss_sum = 0.0
    loss_weight = 0
    try:
        for entry in entries:
            signal = np.asarray(cache.signal(entry))
            labels = np.asarray(cache.labels(entry))
            if serving is not None and serving.loss_positions == "served":
                from ictal.detector.output_position import seconds_to_samples

                logits, served = predict_served_logits(
                    model, signal, window_samples, frontend, device,
                    seconds_to_samples(serving.hop_s, "serving.hop_s"),
                    seconds_to_samples(serving.lookahead_s, "serving.lookahead_s"),
                    int(round(serving.min_history_s * fs)), batch_size, autocast)
                labels = np.where(served, labels, UNKNOWN).astype(labels.dtype)
            else:
                logits = predict_logits(model, signal, window_samples, frontend, device, batch_size, autocast)
            known = int(np.count_nonzero(labels != UNKNOWN))
            if known:
                loss = loss_fn(torch.from_numpy(logits)[None], torch.from_numpy(labels.astype(np.int64))[None])
                loss_sum += float(loss) * known
                loss_weight += known
            recordings.append((torch.sigmoid(torch.from_numpy(logits)).numpy(), labels))
    finally:
        model.train(was_training)
    points, n_seizures, labelled_s = sweep_operating_points(recordings, fs, thresholds)
    loss = loss_sum / loss_weight if loss_weight else float("nan")
    sweep = {t: (s, f) for t, s, f in points}
    best = sensitivity_at_fa(sweep, target_fa_per_24h) if n_seizures else None
    return DevResult(
        loss=loss, sensitivity=None if best is None else best.sensitivity,
        fa_per_24h=None if best is None else best.fa_per_24h, tau_on=None if best is None else best.threshold,
        n_seizures=n_seizures, labelled_hours=labelled_s / 3600, points=points,
    )
