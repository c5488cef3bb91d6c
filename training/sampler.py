"""Balanced sampling of training windows from the cache.

A window is drawn in two steps: its class (seizure with probability ``seizure_fraction``, else
background), then an *anchor* sample of that class uniformly among every such sample of the split
(so long recordings and long seizures weigh in proportion to their length); the window is placed
so that the anchor lies at a uniform position inside it, then shifted by the time-shift augmentation.
Unknown (unrated) samples are never anchors, and their labels stay -1 so the loss ignores them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from training.cache import Cache, CacheEntry
from training.config import AugmentConfig
from training.datasets.base import BACKGROUND, SEIZURE, UNKNOWN
from training.datasets.labels import label_runs


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

    @property
    def seizure_samples(self) -> int:
        """Seizure samples available as anchors."""
        return self.pools[SEIZURE].total

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
        want_seizure = rng.random() < self.seizure_fraction
        cls = SEIZURE if want_seizure else BACKGROUND
        if self.pools[cls].total == 0:
            cls = BACKGROUND if cls == SEIZURE else SEIZURE
        rec_index, anchor = self.pools[cls].draw(rng, by_recording=self.weighting == "recording")
        n = self.entries[rec_index].n_samples
        start = anchor - int(rng.integers(self.window_samples)) + shift
        start = min(max(start, 0), n - self.window_samples) if n >= self.window_samples else n - self.window_samples
        return rec_index, start, cls

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
    (:func:`training.augment.synthetic_seizure_window`); its labels become 1 where the seizure runs.
    When the option is 0 no random number is drawn for it, so windows are bit-identical to a run
    without it.

    A window that starts before its recording (shorter than a window) is normalised on its real
    samples only and left-padded with zeros after normalisation, exactly as the daemon's padded
    warm-up windows (``streaming.bed``), so training and serving see the same inputs.

    An item is ``(x, y)``: ``x`` float32 tensor of shape (19, n_times), the normalised window;
    ``y`` int8 tensor of shape (n_times,), labels 1 / 0 / -1 (unknown, masked by the loss).
    """

    def __init__(self, sampler: WindowSampler, frontend_config, augment: AugmentConfig | None, length: int,
                 seed: int, epoch: int = 0, rank: int = 0):
        from detector.frontend import Frontend

        self.sampler = sampler
        self.frontend = Frontend(frontend_config, float(frontend_config.fs_hz))
        self.fs = float(frontend_config.fs_hz)
        self.augment = augment
        self.length = int(length)
        self.seed, self.epoch, self.rank = int(seed), int(epoch), int(rank)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        from training.augment import channel_dropout, hemisphere_flip, scale_and_noise, time_shift_samples

        rng = np.random.default_rng([self.seed, self.epoch, self.rank, int(index)])
        shift = time_shift_samples(self.augment, self.fs, rng) if self.augment else 0
        rec_index, start, cls = self.sampler.draw(rng, shift)
        signal, labels = self.sampler.read(rec_index, start)
        if self.augment and self.augment.synthetic_seizure_p > 0 and cls == BACKGROUND \
                and self.sampler.all_background[rec_index] and start >= 0 \
                and rng.random() < self.augment.synthetic_seizure_p:
            signal, labels = self._inject(rec_index, start, rng)
        if self.augment:
            signal = scale_and_noise(signal, self.augment, rng)
            signal = hemisphere_flip(signal, self.augment.hemisphere_flip_p, rng)
        # A recording shorter than a window (start < 0) is padded as the daemon pads its warm-up
        # windows (streaming.bed): the real samples are normalised alone, the head is exact zeros.
        pad = max(0, -start)
        x = np.zeros(signal.shape, dtype=np.float32)
        x[:, pad:] = self.frontend.prepare_window(signal[:, pad:])
        if self.augment:
            x = channel_dropout(x, self.augment.channel_dropout_p, rng)
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(labels)

    def _inject(self, rec_index: int, start: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The window at ``start`` of an all-background recording with a simulated seizure injected."""
        from training.augment import synthetic_seizure_window

        lead = min(start, int(round(self.augment.synthetic_seizure_max_lead_s * self.fs)))
        context, context_labels = self.sampler.read(rec_index, start, lead)
        return synthetic_seizure_window(context, context_labels, lead, self.fs, self.augment, rng)
