"""The output-position contract: which per-sample probabilities a scored window yields.

One function decides it, for every part of ictal that reads the model: training takes its loss there
(``training.losses.served_position_loss``), the daemon and ``ictal evaluate`` stitch it (``streaming.pipeline``,
``streaming.bed``), dev validation and ``ictal tune`` score recordings through it.

The contract
------------
A window of ``W`` samples that ends at absolute sample ``t`` (exclusive: its newest sample is
``t - 1``) yields the probabilities of the samples::

    [t - lookahead - hop, t - lookahead)

and of no other sample. ``hop`` is the scheduler's hop (``hop_s * 256`` samples) and ``lookahead`` the
checkpoint's ``lookahead_s * 256`` (>= 0). Windows end on a hop grid, so successive windows yield
contiguous spans and every sample of the stream gets exactly one probability, computed once and never
revised. A probability at sample ``s`` is thus computed with between ``lookahead`` and
``lookahead + hop`` samples of future signal, never more; with ``lookahead = 0`` the model is read at
the newest hop of its window, where the daemon reads it.

Every window follows the contract: the first window of a stream and the left-padded warm-up windows
(``streaming.bed``; less than 60 s of history, zeros on the left after normalisation) included. A
padded window's span is further clipped to the samples it really holds. The first probability of a
stream that started at ``origin`` and is scored from ``min_history`` samples of history therefore lies
at ``origin + min_history - lookahead - hop`` (or at ``origin`` when that is negative).

Position inside a window
------------------------
The span is the same place of every window: offsets ``[W - lookahead - hop, W - lookahead)``
(:func:`served_offsets`). Training reads the model's logits there, so the
output the daemon reads is the output the loss trains.

Times in events
---------------
The probability at sample ``s`` is known when the window ending at ``t`` (its span holding ``s``) has
been scored; ``t`` is also the stream time at which an alarm decided on that span can leave the
daemon (its *decision time*, ``window_end_s`` in alarm events).
"""

from __future__ import annotations

import math

from ictal.detector import FS_HZ, WINDOW_SAMPLES

MAX_LOOKAHEAD_S: float = 30.0
"""Largest lookahead a checkpoint may declare (s): beyond half a window an alarm would wait longer
for its future context than the 10 s a clinically useful detection allows, and the served span would
sit in the middle of the window, where the seeds' whole-window model already reads well."""


def seconds_to_samples(value_s: float, name: str, fs: float = FS_HZ) -> int:
    """A duration in seconds as a whole number of samples.

    Parameters
    ----------
    value_s : float
        Duration in seconds.
    name : str
        What it is (for the error message), e.g. ``"lookahead_s"``.
    fs : float, default 256
        Rate in Hz.

    Returns
    -------
    n : int
        ``value_s * fs`` as an integer.

    Raises
    ------
    ValueError
        If ``value_s`` is not finite or not a whole number of samples at ``fs``.
    """
    if not math.isfinite(value_s):
        raise ValueError(f"{name} must be finite (found {value_s})")
    n = round(value_s * fs)
    if abs(n - value_s * fs) > 1e-6:
        raise ValueError(f"{name} must be a whole number of samples at {fs:g} Hz (found {value_s} s)")
    return int(n)


def check_positions(hop_samples: int, lookahead_samples: int, window_samples: int = WINDOW_SAMPLES) -> None:
    """Validate a hop and a lookahead for windows of ``window_samples``.

    Raises
    ------
    ValueError
        If ``hop_samples`` < 1, ``lookahead_samples`` < 0, or the span does not fit in the window
        (``hop_samples + lookahead_samples > window_samples``).
    """
    if hop_samples < 1:
        raise ValueError(f"hop must be at least one sample (found {hop_samples})")
    if lookahead_samples < 0:
        raise ValueError(f"lookahead must be >= 0 samples (found {lookahead_samples})")
    if hop_samples + lookahead_samples > window_samples:
        raise ValueError(
            f"hop + lookahead ({hop_samples} + {lookahead_samples} samples) must fit in the window "
            f"({window_samples} samples)"
        )


def served_span(end_index: int, hop_samples: int, lookahead_samples: int,
                window_samples: int = WINDOW_SAMPLES) -> tuple[int, int]:
    """The samples whose probabilities a window yields (the contract of this module).

    Parameters
    ----------
    end_index : int
        Absolute index one past the window's newest sample (``t``).
    hop_samples : int
        Samples between successive window ends.
    lookahead_samples : int
        The checkpoint's lookahead in samples (>= 0).
    window_samples : int, default 15360

    Returns
    -------
    lo, hi : int
        The span ``[t - lookahead - hop, t - lookahead)`` in absolute indices.

    Raises
    ------
    ValueError
        As :func:`check_positions`.
    """
    check_positions(hop_samples, lookahead_samples, window_samples)
    hi = int(end_index) - int(lookahead_samples)
    return hi - int(hop_samples), hi


def served_offsets(hop_samples: int, lookahead_samples: int,
                   window_samples: int = WINDOW_SAMPLES) -> tuple[int, int]:
    """Offsets inside a window of the span it yields: ``served_span`` of a window ending at ``W``.

    Returns
    -------
    lo, hi : int
        ``(W - lookahead - hop, W - lookahead)``, with ``0 <= lo < hi <= W``.
    """
    return served_span(window_samples, hop_samples, lookahead_samples, window_samples)


def first_served_index(origin: int, min_history_samples: int, hop_samples: int, lookahead_samples: int) -> int:
    """Index of the first probability of a stream scored from ``min_history_samples`` of history.

    Parameters
    ----------
    origin : int
        Absolute index of the stream's (or the segment's, after a long gap) first sample.
    min_history_samples, hop_samples, lookahead_samples : int

    Returns
    -------
    index : int
        ``max(origin, origin + min_history - lookahead - hop)``: the start of the first window's span,
        clipped to the samples that exist.
    """
    return max(int(origin), int(origin) + int(min_history_samples) - int(lookahead_samples) - int(hop_samples))
