"""Simulated electrographic seizures injected into real background EEG (training augmentation only).

Real labelled seizures are scarce in ``../shared/data`` (seven rated recordings), so the demo
checkpoint enlarges its seizure class by adding synthetic ictal patterns to real seizure-free EEG.
Results are always reported on real data only; the synthetic patterns never enter an evaluation.

The pattern follows the textbook evolution of a focal electrographic seizure (Schomer & Lopes da
Silva, "Niedermeyer's Electroencephalography", 7th ed., ch. 26; the ACNS critical-care EEG
terminology, Hirsch et al., J Clin Neurophysiol 2021: "evolution" = a sustained change in frequency,
morphology or location):

- a rhythmic discharge that starts focally at one electrode and spreads to its neighbours with a
  delay proportional to their scalp distance;
- a frequency that decreases over the seizure (e.g. 7 Hz -> 2.5 Hz), an exponential chirp;
- an amplitude that grows from a low-voltage onset to a plateau and falls at the offset;
- a sharp (spike-and-wave-like) morphology from phase-locked harmonics;
- an optional post-ictal attenuation of the background after the offset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ictal.detector import CANONICAL_CHANNELS
from ictal.detector.montage import ELECTRODE_POSITIONS

# used only to order the spread of a focal discharge
ELECTRODE_XY = np.array([ELECTRODE_POSITIONS[name] for name in CANONICAL_CHANNELS], dtype=np.float64)
"""Scalp positions, shape (19, 2), in the canonical channel order."""


@dataclass(frozen=True)
class SeizureSynthesisConfig:
    """Ranges from which each synthetic seizure draws its parameters (uniformly).

    Attributes
    ----------
    duration_s : (float, float)
        Seizure duration in seconds; electrographic seizures last >= 10 s by definition.
    start_freq_hz, end_freq_hz : (float, float)
        Discharge frequency at onset and at offset in Hz (the chirp goes from one to the other).
    amplitude_ratio : (float, float)
        Plateau amplitude as a multiple of the channel's background standard deviation.
    spread_s : (float, float)
        Delay in seconds for the discharge to reach the farthest electrode from the focus.
    generalised_probability : float
        Share of seizures that start on all channels at once instead of focally.
    postictal_attenuation : (float, float)
        Factor applied to the background for 10 s after the offset (1 = none).
    harmonics : int
        Harmonics of the discharge waveform; more gives sharper spikes.
    """

    duration_s: tuple[float, float] = (15.0, 90.0)
    start_freq_hz: tuple[float, float] = (4.0, 9.0)
    end_freq_hz: tuple[float, float] = (1.5, 4.0)
    amplitude_ratio: tuple[float, float] = (1.5, 5.0)
    spread_s: tuple[float, float] = (2.0, 15.0)
    generalised_probability: float = 0.25
    postictal_attenuation: tuple[float, float] = (0.3, 1.0)
    harmonics: int = 4


@dataclass(frozen=True)
class InjectedSeizure:
    """What was injected, for labels and for tests.

    Attributes
    ----------
    onset_sample, offset_sample : int
        First and one-past-last sample of the seizure (at the signal's rate).
    focus : str or None
        Channel where the discharge starts; None for a generalised onset.
    start_freq_hz, end_freq_hz : float
        Discharge frequency at onset and offset, in Hz.
    channel_onset_samples : ndarray of int, shape (19,)
        Sample at which each channel joins the discharge.
    """

    onset_sample: int
    offset_sample: int
    focus: str | None
    start_freq_hz: float
    end_freq_hz: float
    channel_onset_samples: np.ndarray


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    low, high = bounds
    return float(rng.uniform(low, high)) if high > low else float(low)


def inject_seizure(
    signal: np.ndarray,
    fs: float,
    onset_sample: int,
    rng: np.random.Generator,
    config: SeizureSynthesisConfig | None = None,
) -> tuple[np.ndarray, np.ndarray, InjectedSeizure]:
    """Add one simulated evolving seizure to a real background recording.

    Parameters
    ----------
    signal : ndarray of float32, shape (19, n_samples)
        Seizure-free EEG in microvolts, canonical channel order, at ``fs`` Hz.
    fs : float
        Sampling rate in Hz.
    onset_sample : int
        Sample at which the seizure starts (0 <= onset_sample < n_samples). A seizure that would run
        past the end of the signal is cut there.
    rng : numpy.random.Generator
        Source of every random draw (the result is deterministic for a seeded generator).
    config : SeizureSynthesisConfig, optional
        Parameter ranges; the defaults describe adult focal-to-bilateral seizures.

    Returns
    -------
    augmented : ndarray of float32, shape (19, n_samples)
        ``signal`` plus the discharge (and with post-ictal attenuation of the background).
    labels : ndarray of int8, shape (n_samples,)
        1 from the seizure onset (the first channel's onset) to its offset, 0 elsewhere.
    seizure : InjectedSeizure
        The drawn parameters.

    Raises
    ------
    ValueError
        If ``signal`` is not (19, n) or ``onset_sample`` lies outside it.

    Notes
    -----
    Each channel c joins at ``onset + delay_c`` where ``delay_c`` grows linearly with its scalp
    distance from the focus. The instantaneous frequency is the exponential chirp
    ``f(t) = f0 (f1 / f0)^(t / T)`` and the phase its integral; the waveform is
    ``sum_h h^-1.2 cos(h phi)`` (harmonics phase-locked: sharp, spike-like peaks), scaled to the
    channel's background standard deviation times the drawn ratio, under a raised-cosine envelope
    with a low-voltage onset.
    """
    config = config or SeizureSynthesisConfig()
    if signal.ndim != 2 or signal.shape[0] != len(CANONICAL_CHANNELS):
        raise ValueError(f"signal must have shape (19, n_samples) (found {signal.shape})")
    n_samples = signal.shape[1]
    if not 0 <= onset_sample < n_samples:
        raise ValueError(f"onset_sample must lie in [0, {n_samples}) (found {onset_sample})")

    duration = _uniform(rng, config.duration_s)
    f0 = _uniform(rng, config.start_freq_hz)
    f1 = min(_uniform(rng, config.end_freq_hz), f0)
    ratio = _uniform(rng, config.amplitude_ratio)
    spread = _uniform(rng, config.spread_s)
    generalised = rng.random() < config.generalised_probability

    if generalised:
        focus = None
        delays_s = rng.uniform(0.0, 0.3, size=len(CANONICAL_CHANNELS))
    else:
        focus_index = int(rng.integers(len(CANONICAL_CHANNELS)))
        focus = CANONICAL_CHANNELS[focus_index]
        distance = np.linalg.norm(ELECTRODE_XY - ELECTRODE_XY[focus_index], axis=1)
        delays_s = spread * distance / distance.max()

    offset_sample = min(n_samples, onset_sample + int(round(duration * fs)))
    span = offset_sample - onset_sample
    t = np.arange(span) / fs
    # Exponential chirp from f0 to f1 over the full (uncut) duration, and its phase.
    rate = np.log(f1 / f0) / duration if f1 < f0 else 0.0
    if rate != 0.0:
        phase = 2 * np.pi * f0 * np.expm1(rate * t) / rate
    else:
        phase = 2 * np.pi * f0 * t

    background_std = signal[:, max(0, onset_sample - int(10 * fs)):offset_sample].std(axis=1)
    background_std = np.where(background_std > 1e-3, background_std, 10.0)

    augmented = signal.astype(np.float64, copy=True)
    channel_onsets = np.empty(len(CANONICAL_CHANNELS), dtype=np.int64)
    harmonics = np.arange(1, config.harmonics + 1)
    weights = harmonics ** -1.2
    for c in range(len(CANONICAL_CHANNELS)):
        start = int(round(delays_s[c] * fs))
        channel_onsets[c] = onset_sample + start
        if start >= span:
            continue
        local_t = t[start:] - t[start]
        local_duration = duration - delays_s[c]
        # Raised-cosine envelope: low-voltage onset (first 25%), plateau, decline (last 15%).
        rise = np.clip(local_t / (0.25 * local_duration), 0, 1)
        fall = np.clip((local_duration - local_t) / (0.15 * local_duration), 0, 1)
        envelope = 0.5 * (1 - np.cos(np.pi * rise)) * 0.5 * (1 - np.cos(np.pi * fall))
        lag = rng.uniform(-0.3, 0.3)  # small per-channel phase lag (radians)
        wave = (weights[:, None] * np.cos(harmonics[:, None] * (phase[start:] + lag))).sum(axis=0)
        wave /= np.abs(wave).max()
        gain = ratio * background_std[c] * rng.uniform(0.7, 1.0)
        augmented[c, onset_sample + start:offset_sample] += gain * envelope * wave

    attenuation = _uniform(rng, config.postictal_attenuation)
    post_end = min(n_samples, offset_sample + int(10 * fs))
    if offset_sample < post_end and attenuation < 1.0:
        ramp = np.linspace(attenuation, 1.0, post_end - offset_sample)
        augmented[:, offset_sample:post_end] *= ramp

    labels = np.zeros(n_samples, dtype=np.int8)
    labels[onset_sample:offset_sample] = 1
    seizure = InjectedSeizure(onset_sample, offset_sample, focus, f0, f1, channel_onsets)
    return augmented.astype(np.float32), labels, seizure
