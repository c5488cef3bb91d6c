"""Causal amplitude normalisation of filtered EEG, identical in streaming and training.

Two methods, chosen by ``FrontendConfig.normalisation``:

``window_robust`` (default)
    Each channel of a scored 60 s window is centred on its median and divided by its inter-quartile
    range scaled to a standard deviation (IQR / 1.349, the IQR of a normal distribution being 1.349
    sigma). It is a pure function of the window, so streaming and training give bit-identical model
    inputs by construction, whatever the chunking, the history or where the recording started. It is
    causal: a window ending at sample ``t`` uses no sample after ``t``. The median and IQR have a
    25 % breakdown point, so a few seconds of electrode pops, chewing or a high-amplitude seizure
    segment do not set the scale of the whole window the way a mean/std would; per-channel scaling
    removes the between-patient and between-amplifier gain differences of ICU EEG. What it gives up:
    the absolute amplitude of the window (a suppressed background looks like a normal one); the
    model sees relative morphology, and the signal-quality checks report flat channels separately.

``running``
    Exponentially-weighted running mean and variance per channel with time constant
    ``FrontendConfig.running_tau_s``, bias-corrected for the start of the stream (the estimate after
    ``t`` samples is the weighted average of exactly those ``t`` samples, as in Adam's moment
    estimates, Kingma & Ba 2015). The statistics are updated sample by sample over the filtered
    stream and snapshotted at every whole second of the stream (absolute sample index a multiple of
    256). Each sample ``t`` is normalised with the snapshot at ``floor(t / 256) * 256``, the
    statistics of the samples before the second that holds it (:meth:`RunningNormaliser.normalise_causal`);
    samples of the first second, before any snapshot, are 0. The model input is then one per-sample
    normalised stream: a window is a slice of it, a hop of stream mode is the next piece of it, and
    no input sample depends on a later one. This is the normalisation of causal checkpoints (stream
    mode), chosen over ``window_robust`` because a per-window statistic would normalise the same
    sample differently in every window that holds it, so a state carried across hops would have been
    built from inputs the model never sees together in training. What it gives up: the estimates
    follow the stream with a lag of about ``running_tau_s`` and lean on the first minutes after a
    (re)connection; a high-amplitude seizure raises them only slowly (a 60 s event moves a 5-minute
    EMA by at most 18 %).

``fixed_gain`` (issue 22's "none + amplitude" arm)
    No statistic at all: every sample is divided by one fixed scale, :data:`FIXED_GAIN_UV` (50 uV), the
    same for every channel, window and patient. The band-pass already removes the offset, so the
    model input keeps the absolute amplitude (healthy adult EEG is a few uV to tens of uV, ICU seizures
    tens to hundreds): the amplitude channel is the signal itself, no separate feature is needed. A
    pure function of the sample, causal and identical in streaming and training. What it gives up:
    gain differences between amplifiers, montages and patients reach the model unchanged.

All clip the normalised samples to ``+/- FrontendConfig.clip_sigma`` (with ``fixed_gain`` and the
default 20: +/- 1000 uV).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from scipy.signal import lfilter

IQR_TO_SIGMA: float = 1.349
"""IQR of a standard normal distribution (2 * 0.6745): IQR / 1.349 estimates the standard deviation."""

MIN_SCALE_UV: float = 0.1
"""Smallest scale (uV) a channel is divided by: a flat channel (std below ~0.1 uV, quantisation
level of EEG amplifiers) is centred but not blown up; the quality checks report it as flat."""

FIXED_GAIN_UV: float = 50.0
"""The scale of ``normalisation: fixed_gain`` in uV: a 50 uV sample becomes 1; with the default
``clip_sigma`` 20 the input saturates at +/- 1000 uV, above the amplitude of ICU seizures (tens to a
few hundred uV) and below the rail of the signal-quality checks (2000 uV)."""

SNAPSHOT_SAMPLES: int = 256
"""Running statistics are snapshotted every 256 samples (1 s at the detector rate)."""


def normalise_fixed_gain(window: np.ndarray, clip_sigma: float) -> np.ndarray:
    """Divide by the fixed scale :data:`FIXED_GAIN_UV` and clip (``normalisation: fixed_gain``).

    Parameters
    ----------
    window : ndarray, shape (n_channels, n_samples)
        Filtered samples in uV. Must be finite.
    clip_sigma : float
        Scaled samples are clipped to ``+/- clip_sigma``.

    Returns
    -------
    z : ndarray of float32, shape (n_channels, n_samples)
        ``x / 50 uV``, clipped; dimensionless, absolute amplitude kept.

    Raises
    ------
    ValueError
        If ``window`` is not 2-D with at least one sample.
    """
    w = np.asarray(window)
    if w.ndim != 2 or w.shape[1] == 0:
        raise ValueError(f"window must be 2-D (n_channels, n_samples > 0), found shape {w.shape}")
    z = w.astype(np.float32, copy=False) / np.float32(FIXED_GAIN_UV)
    return np.clip(z, -clip_sigma, clip_sigma).astype(np.float32, copy=False)


def normalise_window_robust(window: np.ndarray, clip_sigma: float) -> np.ndarray:
    """Per-channel median / IQR scaling of one window.

    Parameters
    ----------
    window : ndarray, shape (n_channels, n_samples)
        Filtered samples in uV (a 60 s window is (19, 15360)). Must be finite. A float32 window (the
        front-end's output) is processed in float32, any other dtype in float64.
    clip_sigma : float
        Normalised samples are clipped to ``+/- clip_sigma``.

    Returns
    -------
    z : ndarray of float32, shape (n_channels, n_samples)
        ``(x - median) / max(IQR / 1.349, MIN_SCALE_UV)`` per channel, clipped; dimensionless.

    Raises
    ------
    ValueError
        If ``window`` is not 2-D with at least one sample.

    Notes
    -----
    The estimator is the exact sample median and inter-quartile range of all samples of the window
    (linear interpolation between order statistics, as ``numpy.percentile``); the module docstring
    says why median and IQR. They are computed from one sort per channel (``numpy.sort``, which is
    vectorised for float32: ~0.6 ms for (19, 15360), against ~5 ms for ``numpy.percentile``, whose
    selection of six order statistics is slower than sorting). Exact rather than estimated from a
    subsample (which would cost ~0.15 ms), so that the model input does not depend on the
    implementation: the same windows give the inputs they gave with ``numpy.percentile`` and float64
    arithmetic, to float32 rounding (<= 5e-7 on real EEG), for existing checkpoints as for training.

    References
    ----------
    Huber P. J., Robust Statistics, Wiley 1981 (median and IQR as robust location and scale).
    """
    x = np.asarray(window)
    if x.dtype != np.float32:
        x = x.astype(np.float64)
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"window must have shape (n_channels, n_samples > 0), found {x.shape}")
    q25, median, q75 = _quartiles(x)
    scale = np.maximum((q75 - q25) / IQR_TO_SIGMA, MIN_SCALE_UV)
    z = x - median.astype(x.dtype)[:, None]
    z /= scale.astype(x.dtype)[:, None]
    np.clip(z, -clip_sigma, clip_sigma, out=z)
    return z.astype(np.float32, copy=False)


def _quartiles(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """25th, 50th and 75th percentiles of each row, equal to ``numpy.percentile(x, q, axis=1)``.

    Parameters
    ----------
    x : ndarray of float32 or float64, shape (n_channels, n_samples), finite

    Returns
    -------
    q25, q50, q75 : ndarray of float64, shape (n_channels,)
        Linear interpolation between the order statistics at ``q * (n_samples - 1)``, with numpy's
        formula (``b - (b - a) * (1 - g)`` for a fraction ``g >= 0.5``).
    """
    ordered = np.sort(x, axis=1)
    n = ordered.shape[1]
    out = []
    for q in (0.25, 0.5, 0.75):
        position = q * (n - 1)
        i = int(position)
        g = position - i
        a = ordered[:, i].astype(np.float64)
        b = ordered[:, min(i + 1, n - 1)].astype(np.float64)
        out.append(b - (b - a) * (1.0 - g) if g >= 0.5 else a + (b - a) * g)
    return out[0], out[1], out[2]


class RunningNormaliser:
    """Exponentially-weighted running mean and variance per channel, snapshotted every second.

    Parameters
    ----------
    tau_s : float
        Time constant in seconds (> 0).
    fs : float
        Sampling rate of the filtered stream in Hz (256).
    n_channels : int
        Number of channels.
    clip_sigma : float
        Normalised samples are clipped to ``+/- clip_sigma``.
    keep_s : float or None
        Seconds of snapshots kept (oldest dropped); None keeps all (offline use over a recording).

    Notes
    -----
    ``m_t = b * m_{t-1} + (1 - b) * x_t`` with ``b = exp(-1 / (tau_s * fs))`` and ``m_0 = 0``, for
    ``x`` and ``x**2``, computed with ``scipy.signal.lfilter`` and carried state; the bias-corrected
    mean is ``m_t / (1 - b**t)``, variance ``E[x^2] - E[x]^2`` (float64).
    """

    def __init__(
        self, tau_s: float, fs: float = 256.0, n_channels: int = 19, clip_sigma: float = 20.0,
        keep_s: float | None = 600.0,
    ):
        if not tau_s > 0:
            raise ValueError(f"tau_s must be positive (found {tau_s})")
        self.beta = float(np.exp(-1.0 / (tau_s * fs)))
        self.n_channels = int(n_channels)
        self.clip_sigma = float(clip_sigma)
        self.keep_snapshots = None if keep_s is None else max(1, int(np.ceil(keep_s * fs / SNAPSHOT_SAMPLES)))
        self.reset()

    def reset(self) -> None:
        """Forget the stream."""
        self._zi = np.zeros((2 * self.n_channels, 1))
        self._n_seen = 0
        self._snapshots: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    @property
    def n_seen(self) -> int:
        """Samples seen since the last reset."""
        return self._n_seen

    def update(self, x: np.ndarray) -> None:
        """Feed the next filtered samples.

        Parameters
        ----------
        x : ndarray, shape (n_channels, n_samples)
            Filtered samples in uV, any length including 0.

        Raises
        ------
        ValueError
            If ``x`` is not 2-D with ``n_channels`` rows.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != self.n_channels:
            raise ValueError(f"running normaliser expects shape ({self.n_channels}, n_samples), found {x.shape}")
        n = x.shape[1]
        if n == 0:
            return
        moments, self._zi = lfilter([1.0 - self.beta], [1.0, -self.beta], np.concatenate([x, x * x]),
                                    axis=-1, zi=self._zi)
        # Snapshot after every sample whose absolute count is a multiple of SNAPSHOT_SAMPLES.
        first = -(-(self._n_seen + 1) // SNAPSHOT_SAMPLES) * SNAPSHOT_SAMPLES  # first boundary > n_seen
        for boundary in range(first, self._n_seen + n + 1, SNAPSHOT_SAMPLES):
            col = moments[:, boundary - self._n_seen - 1]
            correction = 1.0 - self.beta**boundary
            mean = col[: self.n_channels] / correction
            var = np.maximum(col[self.n_channels :] / correction - mean**2, 0.0)
            self._snapshots[boundary] = (mean, np.sqrt(var))
        if self.keep_snapshots is not None:
            while len(self._snapshots) > self.keep_snapshots:
                self._snapshots.popitem(last=False)
        self._n_seen += n

    def normalise_causal(self, x: np.ndarray, start_index: int) -> np.ndarray:
        """Normalise samples one by one with the statistics of the samples before their second.

        Parameters
        ----------
        x : ndarray, shape (n_channels, n_samples)
            Filtered samples in uV whose first sample has absolute index ``start_index`` (counted
            from the normaliser's start, at 256 Hz); they must have been fed with :meth:`update`
            (statistics are looked up, not computed, here).
        start_index : int
            Absolute index of ``x[:, 0]``.

        Returns
        -------
        z : ndarray of float32, shape (n_channels, n_samples)
            Sample ``t`` is ``(x_t - mean) / max(std, MIN_SCALE_UV)`` with the snapshot at
            ``floor(t / 256) * 256`` (statistics of samples ``< floor(t / 256) * 256``), clipped to
            ``+/- clip_sigma``; 0 for ``t < 256`` (no statistics yet). A pure function of the stream
            up to each sample: the same sample gets the same value in every window and every hop.

        Raises
        ------
        ValueError
            If ``x`` is not (n_channels, n) or a needed snapshot is not held (not fed yet, or older
            than ``keep_s``).
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != self.n_channels:
            raise ValueError(f"running normaliser expects shape ({self.n_channels}, n_samples), found {x.shape}")
        start, n = int(start_index), x.shape[1]
        z = np.zeros(x.shape, dtype=np.float32)
        first_second = start // SNAPSHOT_SAMPLES
        last_second = (start + n - 1) // SNAPSHOT_SAMPLES if n else first_second - 1
        for second in range(first_second, last_second + 1):
            boundary = second * SNAPSHOT_SAMPLES
            lo, hi = max(boundary, start) - start, min(boundary + SNAPSHOT_SAMPLES, start + n) - start
            if boundary == 0:
                continue  # the first second: no statistics yet, zeros
            if boundary not in self._snapshots:
                held = list(self._snapshots)
                span = f"{held[0]}..{held[-1]}" if held else "none"
                raise ValueError(
                    f"no running statistics at sample {boundary} (for samples {start + lo}..{start + hi - 1}); "
                    f"snapshots held: {span} (every {SNAPSHOT_SAMPLES} samples)"
                )
            mean, std = self._snapshots[boundary]
            seg = (x[:, lo:hi] - mean[:, None]) / np.maximum(std, MIN_SCALE_UV)[:, None]
            z[:, lo:hi] = np.clip(seg, -self.clip_sigma, self.clip_sigma)
        return z

    def normalise(self, window: np.ndarray, end_index: int) -> np.ndarray:
        """Normalise a window with the running statistics at its end (one snapshot for all its samples).

        Kept for comparison; the front-end's ``running`` normalisation is :meth:`normalise_causal`.

        Parameters
        ----------
        window : ndarray, shape (n_channels, n_samples)
            Filtered samples in uV.
        end_index : int
            Absolute index (at the filtered rate, counted from the stream's first sample) one past the
            window's last sample.

        Returns
        -------
        z : ndarray of float32, shape (n_channels, n_samples)
            ``(x - mean) / max(std, MIN_SCALE_UV)``, clipped to ``+/- clip_sigma``.

        Raises
        ------
        ValueError
            If the snapshot at ``floor(end_index / 256) * 256`` is not held (before the first second,
            after the newest sample fed, or older than ``keep_s``).
        """
        boundary = (int(end_index) // SNAPSHOT_SAMPLES) * SNAPSHOT_SAMPLES
        if boundary not in self._snapshots:
            held = list(self._snapshots)
            span = f"{held[0]}..{held[-1]}" if held else "none"
            raise ValueError(
                f"no running statistics at sample {boundary} (window end_index {end_index}); "
                f"snapshots held: {span} (every {SNAPSHOT_SAMPLES} samples)"
            )
        mean, std = self._snapshots[boundary]
        x = np.asarray(window, dtype=np.float64)
        z = (x - mean[:, None]) / np.maximum(std, MIN_SCALE_UV)[:, None]
        return np.clip(z, -self.clip_sigma, self.clip_sigma).astype(np.float32)
