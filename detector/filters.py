"""Causal filter bank with carried state: Butterworth band-pass and mains notch, as second-order sections."""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, iirnotch, sosfilt, sosfilt_zi, tf2sos

from ictal.detector.config import FrontendConfig


def design_sos(config: FrontendConfig, fs: float | None = None) -> np.ndarray:
    """Second-order sections of the front-end's band-pass followed by its notch.

    Parameters
    ----------
    config : FrontendConfig
        ``bandpass_hz`` (Hz), ``bandpass_order`` (Butterworth order per edge), ``notch_hz`` (Hz or
        None), ``notch_q``.
    fs : float, optional
        Sampling rate in Hz; defaults to ``config.fs_hz`` (256 Hz).

    Returns
    -------
    sos : ndarray of float64, shape (n_sections, 6)
        ``bandpass_order`` sections of the Butterworth band-pass (Butterworth 1930; designed by
        ``scipy.signal.butter``), then one section of the IIR notch (``scipy.signal.iirnotch``,
        second-order notch with -3 dB bandwidth ``notch_hz / notch_q``) unless ``notch_hz`` is None.
    """
    fs = float(config.fs_hz if fs is None else fs)
    sos = butter(config.bandpass_order, config.bandpass_hz, btype="bandpass", output="sos", fs=fs)
    if config.notch_hz is not None:
        b, a = iirnotch(config.notch_hz, config.notch_q, fs=fs)
        sos = np.concatenate([sos, tf2sos(b, a)], axis=0)
    return np.ascontiguousarray(sos, dtype=np.float64)


class CausalFilterBank:
    """Band-pass + notch applied causally to a multichannel stream, with the state carried between chunks.

    Parameters
    ----------
    config : FrontendConfig
        Filter settings (see :func:`design_sos`).
    n_channels : int
        Number of channels (rows) of every chunk.
    fs : float, optional
        Sampling rate in Hz; defaults to ``config.fs_hz``.

    Notes
    -----
    ``scipy.signal.sosfilt`` along the time axis, all channels in one call, with the filter state
    ``zi`` of shape (n_sections, n_channels, 2) carried from one call to the next, so chunked output
    equals one-call output to rounding.

    Initial state: on the first sample of a stream each channel's state is set to the steady state
    of a constant input equal to that first sample (``sosfilt_zi(sos) * x[:, 0]``, Gustafsson's
    steady-state initial conditions as in ``scipy.signal.lfilter_zi``). The band-pass removes DC, so
    an electrode offset of hundreds of uV causes no start-up transient. The offline path runs the
    same object on the whole recording, so the initial state is identical offline and streaming.
    """

    def __init__(self, config: FrontendConfig, n_channels: int = 19, fs: float | None = None):
        self.n_channels = int(n_channels)
        self.sos = design_sos(config, fs)
        self._zi_unit = sosfilt_zi(self.sos)  # (n_sections, 2): steady state for a unit constant input
        self.reset()

    def reset(self) -> None:
        """Forget the stream: the next chunk's first sample sets the initial state again."""
        self._zi: np.ndarray | None = None

    def process(self, x: np.ndarray) -> np.ndarray:
        """Filter the next chunk of a stream.

        Parameters
        ----------
        x : ndarray, shape (n_channels, n_samples)
            The next samples (uV), finite; any length including 0.

        Returns
        -------
        y : ndarray of float64, shape (n_channels, n_samples)
            Filtered samples (uV). Sample ``t`` depends only on input samples ``<= t``.

        Raises
        ------
        ValueError
            If ``x`` is not 2-D with ``n_channels`` rows.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != self.n_channels:
            raise ValueError(f"filter bank expects chunks of shape ({self.n_channels}, n_samples), found {x.shape}")
        if x.shape[1] == 0:
            return np.empty_like(x)
        if self._zi is None:
            self._zi = self._zi_unit[:, None, :] * x[None, :, :1]
        y, self._zi = sosfilt(self.sos, x, axis=-1, zi=self._zi)
        return y
