"""Stateful streaming polyphase resampler: any input rate to the detector rate."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy.signal import firwin, upfirdn

KAISER_BETA: float = 5.0
"""Kaiser window shape of the anti-aliasing filter (the value scipy.signal.resample_poly uses)."""

SMALL_CHUNK_OUTPUTS: int = 128
"""Chunks giving at most this many outputs are resampled by a direct polyphase gather (less per-call
work); longer ones by ``scipy.signal.upfirdn``. Both compute the same sums (equal to ~1e-13 relative)."""

MAX_FACTOR: int = 1000
"""Largest up/down factor of a resampling ratio (``StreamingResampler``'s default): the filter has
``2 * HALF_LENGTH_FACTOR * max(up, down) + 1`` taps (at most 20001, 160 kB) while each output still
costs about ``2 * HALF_LENGTH_FACTOR * down / up`` multiplications per channel."""

MIN_INPUT_FS_HZ: float = 100.0
"""Lowest input rate accepted for a bed (Hz): below 100 Hz the input's Nyquist frequency (< 50 Hz, minus
the anti-aliasing transition band) cuts into the 1-40 Hz rhythms (fast spikes, beta) the detector
reads; clinical EEG amplifiers sample at 128 Hz or more (the shared data: 200, 250, 256, 500 Hz)."""

MAX_INPUT_FS_HZ: float = 4096.0
"""Highest input rate accepted for a bed (Hz): 16 times the detector rate. Clinical EEG uses at most
2048 Hz; the cost of resampling grows with the input rate (about 2 * HALF_LENGTH_FACTOR multiplications per
input sample and channel), and a bed pulls at most 4096 samples per read (one second here)."""

HALF_LENGTH_FACTOR: int = 10
"""Half length of the anti-aliasing filter in samples at the upsampled rate, per unit of
``max(up, down)`` (as in scipy.signal.resample_poly): 10 zero crossings of the sinc each side."""


def rational_rate(fs_in: float, fs_out: float = 256.0, max_factor: int = MAX_FACTOR) -> float:
    """The rate nearest ``fs_in`` that :class:`StreamingResampler` converts to ``fs_out`` exactly.

    A nominal rate like 250.1 Hz makes the ratio 256 / 250.1 = 2560 / 2501, whose factors exceed
    ``max_factor``; the stream is then treated as sampled at ``fs_out * down / up``, with ``up / down``
    the best rational approximation of ``fs_out / fs_in`` whose numerator and denominator are both at
    most ``max_factor`` (continued fractions, ``fractions.Fraction.limit_denominator``).

    Precision: 250.1 Hz becomes 256 * 763 / 781 = 250.09987 Hz (relative error 5e-7). Over the
    supported range [``MIN_INPUT_FS_HZ``, ``MAX_INPUT_FS_HZ``] the relative error is at most 5.1e-4 (the
    worst of 20000 random rates: 3329.68 Hz becomes 13 * 256 = 3328 Hz); 250.1 and 499.9 Hz are
    within 1e-6, 511.99 Hz becomes 512 Hz (2e-5): the order of an amplifier's crystal drift (1e-4), far inside
    the 2 % at which ``streaming.sources.lsl`` reports a rate mismatch. Frequencies are shifted by this
    relative error; the times of samples are not (the LSL source dates every chunk by its timestamps).

    Parameters
    ----------
    fs_in : float
        Announced input rate in Hz (> 0, finite).
    fs_out : float
        Output rate in Hz (the detector's 256 Hz).
    max_factor : int
        Largest up/down factor allowed.

    Returns
    -------
    fs : float
        ``fs_in`` itself when its ratio to ``fs_out`` already has factors <= ``max_factor``, else the
        approximating rate (Hz).

    Raises
    ------
    ValueError
        If a rate is not positive and finite.
    """
    if not (fs_in > 0 and fs_out > 0 and np.isfinite(fs_in) and np.isfinite(fs_out)):
        raise ValueError(f"sampling rates must be positive and finite (found fs_in={fs_in}, fs_out={fs_out})")
    exact = Fraction(fs_out).limit_denominator(max_factor * 1000) / Fraction(fs_in).limit_denominator(
        max_factor * 1000
    )
    if exact.numerator <= max_factor and exact.denominator <= max_factor:
        return float(fs_in)
    ratio = fs_out / fs_in
    if ratio <= 1:  # numerator <= denominator <= max_factor
        approx = Fraction(ratio).limit_denominator(max_factor)
    else:
        approx = 1 / Fraction(1 / ratio).limit_denominator(max_factor)
    if approx == 0:  # fs_in above fs_out * max_factor: no ratio within the factors
        raise ValueError(
            f"resampling {fs_in} Hz to {fs_out} Hz needs a down factor above {max_factor}"
        )
    return fs_out * approx.denominator / approx.numerator


class StreamingResampler:
    """Rational polyphase resampler whose chunked output equals its one-call output.

    Parameters
    ----------
    fs_in : float
        Input sampling rate in Hz (> 0). Must be a rational multiple of ``fs_out`` with numerator and
        denominator at most ``max_factor`` (200, 250, 256, 400, 500, 512, 1000 Hz and most others).
    fs_out : float
        Output sampling rate in Hz (the detector's 256 Hz by default).
    n_channels : int
        Number of channels (rows) of every chunk.
    max_factor : int
        Largest up/down factor accepted. A rate without such a ratio (250.1 Hz) is refused here; the
        caller treats the stream as sampled at :func:`rational_rate` (what ``LslSource`` does).

    Raises
    ------
    ValueError
        If a rate is not positive or the ratio needs factors above ``max_factor``.

    Notes
    -----
    The signal is upsampled by ``up``, low-pass filtered by a Kaiser-windowed sinc FIR (cut-off at the
    lower of the two Nyquist frequencies, ``2 * HALF_LENGTH_FACTOR * max(up, down) + 1`` taps, the
    design of ``scipy.signal.resample_poly``) and downsampled by ``down``; only the non-zero products
    are computed (``scipy.signal.upfirdn``, polyphase). Unlike ``resample_poly`` the filter is applied
    causally: output sample ``k`` depends on input samples ``0 .. floor(k * down / up)`` only, so it is
    emitted as soon as that input has arrived, and the output lags the input by the filter's group
    delay :attr:`group_delay_s` (20 ms for 500 -> 256 Hz, 50 ms for 200 -> 256 Hz).

    Initial state: the input before the first sample is taken equal to the first sample (edge hold),
    so a DC offset causes no start-up transient. The state between calls is the tail of the input
    (the last ``ceil(n_taps / up)`` samples and at most ``down - 1`` more, to keep phase alignment).
    All arithmetic is float64; outputs are float64.
    """

    def __init__(self, fs_in: float, fs_out: float = 256.0, n_channels: int = 19, max_factor: int = MAX_FACTOR):
        if not (fs_in > 0 and fs_out > 0 and np.isfinite(fs_in) and np.isfinite(fs_out)):
            raise ValueError(f"sampling rates must be positive and finite (found fs_in={fs_in}, fs_out={fs_out})")
        in_frac = Fraction(fs_in).limit_denominator(max_factor * 1000)
        out_frac = Fraction(fs_out).limit_denominator(max_factor * 1000)
        if in_frac == 0 or out_frac == 0:  # a rate below 1 / (max_factor * 1000) Hz rounds to 0
            raise ValueError(
                f"sampling rates must be at least {1 / (max_factor * 1000):g} Hz (found fs_in={fs_in}, "
                f"fs_out={fs_out})"
            )
        ratio = out_frac / in_frac
        if ratio.numerator > max_factor or ratio.denominator > max_factor:
            raise ValueError(
                f"resampling {fs_in} Hz to {fs_out} Hz needs up/down factors {ratio.numerator}/"
                f"{ratio.denominator}; expected factors <= {max_factor}"
            )
        self.fs_in = float(fs_in)
        self.fs_out = float(fs_out)
        self.n_channels = int(n_channels)
        self.up = ratio.numerator
        self.down = ratio.denominator
        if self.up == self.down == 1:
            self.taps = np.ones(1)
        else:
            n_taps = 2 * HALF_LENGTH_FACTOR * max(self.up, self.down) + 1
            self.taps = firwin(n_taps, 1.0 / max(self.up, self.down), window=("kaiser", KAISER_BETA)) * self.up
        # Taps per polyphase branch: output k uses inputs floor(k*down/up) - (n_branch - 1) .. floor(k*down/up).
        self._n_branch = -(-len(self.taps) // self.up)
        # Polyphase branches, zero padded: branch[p, i] = taps[p + i * up].
        padded = np.zeros(self._n_branch * self.up)
        padded[: len(self.taps)] = self.taps
        self._branches = padded.reshape(self._n_branch, self.up).T.copy()
        self.reset()

    @property
    def group_delay_s(self) -> float:
        """Delay of the (linear-phase, causal) anti-aliasing filter in seconds."""
        return (len(self.taps) - 1) / 2 / (self.up * self.fs_in)

    def reset(self) -> None:
        """Forget the stream: the next chunk starts a new one (output index 0)."""
        self._buffer: np.ndarray | None = None  # input samples from absolute index self._start on
        self._start = 0  # absolute input index of self._buffer[:, 0]; always a multiple of self.down
        self._n_in = 0  # input samples received
        self._n_out = 0  # output samples emitted

    @property
    def n_out(self) -> int:
        """Output samples emitted since the last reset."""
        return self._n_out

    def n_out_for(self, n_in: int) -> int:
        """Output samples that ``n_in`` input samples give in total (chunking does not change it)."""
        return 0 if n_in <= 0 else ((n_in - 1) * self.up) // self.down + 1

    def process(self, x: np.ndarray) -> np.ndarray:
        """Resample the next chunk of a stream.

        Parameters
        ----------
        x : ndarray, shape (n_channels, n_samples_in)
            The next input samples at ``fs_in`` Hz (any length, including 0). Must be finite.

        Returns
        -------
        y : ndarray of float64, shape (n_channels, n_samples_out)
            The output samples at ``fs_out`` Hz that this chunk completes. Concatenating the outputs of
            successive calls equals the output of one call on the concatenated input.

        Raises
        ------
        ValueError
            If ``x`` is not 2-D with ``n_channels`` rows.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != self.n_channels:
            raise ValueError(
                f"resampler expects chunks of shape ({self.n_channels}, n_samples), found {x.shape}"
            )
        n = x.shape[1]
        if n == 0:
            return np.empty((self.n_channels, 0))
        if self.up == self.down == 1:
            self._n_in += n
            self._n_out += n
            return x.copy()
        if self._buffer is None:
            # Edge hold: the input before sample 0 equals sample 0. Start at a multiple of `down`.
            history = -(-(self._n_branch - 1) // self.down) * self.down
            self._start = -history
            self._buffer = np.repeat(x[:, :1], history, axis=1)
        buffer = np.concatenate([self._buffer, x], axis=1)
        self._n_in += n
        n_out_total = self.n_out_for(self._n_in)
        if n_out_total - self._n_out <= SMALL_CHUNK_OUTPUTS:
            y = self._polyphase_gather(buffer, self._n_out, n_out_total)
        else:
            # upfirdn output j of the buffer is absolute output k = j + start * up / down.
            offset = self._start * self.up // self.down
            full = upfirdn(self.taps, buffer, self.up, self.down, axis=1)
            y = full[:, self._n_out - offset : n_out_total - offset]
        self._n_out = n_out_total
        # Keep the input the next output needs, from a multiple of `down` on.
        first_needed = (self._n_out * self.down) // self.up - (self._n_branch - 1)
        new_start = (first_needed // self.down) * self.down
        self._buffer = buffer[:, new_start - self._start :]
        self._start = new_start
        return y

    def _polyphase_gather(self, buffer: np.ndarray, k_first: int, k_end: int) -> np.ndarray:
        """Outputs ``k_first .. k_end - 1`` computed directly from their polyphase branches.

        The same sums as ``upfirdn`` (to float rounding, ~1e-13 relative), without computing the outputs
        that the kept history alone would give: cheaper for the short chunks of a live stream.
        """
        k = np.arange(k_first, k_end)
        newest = (k * self.down) // self.up - self._start  # buffer column of each output's newest input
        phase = (k * self.down) % self.up
        columns = newest[:, None] - np.arange(self._n_branch)[None, :]  # (n_out, n_branch)
        return np.einsum("cmk,mk->cm", buffer[:, columns], self._branches[phase])
