"""Per-sample losses with unknown labels masked out: focal loss and weighted binary cross-entropy."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def _masked_mean(per_sample: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    count = known.sum()
    if count == 0:
        # No labelled sample in the batch: a zero that keeps the graph (every rank still calls backward).
        return per_sample.sum() * 0.0
    return (per_sample * known).sum() / count


def focal_loss(logits: torch.Tensor, labels: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Binary focal loss over labelled samples.

    Parameters
    ----------
    logits : Tensor of float, shape (B, T)
        Per-sample seizure logits.
    labels : Tensor of int, shape (B, T)
        1 seizure, 0 background, -1 unknown (masked: contributes nothing, not even to the mean).
    alpha : float
        Weight of the seizure class (background gets ``1 - alpha``).
    gamma : float
        Focusing exponent; 0 gives alpha-weighted cross-entropy.

    Returns
    -------
    loss : Tensor, shape ()
        Mean over labelled samples (0 when there is none).

    Raises
    ------
    ValueError
        If shapes differ.

    Notes
    -----
    ``FL(p_t) = -alpha_t (1 - p_t)^gamma log(p_t)`` with ``p_t`` the probability of the true class,
    computed from logits in float32 for stability.

    References
    ----------
    Lin T.-Y., Goyal P., Girshick R., He K., Dollar P., "Focal Loss for Dense Object Detection",
    ICCV 2017.
    """
    if logits.shape != labels.shape:
        raise ValueError(f"logits and labels must have one shape (found {tuple(logits.shape)} and "
                         f"{tuple(labels.shape)})")
    logits = logits.float()
    known = (labels >= 0).to(logits.dtype)
    target = labels.clamp(min=0).to(logits.dtype)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * target + (1 - p) * (1 - target)
    alpha_t = alpha * target + (1 - alpha) * (1 - target)
    return _masked_mean(alpha_t * (1 - p_t).pow(gamma) * ce, known)


def weighted_bce(logits: torch.Tensor, labels: torch.Tensor, pos_weight: float = 1.0) -> torch.Tensor:
    """Binary cross-entropy over labelled samples, seizure samples weighted by ``pos_weight``.

    Parameters
    ----------
    logits : Tensor of float, shape (B, T)
    labels : Tensor of int, shape (B, T)
        1 seizure, 0 background, -1 unknown (masked).
    pos_weight : float
        Weight of seizure samples relative to background ones.

    Returns
    -------
    loss : Tensor, shape ()
        Mean over labelled samples (0 when there is none).

    Raises
    ------
    ValueError
        If shapes differ.
    """
    if logits.shape != labels.shape:
        raise ValueError(f"logits and labels must have one shape (found {tuple(logits.shape)} and "
                         f"{tuple(labels.shape)})")
    logits = logits.float()
    known = (labels >= 0).to(logits.dtype)
    target = labels.clamp(min=0).to(logits.dtype)
    weight = 1 + (pos_weight - 1) * target
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return _masked_mean(weight * ce, known)


