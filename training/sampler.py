"""Balanced sampling of training windows from the cache.

A window is drawn in two steps: its class (seizure with probability ``seizure_fraction``, else
background), then an *anchor* sample of that class uniformly among every such sample of the split
(so long recordings and long seizures weigh in proportion to their length, or by recording, see
``anchor_weighting``). Unknown (unrated) samples are never anchors, and their labels stay -1 so the
loss ignores them. Where the window is placed depends on where the loss is taken:

- ``serving.loss_positions: served`` (:meth:`WindowSampler.draw_served`): the window ends so that the
  anchor lies at a uniform position of its served span ``[end - lookahead - hop, end - lookahead)``
  (``detector.output_position``), never past the recording's end and with at least ``min_history``
  of signal; a window that reaches before the recording's start is the daemon's left-padded warm-up
  window (only the real history is normalised; zeros on the left after normalisation). With
  probability ``warmup_fraction`` any window is cropped to a warm-up window of ``min_history`` to 60 s.
- ``window``: the anchor lies at a uniform position of the whole window, then the time-shift
  augmentation moves it (the first recipe; the loss covers every sample).
- ``served`` for a causal model (``model.direction: causal``): stream mode serves every sample, so the
  served positions are every sample from ``min_history - hop`` after the window's first real sample
  on (:func:`ictal.training.losses.causal_served_offsets`, the first probability of a stream); the window
  ends so that the anchor lies at a uniform offset of ``[min_history - hop, window)``, and labels
  before ``pad + min_history - hop`` are -1.

Normalisation ``running`` (:mod:`ictal.detector.normalise`): the daemon normalises each sample with the
running statistics of its stream before that sample's second, started at the bed's connection; a
window is a slice of that per-sample normalised stream. Training does the same with the recording as
the stream: the statistics start at the recording's first sample (:func:`recording_snapshots`, run
once per recording over its cached filtered signal and kept: 19 x 2 floats per second) and each
window is normalised with them (:func:`normalise_with_snapshots`, equal to
``Frontend.prepare_window(window, end_index)`` of a front-end that processed the recording). The
augmentations act on the statistics as they would on a whole recording: a gain ``g`` scales the
snapshots' mean and standard deviation by ``g``; additive white noise of standard deviation ``s``
adds ``s**2`` to their variance; a hemisphere flip permutes their channels. An injected simulated
seizure is NOT in the statistics (they are the recording's): with ``running_tau_s`` 300 s a 60 s
event would move the EMA by at most 18 %, so the model sees a seizure at the scale of the background
before it, as in the first minute of a real one. A warm-up window (cropped to a bed that connected
``history`` samples before its end) restarts the statistics at its first real sample, as the daemon
does at every connection: its first second is zeros.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ictal.detector.normalise import SNAPSHOT_SAMPLES
from ictal.training.cache import Cache, CacheEntry
from ictal.training.config import AugmentConfig
from ictal.training.datasets.base import BACKGROUND, SEIZURE, UNKNOWN
from ictal.training.datasets.labels import label_runs

RUNNING_CHUNK_SAMPLES = 600 * 256
"""Samples fed to the running normaliser per call over a cached recording (10 min: ~90 MB of float64
moments at a time, whatever the recording's length; chunking does not change the statistics)."""


def recording_snapshots(signal: np.ndarray, frontend_config) -> tuple[np.ndarray, np.ndarray]:
    """Running-normalisation statistics of a recording, started at its first sample.

    Parameters
    ----------
    signal : ndarray of float32, shape (n_channels, n_samples)
        The recording's filtered EEG in uV at 256 Hz (the cache's signal).
    frontend_config : FrontendConfig
        ``running_tau_s``, ``fs_hz`` and ``clip_sigma`` of the run.

    Returns
    -------
    mean, std : ndarray of float64, shape (n_seconds + 1, n_channels)
        Row ``k`` holds the statistics of samples ``< 256 k`` (the snapshot of
        ``detector.normalise.RunningNormaliser`` at sample ``256 k``), ``n_seconds = n_samples // 256``;
        row 0 (no statistics yet) is zeros and never used.
    """
    from ictal.detector.normalise import RunningNormaliser

    x = np.asarray(signal)
    normaliser = RunningNormaliser(frontend_config.running_tau_s, float(frontend_config.fs_hz), x.shape[0],
                                   frontend_config.clip_sigma, keep_s=None)
    for first in range(0, x.shape[1], RUNNING_CHUNK_SAMPLES):  # chunks: the state carries, memory stays small
        normaliser.update(x[:, first:first + RUNNING_CHUNK_SAMPLES])
    n_seconds = x.shape[1] // SNAPSHOT_SAMPLES
    mean = np.zeros((n_seconds + 1, x.shape[0]))
    std = np.zeros((n_seconds + 1, x.shape[0]))
    for k in range(1, n_seconds + 1):
        mean[k], std[k] = normaliser._snapshots[k * SNAPSHOT_SAMPLES]  # noqa: SLF001 (no public reader)
    return mean, std


def normalise_with_snapshots(x: np.ndarray, start_index: int, mean: np.ndarray, std: np.ndarray,
                             clip_sigma: float) -> np.ndarray:
    """Normalise samples with the running statistics before their second (``normalise_causal``).

    Parameters
    ----------
    x : ndarray, shape (n_channels, n_samples)
        Filtered samples in uV; ``x[:, 0]`` is sample ``start_index`` of the stream (>= 0).
    start_index : int
        Index of ``x[:, 0]`` counted from the stream's first sample (where the statistics started).
    mean, std : ndarray, shape (n_seconds + 1, n_channels)
        As :func:`recording_snapshots` returns them (possibly transformed by an augmentation); must
        reach the second of the last sample.
    clip_sigma : float

    Returns
    -------
    z : ndarray of float32, shape (n_channels, n_samples)
        ``(x_t - mean[k]) / max(std[k], MIN_SCALE_UV)`` with ``k = t // 256``, clipped to
        ``+/- clip_sigma``; 0 where ``k == 0``. Computed in float64 with the operations of
        :meth:`ictal.detector.normalise.RunningNormaliser.normalise_causal`, hence equal to it.

    Raises
    ------
    ValueError
        If ``start_index`` is negative or the snapshots do not reach the last sample's second.
    """
    from ictal.detector.normalise import MIN_SCALE_UV

    x = np.asarray(x, dtype=np.float64)
    n = x.shape[1]
    if start_index < 0:
        raise ValueError(f"start_index must be >= 0 (found {start_index})")
    k = (int(start_index) + np.arange(n)) // SNAPSHOT_SAMPLES
    if n and k[-1] >= mean.shape[0]:
        raise ValueError(f"running statistics reach second {mean.shape[0] - 1}; samples up to "
                         f"{int(start_index) + n - 1} (second {k[-1]}) asked for")
    z = (x - mean[k].T) / np.maximum(std[k].T, MIN_SCALE_UV)
    np.clip(z, -clip_sigma, clip_sigma, out=z)
    z[:, k == 0] = 0.0
    return z.astype(np.float32)


def _scale_and_noise_recorded(window: np.ndarray, config: AugmentConfig,
                              rng: np.random.Generator) -> tuple[np.ndarray, float, float]:
    """``training.augment.scale_and_noise`` (same random draws, same result), also returning its gain
    and its noise standard deviation in uV (the running statistics follow them)."""
    import math

    low, high = config.amplitude_scale
    gain = math.exp(rng.uniform(math.log(low), math.log(high))) if high > low else low
    out = window.astype(np.float32, copy=True)
    out *= np.float32(gain)
    if config.noise_std_uv > 0:
        out += rng.normal(0.0, config.noise_std_uv, size=out.shape).astype(np.float32)
    return out, float(np.float32(gain)), float(config.noise_std_uv)


@dataclass
class _Pool:
    """Runs of one class: recording index and sample range, with cumulative lengths for sampling."""

    rec: np.ndarray
    start: np.ndarray
    cumlen: np.ndarray
    _by_recording: list[tuple[np.ndarray, np.ndarray]] | None = None

    @property
    def total(self) -> int:
        return int(self.cumlen[-1]) if self.cumlen.size else 0

    def draw(self, rng: np.random.Generator, by_recording: bool = False) -> tuple[int, int]:
        """A (recording index, sample) uniform over all samples, or over recordings then samples."""
        if by_recording:
            if self._by_recording is None:  # recording -> (its runs, their cumulative lengths), built once
                lengths = np.diff(np.concatenate(([0], self.cumlen)))
                self._by_recording = [(runs, np.cumsum(lengths[runs]))
                                      for runs in (np.flatnonzero(self.rec == r) for r in np.unique(self.rec))]
            runs, cumulative = self._by_recording[int(rng.integers(len(self._by_recording)))]
            k = int(rng.integers(int(cumulative[-1])))
            index = int(np.searchsorted(cumulative, k, side="right"))
            before = int(cumulative[index - 1]) if index else 0
            return int(self.rec[runs[index]]), int(self.start[runs[index]]) + (k - before)
        k = int(rng.integers(self.total))
        run = int(np.searchsorted(self.cumlen, k, side="right"))
        before = int(self.cumlen[run - 1]) if run else 0
        return int(self.rec[run]), int(self.start[run]) + (k - before)


class WindowSampler:
    """Draws (recording, start) of windows of one split with a given seizure share.

    Parameters
    ----------
    cache : Cache
        The preprocessing cache.
    entries : list of CacheEntry
        Recordings to draw from (usually ``cache.split("train")``).
    window_samples : int
        Window length in samples (``model.n_times``; 15360 = 60 s at 256 Hz).
    seizure_fraction : float
        Probability that a window is anchored on a seizure sample; when the recordings hold no
        seizure (or no background) every window is anchored on the class that exists.
    weighting : {"samples", "recording"}
        ``samples``: the anchor is uniform among every sample of the class. ``recording``: a
        recording is drawn uniformly among those holding the class, then a sample of the class in
        it, so short rated segments (10 s hard negatives) weigh as much as long background.

    Attributes
    ----------
    all_background : list of bool
        Per entry: every sample is labelled background (no seizure, no unknown time), so a simulated
        seizure may be injected anywhere in it (EEGMAT recordings).

    Raises
    ------
    ValueError
        If the recordings hold no labelled sample at all, or ``weighting`` is unknown.
    """

    def __init__(self, cache: Cache, entries: list[CacheEntry], window_samples: int, seizure_fraction: float,
                 weighting: str = "samples"):
        if weighting not in ("samples", "recording"):
            raise ValueError(f"weighting must be 'samples' or 'recording' (found {weighting!r})")
        self.weighting = weighting
        self.cache = cache
        self.entries = list(entries)
        self.window_samples = int(window_samples)
        self.seizure_fraction = float(seizure_fraction)
        self._running: dict[tuple[int, float, int], tuple[np.ndarray, np.ndarray]] = {}
        pools: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {SEIZURE: [], BACKGROUND: []}
        self.all_background: list[bool] = []
        for index, entry in enumerate(self.entries):
            starts, stops, values = label_runs(np.asarray(cache.labels(entry)))
            self.all_background.append(bool(values.size) and bool(np.all(values == BACKGROUND)))
            for cls in (SEIZURE, BACKGROUND):
                keep = values == cls
                if keep.any():
                    pools[cls].append((np.full(int(keep.sum()), index), starts[keep], stops[keep] - starts[keep]))
        self.pools = {}
        for cls, parts in pools.items():
            if parts:
                rec, start, length = (np.concatenate(p) for p in zip(*parts, strict=True))
            else:
                rec = start = length = np.zeros(0, dtype=np.int64)
            self.pools[cls] = _Pool(rec.astype(np.int64), start.astype(np.int64), np.cumsum(length))
        if self.pools[SEIZURE].total == 0 and self.pools[BACKGROUND].total == 0:
            names = ", ".join(e.recording_id for e in self.entries[:5]) or "none"
            raise ValueError(f"no labelled sample to train on in {len(self.entries)} recording(s) ({names})")

    def running_snapshots(self, rec_index: int, frontend_config) -> tuple[np.ndarray, np.ndarray]:
        """Running-normalisation statistics of recording ``rec_index`` (:func:`recording_snapshots`).

        Computed once per recording and front-end setting and kept with the sampler, which lives for
        the whole run (a dataset is made per epoch): one pass over each recording drawn from.
        """
        key = (int(rec_index), float(frontend_config.running_tau_s), int(frontend_config.fs_hz))
        if key not in self._running:
            entry = self.entries[rec_index]
            self._running[key] = recording_snapshots(self.cache.signal(entry), frontend_config)
        return self._running[key]

    @property
    def seizure_samples(self) -> int:
        """Seizure samples available as anchors."""
        return self.pools[SEIZURE].total

    def _draw_anchor(self, rng: np.random.Generator) -> tuple[int, int, int]:
        """(recording index, anchor sample, class): the class by ``seizure_fraction``, then the anchor."""
        want_seizure = rng.random() < self.seizure_fraction
        cls = SEIZURE if want_seizure else BACKGROUND
        if self.pools[cls].total == 0:
            cls = BACKGROUND if cls == SEIZURE else SEIZURE
        rec_index, anchor = self.pools[cls].draw(rng, by_recording=self.weighting == "recording")
        return rec_index, anchor, cls

    def draw(self, rng: np.random.Generator, shift: int = 0) -> tuple[int, int, int]:
        """Draw one window.

        Parameters
        ----------
        rng : numpy Generator
        shift : int
            Samples added to the start after placement (time-shift augmentation).

        Returns
        -------
        rec_index : int
            Index into ``self.entries``.
        start : int
            First sample of the window; negative when the recording is shorter than a window (the
            missing head is padded).
        cls : int
            Class of the anchor (1 seizure, 0 background).
        """
        rec_index, anchor, cls = self._draw_anchor(rng)
        n = self.entries[rec_index].n_samples
        start = anchor - int(rng.integers(self.window_samples)) + shift
        start = min(max(start, 0), n - self.window_samples) if n >= self.window_samples else n - self.window_samples
        return rec_index, start, cls

    def draw_served(self, rng: np.random.Generator, hop_samples: int, lookahead_samples: int,
                    min_history_samples: int) -> tuple[int, int, int]:
        """Draw one window whose served span holds its anchor (``serving.loss_positions: served``).

        Parameters
        ----------
        rng : numpy Generator
        hop_samples, lookahead_samples : int
            The served span of a window ending at ``end`` is ``[end - lookahead - hop, end - lookahead)``.
        min_history_samples : int
            Least signal a window holds (the daemon's ``min_history_s``), or the recording's length
            when shorter.

        Returns
        -------
        rec_index : int
            Index into ``self.entries``.
        start : int
            First sample of the window (``end - window_samples``); negative for a warm-up window that
            reaches before the recording's start (the head is padded).
        cls : int
            Class of the anchor (1 seizure, 0 background).

        Notes
        -----
        The end is ``anchor + lookahead + u`` with ``u`` uniform in [1, hop], then clipped to
        ``[min(max(min_history, lookahead + 1), n), n]`` (a recording has no signal after its end; the
        daemon scores no window with less than ``min_history`` of history), so near a recording's edges the anchor may
        sit outside the span; its labels then still count where the span holds labelled samples.
        """
        rec_index, anchor, cls = self._draw_anchor(rng)
        n = self.entries[rec_index].n_samples
        end = anchor + int(lookahead_samples) + int(rng.integers(1, int(hop_samples) + 1))
        least = max(int(min_history_samples), int(lookahead_samples) + 1)  # a span that holds a sample
        end = min(max(end, min(least, n)), n)
        return rec_index, end - self.window_samples, cls

    def read(self, rec_index: int, start: int, lead: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Read one window from the cache, optionally with the samples before it.

        Parameters
        ----------
        rec_index, start : int
            As returned by :meth:`draw`.
        lead : int
            Samples before ``start`` to read as well (context of an injected seizure); 0 = the
            window only.

        Returns
        -------
        signal : ndarray of float32, shape (19, lead + window_samples)
            Filtered EEG in uV; a head before the recording's start is zeros.
        labels : ndarray of int8, shape (lead + window_samples,)
            Per-sample labels; the padded head is -1 (unknown).
        """
        entry = self.entries[rec_index]
        signal_map = self.cache.signal(entry)
        label_map = self.cache.labels(entry)
        start -= int(lead)
        lo = max(start, 0)
        hi = start + int(lead) + self.window_samples
        signal = np.zeros((signal_map.shape[0], int(lead) + self.window_samples), dtype=np.float32)
        labels = np.full(int(lead) + self.window_samples, UNKNOWN, dtype=np.int8)
        signal[:, lo - start:] = signal_map[:, lo:hi]
        labels[lo - start:] = label_map[lo:hi]
        return signal, labels


class WindowDataset(torch.utils.data.Dataset):
    """Training windows of one epoch: normalised model inputs with per-sample labels.

    Item ``i`` of epoch ``e`` on rank ``r`` is a pure function of ``(seed, e, r, i)``: runs are
    reproducible, a resumed run draws exactly what an uninterrupted one would, and DDP ranks draw
    different windows.

    Parameters
    ----------
    sampler : WindowSampler
    frontend_config : FrontendConfig
        Its ``Frontend.prepare_window`` normalises each window, exactly as the daemon does.
    augment : AugmentConfig or None
        None for no augmentation.
    length : int
        Windows per epoch on this rank.
    seed, epoch, rank : int
        Together they seed each item's generator.

    Notes
    -----
    With ``augment.synthetic_seizure_p`` > 0, a window anchored on background in a recording that
    is background throughout (:attr:`WindowSampler.all_background`) gets, with that probability, a
    simulated seizure injected into its filtered signal before gain, noise and normalisation
    (:func:`ictal.training.augment.synthetic_seizure_window`); its labels become 1 where the seizure runs.
    When the option is 0 no random number is drawn for it, so windows are bit-identical to a run
    without it.

    A window that starts before its recording (shorter than a window) is normalised on its real
    samples only and left-padded with zeros after normalisation, exactly as the daemon's padded
    warm-up windows (``streaming.bed``), so training and serving see the same inputs.

    With ``serving`` given and ``serving.loss_positions == "served"``, windows are placed by
    :meth:`WindowSampler.draw_served` (no time shift) and, with probability
    ``serving.warmup_fraction``, cropped to a warm-up window: history uniform in
    [``min_history_s``, 60) s, the rest zeros after normalisation and labels -1 there.

    With ``frontend_config.normalisation == "running"`` a window is the slice of its recording's
    per-sample normalised stream (module docstring), not normalised on its own.

    With ``direction="causal"`` and ``serving.loss_positions == "served"`` the window is placed so that
    its anchor lies at a uniform offset of ``[min_history - hop, n_times)`` and the labels of the first
    ``min_history - hop`` samples after the window's first real sample are -1 (the warm-up before a
    stream's first probability; see :func:`ictal.training.losses.causal_served_offsets`).

    An item is ``(x, y)``: ``x`` float32 tensor of shape (n_chans, n_times), the normalised window in
    the rows of ``frontend_config.montage`` (19 electrodes or 18 double-banana derivations);
    ``y`` int8 tensor of shape (n_times,), labels 1 / 0 / -1 (unknown, masked by the loss).
    """

    def __init__(self, sampler: WindowSampler, frontend_config, augment: AugmentConfig | None, length: int,
                 seed: int, epoch: int = 0, rank: int = 0, serving=None, direction: str = "bidirectional"):
        from ictal.detector.frontend import Frontend

        if direction not in ("bidirectional", "causal"):
            raise ValueError(f"direction must be 'bidirectional' or 'causal' (found {direction!r})")
        self.sampler = sampler
        self.frontend_config = frontend_config
        self.frontend = Frontend(frontend_config, float(frontend_config.fs_hz))
        self.running = frontend_config.normalisation == "running"
        self.fs = float(frontend_config.fs_hz)
        self.augment = augment
        if augment is not None and augment.synthetic_seizure_p > 0 and frontend_config.montage != "referential":
            raise ValueError(
                f"augment.synthetic_seizure_p = {augment.synthetic_seizure_p} needs the referential montage: "
                f"training.seizure_synthesis simulates seizures on the 19 electrodes; frontend.montage is "
                f"{frontend_config.montage!r} (set synthetic_seizure_p: 0)"
            )
        self.length = int(length)
        self.seed, self.epoch, self.rank = int(seed), int(epoch), int(rank)
        self.served = serving is not None and serving.loss_positions == "served"
        self.causal = direction == "causal"
        if self.served:
            from ictal.detector.output_position import seconds_to_samples

            self.hop_samples = seconds_to_samples(serving.hop_s, "serving.hop_s", self.fs)
            self.lookahead_samples = seconds_to_samples(serving.lookahead_s, "serving.lookahead_s", self.fs)
            self.min_history_samples = int(round(serving.min_history_s * self.fs))
            self.warmup_fraction = float(serving.warmup_fraction)
            if self.causal:
                from ictal.training.losses import causal_served_offsets

                if self.lookahead_samples != 0:
                    raise ValueError(f"a causal model is served with lookahead 0 (found serving.lookahead_s "
                                     f"{serving.lookahead_s})")
                self.first_served, hi = causal_served_offsets(self.min_history_samples, self.hop_samples,
                                                              sampler.window_samples)
                self.hop_samples = hi - self.first_served  # a causal window's served span: [first_served, end)

    def snapshots(self, rec_index: int) -> tuple[np.ndarray, np.ndarray]:
        """Running statistics of recording ``rec_index`` (:meth:`WindowSampler.running_snapshots`)."""
        return self.sampler.running_snapshots(rec_index, self.frontend_config)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        from ictal.training.augment import (
            channel_dropout,
            hemisphere_flip,
            scale_and_noise,
            time_shift_samples,
        )

        rng = np.random.default_rng([self.seed, self.epoch, self.rank, int(index)])
        if self.served:
            rec_index, start, cls = self.sampler.draw_served(rng, self.hop_samples, self.lookahead_samples,
                                                             self.min_history_samples)
        else:
            shift = time_shift_samples(self.augment, self.fs, rng) if self.augment else 0
            rec_index, start, cls = self.sampler.draw(rng, shift)
        signal, labels = self.sampler.read(rec_index, start)
        if self.augment and self.augment.synthetic_seizure_p > 0 and cls == BACKGROUND \
                and self.sampler.all_background[rec_index] and start >= 0 \
                and rng.random() < self.augment.synthetic_seizure_p:
            signal, labels = self._inject(rec_index, start, rng)
        gain, noise_std, flipped = 1.0, 0.0, False
        if self.augment:
            if self.running:
                signal, gain, noise_std = _scale_and_noise_recorded(signal, self.augment, rng)
            else:
                signal = scale_and_noise(signal, self.augment, rng)
            mirrored = hemisphere_flip(signal, self.augment.hemisphere_flip_p, rng, self.frontend_config.montage)
            flipped, signal = mirrored is not signal, mirrored
        # A recording shorter than a window (start < 0) is padded as the daemon pads its warm-up
        # windows (streaming.bed): the real samples are normalised alone, the head is exact zeros.
        pad = max(0, -start)
        restarted = False
        if self.served and self.warmup_fraction > 0 and rng.random() < self.warmup_fraction:
            n_window = signal.shape[1]
            history = int(rng.integers(min(self.min_history_samples, n_window - pad), n_window - pad + 1))
            pad = n_window - history  # a bed that (re)connected `history` samples before the window's end
            restarted = True
            labels = labels.copy()
            labels[:pad] = -1
        if self.served and self.causal:
            labels = labels.copy()
            labels[:pad + self.first_served] = -1  # the warm-up after the first real sample
        x = np.zeros(signal.shape, dtype=np.float32)
        if not self.running:
            x[:, pad:] = self.frontend.prepare_window(signal[:, pad:])
        elif restarted:
            x[:, pad:] = self._normalise_fresh_stream(signal[:, pad:])
        else:
            mean, std = self.snapshots(rec_index)
            if flipped:
                from ictal.training.augment import montage_mirror

                mirror = montage_mirror(self.frontend_config.montage)
                mean, std = mean[:, mirror], std[:, mirror]
            mean, std = mean * gain, np.sqrt((std * gain) ** 2 + noise_std**2)
            x[:, pad:] = normalise_with_snapshots(signal[:, pad:], start + pad, mean, std,
                                                  self.frontend_config.clip_sigma)
        if self.augment:
            x = channel_dropout(x, self.augment.channel_dropout_p, rng)
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(labels)

    def _normalise_fresh_stream(self, signal: np.ndarray) -> np.ndarray:
        """Running normalisation of a stream that starts at ``signal[:, 0]`` (a bed just connected)."""
        from ictal.detector.normalise import RunningNormaliser

        config = self.frontend_config
        normaliser = RunningNormaliser(config.running_tau_s, self.fs, signal.shape[0], config.clip_sigma,
                                       keep_s=None)
        normaliser.update(signal)
        return normaliser.normalise_causal(signal, 0)

    def _inject(self, rec_index: int, start: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The window at ``start`` of an all-background recording with a simulated seizure injected."""
        from ictal.training.augment import synthetic_seizure_window

        lead = min(start, int(round(self.augment.synthetic_seizure_max_lead_s * self.fs)))
        context, context_labels = self.sampler.read(rec_index, start, lead)
        return synthetic_seizure_window(context, context_labels, lead, self.fs, self.augment, rng)
