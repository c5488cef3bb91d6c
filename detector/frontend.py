"""The one signal front-end of daemon and training: resampling, causal filters, normalisation.

Its rows are those of the model's montage (``FrontendConfig.montage``, :mod:`ictal.detector.montage`): 19
referential electrodes or 18 double-banana derivations. The stages act on each row alone, so they are
the same for either montage; the mapping of a recording's channels to those rows is
:func:`ictal.detector.montage.map_montage`.
"""

from __future__ import annotations

import numpy as np

from ictal.detector.config import FrontendConfig
from ictal.detector.filters import CausalFilterBank
from ictal.detector.montage import montage_channels
from ictal.detector.normalise import RunningNormaliser, normalise_fixed_gain, normalise_window_robust
from ictal.detector.resample import StreamingResampler

BLOCK_SAMPLES: int = 8192
"""Input samples per internal block of :meth:`Frontend.process` (chunking never changes the output)."""


class Frontend:
    """Stateful front-end of one bed: (n_channels, n) uV at ``fs_in`` -> (n_channels, m) filtered uV at 256 Hz.

    Parameters
    ----------
    config : FrontendConfig
        Band-pass, notch, normalisation and clipping settings.
    fs_in : float
        Input sampling rate in Hz (200, 250, 256, 400, 500, ...).
    n_channels : int, optional
        Rows of every chunk; default the row count of ``config.montage`` (19 referential electrodes,
        18 double-banana derivations).
    keep_running_s : float or None
        Seconds of running-normalisation snapshots kept (``normalisation="running"`` only); None keeps
        them all, as the offline path over a whole recording does.

    Attributes
    ----------
    n_nonfinite_total : int
        Non-finite input samples (NaN, +/-Inf) replaced since the last reset, all channels together.
    n_nonfinite_last : ndarray of int64, shape (n_channels,)
        Non-finite input samples per channel in the last :meth:`process` call; the streaming layer
        reads it to raise a signal-quality event.

    Notes
    -----
    :meth:`process` runs, in order and with the state of each stage carried between calls:

    1. replacement of non-finite samples: each NaN/Inf is replaced by the channel's last finite value
       (sample-and-hold, as an amplifier's display holds during a dropout); before the channel's first
       finite sample it is replaced by 0 uV. A replaced value is finite and continuous with the signal,
       so the IIR state is never poisoned and the band-pass sees no step;
    2. polyphase resampling to 256 Hz (:class:`ictal.detector.resample.StreamingResampler`, causal, edge-hold
       start);
    3. Butterworth band-pass and notch (:class:`ictal.detector.filters.CausalFilterBank`, steady-state start
       from the first sample).

    All stages compute in float64; the output is float32. Chunking does not change the output beyond
    float rounding: :func:`process_recording` is this same method called once on the whole recording.
    """

    def __init__(
        self, config: FrontendConfig, fs_in: float, n_channels: int | None = None,
        keep_running_s: float | None = 600.0,
    ):
        self.config = config
        self.fs_in = float(fs_in)
        self.fs_out = float(config.fs_hz)
        self.n_channels = len(montage_channels(config.montage)) if n_channels is None else int(n_channels)
        self.resampler = StreamingResampler(self.fs_in, self.fs_out, self.n_channels)
        self.filters = CausalFilterBank(config, self.n_channels, self.fs_out)
        self.running: RunningNormaliser | None = None
        if config.normalisation == "running":
            self.running = RunningNormaliser(
                config.running_tau_s, self.fs_out, self.n_channels, config.clip_sigma, keep_running_s
            )
        self.reset()

    def reset(self) -> None:
        """Forget the stream (after a reconnect or a new recording): every stage starts afresh."""
        self.resampler.reset()
        self.filters.reset()
        if self.running is not None:
            self.running.reset()
        self._hold = np.zeros(self.n_channels)  # last finite input value per channel (uV)
        self.n_nonfinite_total = 0
        self.n_nonfinite_last = np.zeros(self.n_channels, dtype=np.int64)
        self.n_in = 0

    @property
    def n_out(self) -> int:
        """Filtered samples at 256 Hz emitted since the last reset (the next output's absolute index)."""
        return self.resampler.n_out

    @property
    def delay_s(self) -> float:
        """Group delay of the resampler's linear-phase filter in seconds (the IIR filters add their own
        frequency-dependent phase delay)."""
        return self.resampler.group_delay_s

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Resample and filter the next chunk of the stream.

        Parameters
        ----------
        chunk : ndarray, shape (n_channels, n_samples)
            The next samples in uV at ``fs_in`` Hz, in the montage's row order; any length including 0.
            May contain NaN/Inf (replaced and counted, see Notes of the class).

        Returns
        -------
        filtered : ndarray of float32, shape (n_channels, n_samples_out)
            Band-passed and notched samples in uV at 256 Hz. Concatenating the outputs of successive
            calls equals one call on the concatenated input (to float rounding).

        Raises
        ------
        ValueError
            If ``chunk`` is not 2-D with ``n_channels`` rows.
        """
        x = np.asarray(chunk)
        if x.ndim != 2 or x.shape[0] != self.n_channels:
            raise ValueError(
                f"front-end expects chunks of shape ({self.n_channels}, n_samples) in uV, found {x.shape}"
            )
        x = np.array(x, dtype=np.float64)  # a copy: the caller's array is never modified
        self.n_nonfinite_last = np.zeros(self.n_channels, dtype=np.int64)
        if x.shape[1] == 0:
            return np.empty((self.n_channels, 0), dtype=np.float32)
        finite = np.isfinite(x)
        if not finite.all():
            self.n_nonfinite_last = (~finite).sum(axis=1)
            self.n_nonfinite_total += int(self.n_nonfinite_last.sum())
            x = self._hold_last_finite(x, finite)
        self._hold = x[:, -1].copy()
        self.n_in += x.shape[1]
        # Long inputs (a whole recording) go through in blocks: same result, cache-friendly, less memory.
        blocks = [
            self.filters.process(self.resampler.process(x[:, i : i + BLOCK_SAMPLES]))
            for i in range(0, x.shape[1], BLOCK_SAMPLES)
        ]
        y = blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)
        if self.running is not None:
            self.running.update(y)
        return y.astype(np.float32)

    def _hold_last_finite(self, x: np.ndarray, finite: np.ndarray) -> np.ndarray:
        """Replace each non-finite sample by the channel's last finite value (``self._hold`` before it)."""
        n = x.shape[1]
        # Index of the last finite sample at or before each position; -1 where none in this chunk.
        positions = np.where(finite, np.arange(n), -1)
        np.maximum.accumulate(positions, axis=1, out=positions)
        padded = np.concatenate([self._hold[:, None], x], axis=1)
        return np.take_along_axis(padded, positions + 1, axis=1)

    def prepare_window(self, window: np.ndarray, end_index: int | None = None) -> np.ndarray:
        """Normalise one window of filtered samples into model input.

        Parameters
        ----------
        window : ndarray, shape (n_channels, n_samples)
            Filtered samples in uV at 256 Hz (a scored window is (n_channels, 15360)), as :meth:`process`
            returned them.
        end_index : int, optional
            Absolute index (at 256 Hz) one past the window's last sample; used only by
            ``normalisation="running"``, where every sample is normalised with the statistics before
            its own second (:meth:`~ictal.detector.normalise.RunningNormaliser.normalise_causal`): a window
            is a slice of one per-sample normalised stream. Defaults to :attr:`n_out` (the window
            ends at the newest processed sample).

        Returns
        -------
        z : ndarray of float32, shape (n_channels, n_samples)
            Normalised samples clipped to ``+/- clip_sigma`` (see :mod:`ictal.detector.normalise`).

        Raises
        ------
        ValueError
            If the window is not (n_channels, n_samples > 0) or is not finite, or (running) its end's
            statistics are not held.
        """
        w = np.asarray(window)
        if w.ndim != 2 or w.shape[0] != self.n_channels or w.shape[1] == 0:
            raise ValueError(f"window must have shape ({self.n_channels}, n_samples > 0), found {w.shape}")
        if not np.isfinite(w).all():
            raise ValueError("window holds non-finite samples; windows must come from Frontend.process")
        if self.config.normalisation == "fixed_gain":
            return normalise_fixed_gain(w, self.config.clip_sigma)
        if self.running is None:
            return normalise_window_robust(w, self.config.clip_sigma)
        end = self.n_out if end_index is None else int(end_index)
        return self.running.normalise_causal(w, end - w.shape[1])


def process_recording(data: np.ndarray, fs_in: float, config: FrontendConfig) -> np.ndarray:
    """The offline front-end: the streaming :class:`Frontend` run once on a whole recording.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_samples)
        The recording in uV at ``fs_in`` Hz, in the montage's row order (any row count).
    fs_in : float
        Sampling rate of ``data`` in Hz.
    config : FrontendConfig

    Returns
    -------
    filtered : ndarray of float32, shape (n_channels, n_samples_out)
        Filtered samples in uV at 256 Hz; equal (to float rounding) to streaming the recording in chunks.
    """
    return Frontend(config, fs_in, n_channels=np.asarray(data).shape[0]).process(data)