def loss_from_config(optim) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss an ``OptimConfig`` names, as ``loss(logits (B, T), labels (B, T)) -> scalar tensor``."""
    if optim.loss == "focal":
        return lambda logits, labels: focal_loss(logits, labels, optim.focal_alpha, optim.focal_gamma)
    return lambda logits, labels: weighted_bce(logits, labels, optim.pos_weight)


def causal_served_offsets(min_history_samples: int, hop_samples: int, n_times: int) -> tuple[int, int]:
    """Offsets of a window that a causal model is trained on: every sample stream mode would serve.

    Parameters
    ----------
    min_history_samples : int
        The daemon's ``min_history_s`` in samples (2560 = 10 s).
    hop_samples : int
        The daemon's ``hop_s`` in samples (1024 = 4 s).
    n_times : int
        Window length in samples (15360).

    Returns
    -------
    lo, hi : int
        ``(max(0, min_history - hop), n_times)``: ``lo`` is
        ``detector.output_position.first_served_index(0, min_history, hop, 0)``.

    Raises
    ------
    ValueError
        If ``lo`` is not below ``n_times``.

    Notes
    -----
    In stream mode (``detector.mode: stream``) the daemon steps a causal model hop by hop and serves
    every sample of every hop, lookahead 0: the probability of sample ``t`` is computed from samples
    up to ``t`` only, with the state carried from the bed's connection. Its hops end on window mode's
    grid, the first ``min_history`` after the connection, so the first probability of a stream (and
    of a state rebuilt after a gap, which replays ``min_history`` of the ring buffer) is at
    ``first_served_index(origin, min_history, hop, 0) = origin + min_history - hop``: every later
    sample is served, each with at least ``min_history - hop`` of signal before it. A training window
    is a stretch of such a stream started at its first real sample, so its served positions are the
    offsets from ``min_history - hop`` after that sample to its end; window mode's served span (the
    newest hop) lies inside them. A left-padded window's span starts after its padding:
    :class:`ictal.training.sampler.WindowDataset` masks the labels there.
    """
    from ictal.detector.output_position import first_served_index

    lo, hi = first_served_index(0, int(min_history_samples), int(hop_samples), 0), int(n_times)
    if not lo < hi:
        raise ValueError(f"the first served sample of a causal window ({lo}: min_history {min_history_samples} "
                         f"- hop {hop_samples}) must lie inside the window ({hi} samples)")
    return lo, hi


def served_position_loss(loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], serving,
                         n_times: int, direction: str = "bidirectional",
                         ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The training loss taken where the daemon reads the model (``detector.output_position``).

    Parameters
    ----------
    loss : callable
        ``loss(logits (B, T), labels (B, T)) -> scalar`` (e.g. :func:`loss_from_config`).
    serving : training.config.ServingConfig
        ``loss_positions``, ``hop_s``, ``lookahead_s``, ``min_history_s``, ``whole_window_loss_weight``.
    n_times : int
        Window length in samples (15360).
    direction : {"bidirectional", "causal"}
        The model's ``ModelConfig.direction``.

    Returns
    -------
    loss_fn : callable
        ``loss_fn(logits (B, n_times), labels (B, n_times)) -> scalar``: with ``loss_positions:
        served``, ``loss`` over the served offsets plus ``whole_window_loss_weight`` times ``loss`` over
        the whole window; with ``window``, ``loss`` over the whole window. The served offsets are
        ``[n_times - lookahead - hop, n_times - lookahead)`` for a bidirectional model (the offsets of
        ``detector.output_position.served_offsets``, the very function the daemon's stitching uses)
        and ``[min_history - hop, n_times)`` for a causal one (:func:`causal_served_offsets`). They are
        attached as ``loss_fn.served_offsets``.

    Raises
    ------
    ValueError
        If ``direction`` is unknown, or (causal) ``serving.lookahead_s`` is not 0.
    """
    if direction not in ("bidirectional", "causal"):
        raise ValueError(f"direction must be 'bidirectional' or 'causal' (found {direction!r})")
    if serving.loss_positions == "window":
        return loss
    from ictal.detector import FS_HZ
    from ictal.detector.output_position import seconds_to_samples, served_offsets

    if direction == "causal":
        if serving.lookahead_s != 0:
            raise ValueError(f"a causal model is served with lookahead 0 (found serving.lookahead_s "
                             f"{serving.lookahead_s})")
        lo, hi = causal_served_offsets(int(round(serving.min_history_s * FS_HZ)),
                                       seconds_to_samples(serving.hop_s, "serving.hop_s"), n_times)
    else:
        lo, hi = served_offsets(seconds_to_samples(serving.hop_s, "serving.hop_s"),
                                seconds_to_samples(serving.lookahead_s, "serving.lookahead_s"), n_times)
    weight = float(serving.whole_window_loss_weight)

    def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        value = loss(logits[:, lo:hi], labels[:, lo:hi])
        if weight > 0:
            value = value + weight * loss(logits, labels)
        return value

    loss_fn.served_offsets = (lo, hi)  # type: ignore[attr-defined]
    return loss_fn
