"""Augmentations of training windows: amplitude scaling, additive noise, channel dropout, time shift,
left-right (hemisphere) flip.

Gain and noise act on the filtered signal in uV before normalisation (they model amplifiers and
electrodes); channel dropout acts on the normalised window (a lead off reads as a flat, zero channel
after normalisation); the time shift moves the window start (see :class:`ictal.training.sampler.WindowSampler`).
"""

from __future__ import annotations

import math

import numpy as np

from ictal.detector.montage import MONTAGES, channel_mirror, montage_channels
from ictal.training.config import AugmentConfig


def scale_and_noise(window: np.ndarray, config: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Random gain and white Gaussian noise on a filtered window.

    Parameters
    ----------
    window : ndarray of float32, shape (n_channels, n_times)
        Filtered EEG in uV.
    config : AugmentConfig
        ``amplitude_scale`` (gain drawn log-uniformly in that range, one per window) and
        ``noise_std_uv`` (noise standard deviation in uV).
    rng : numpy Generator
        Source of randomness (seeded per window for reproducible runs).

    Returns
    -------
    out : ndarray of float32, shape (n_channels, n_times)
        A new array; ``window`` is not modified.
    """
    low, high = config.amplitude_scale
    gain = math.exp(rng.uniform(math.log(low), math.log(high))) if high > low else low
    out = window.astype(np.float32, copy=True)
    out *= np.float32(gain)
    if config.noise_std_uv > 0:
        out += rng.normal(0.0, config.noise_std_uv, size=out.shape).astype(np.float32)
    return out


def channel_dropout(window: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
    """Zero each channel of a normalised window with probability ``p`` (never all of them).

    Parameters
    ----------
    window : ndarray of float32, shape (n_channels, n_times)
        Normalised model input; modified in place and returned.
    p : float
        Drop probability per channel, in [0, 1).
    rng : numpy Generator

    Returns
    -------
    window : ndarray of float32, shape (n_channels, n_times)
    """
    if p <= 0:
        return window
    drop = rng.random(window.shape[0]) < p
    if drop.all():
        drop[rng.integers(window.shape[0])] = False
    window[drop] = 0.0
    return window


def hemisphere_mirror(channels: tuple[str, ...] | list[str]) -> np.ndarray:
    """Row permutation that swaps the left and right hemispheres of electrodes or derivations.

    Left electrodes carry odd numbers and right ones even numbers (Fp1/Fp2, F3/F4, C3/C4, P3/P4,
    O1/O2, F7/F8, T3/T4, T5/T6: the international 10-20 system, Jasper 1958); midline electrodes
    (``z``) map to themselves. A derivation ``a-b`` maps to the derivation of the mirrored pair
    (``Fp1-F7`` <-> ``Fp2-F8``, ``Fz-Cz`` to itself): :func:`ictal.detector.montage.channel_mirror`.

    Parameters
    ----------
    channels : sequence of str
        Row names in row order (``detector.CANONICAL_CHANNELS`` or
        ``detector.montage.DOUBLE_BANANA_CHANNELS``).

    Returns
    -------
    permutation : ndarray of int, shape (n_channels,)
        ``window[permutation]`` is the mirrored window.

    Raises
    ------
    ValueError
        If a row's mirror is not among ``channels`` or a name has no side.
    """
    return channel_mirror(channels)


_MIRRORS: dict[str, np.ndarray] = {name: hemisphere_mirror(montage_channels(name)) for name in MONTAGES}


def montage_mirror(montage: str = "referential") -> np.ndarray:
    """The row permutation that mirrors a window of ``montage`` left to right, shape (n_rows,) int.

    Raises
    ------
    ValueError
        If ``montage`` is unknown (``detector.montage.montage_channels``).
    """
    return _MIRRORS[montage] if montage in _MIRRORS else hemisphere_mirror(montage_channels(montage))


def hemisphere_flip(window: np.ndarray, p: float, rng: np.random.Generator,
                    montage: str = "referential") -> np.ndarray:
    """Swap the left and right hemispheres of a window with probability ``p``.

    Parameters
    ----------
    window : ndarray, shape (n_channels, n_times)
        Rows of ``montage`` in its order (19 electrodes or 18 double-banana derivations).
    p : float
        Flip probability in [0, 1]; at 0 no random number is drawn.
    rng : numpy Generator
    montage : {"referential", "double_banana"}
        The window's montage (``FrontendConfig.montage``).

    Returns
    -------
    window : ndarray, shape (n_channels, n_times)
        The mirrored window (a new array) or ``window`` itself.

    Raises
    ------
    ValueError
        If the window's row count is not that of ``montage`` (both named).
    """
    mirror = montage_mirror(montage)
    if window.shape[0] != mirror.size:
        raise ValueError(f"hemisphere_flip: the {montage} montage has {mirror.size} rows, the window has "
                         f"{window.shape[0]} (shape {window.shape})")
    if p <= 0 or rng.random() >= p:
        return window
    return window[mirror]


def time_shift_samples(config: AugmentConfig, fs: float, rng: np.random.Generator) -> int:
    """Random shift of a window start, uniform in +/- ``time_shift_s`` seconds, in samples at ``fs`` Hz."""
    max_shift = int(round(config.time_shift_s * fs))
    return int(rng.integers(-max_shift, max_shift + 1)) if max_shift > 0 else 0


def synthetic_seizure_window(context: np.ndarray, context_labels: np.ndarray, lead: int, fs: float,
                             config: AugmentConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Inject one simulated evolving seizure into a background window, with labels that follow it.

    The cache holds the front-end's filtered signal (0.5-120 Hz band-pass, mains notch, 256 Hz);
    the injection acts on that. The simulated discharge (:func:`ictal.training.seizure_synthesis.inject_seizure`)
    is a chirp of 1.5-9 Hz with four phase-locked harmonics (at most 36 Hz), well inside the pass
    band, so adding it after the filter gives what filtering the sum would give (up to the front-end's
    edge effects, which lie outside that band).

    Parameters
    ----------
    context : ndarray of float32, shape (19, lead + n_window)
        Filtered EEG in uV of a recording whose labels are all background: ``lead`` samples before
        the window (as far back as the recording reaches, at most ``synthetic_seizure_max_lead_s``)
        followed by the window.
    context_labels : ndarray of int8, shape (lead + n_window,)
        Its labels (all 0 = background for an eligible recording).
    lead : int
        Samples of ``context`` before the window start.
    fs : float
        Sampling rate in Hz (256).
    config : AugmentConfig
        ``synthetic_seizure_duration_s``, ``synthetic_seizure_amplitude_ratio`` (drawn per seizure)
        and ``synthetic_seizure_min_inside_s`` (latest onset before the window end).
    rng : numpy Generator
        Source of every draw (deterministic for a seeded generator).

    Returns
    -------
    window : ndarray of float32, shape (19, n_window)
        The window with the seizure (and any post-ictal attenuation) added.
    labels : ndarray of int8, shape (n_window,)
        1 where the injected seizure runs, the input labels elsewhere.

    Raises
    ------
    ValueError
        If ``lead`` is negative or not shorter than ``context``.
    """
    from ictal.training.seizure_synthesis import SeizureSynthesisConfig, inject_seizure

    n_total = context.shape[1]
    n_window = n_total - lead
    if lead < 0 or n_window <= 0:
        raise ValueError(f"lead must lie in [0, {n_total}) (found {lead})")
    latest = max(lead, n_total - 1 - int(round(config.synthetic_seizure_min_inside_s * fs)))
    onset = int(rng.integers(0, latest + 1))
    synth = SeizureSynthesisConfig(duration_s=tuple(config.synthetic_seizure_duration_s),
                                   amplitude_ratio=tuple(config.synthetic_seizure_amplitude_ratio))
    augmented, injected, _ = inject_seizure(context, fs, onset, rng, synth)
    labels = np.where(injected == 1, np.int8(1), context_labels).astype(np.int8)
    return augmented[:, lead:], labels[lead:]
