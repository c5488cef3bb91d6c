"""Causal depthwise convolution over time in the (N, L, C) layout."""

from __future__ import annotations

import torch


def causal_depthwise_conv1d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """Depthwise convolution of each channel with its own kernel, looking only at the past.

    Parameters
    ----------
    x : Tensor, shape (N, L, C)
        Input sequences.
    weight : Tensor, shape (C, 1, W)
        One kernel per channel, in ``nn.Conv1d(C, C, W, groups=C)`` layout (tap ``W - 1`` is the
        current step).
    bias : Tensor of shape (C,), optional
        Added to every step.

    Returns
    -------
    y : Tensor, shape (N, L, C)
        :math:`y_{t,c} = b_c + \\sum_{j=0}^{W-1} w_{c,j} \\, x_{t-(W-1)+j,\\,c}` with :math:`x_{<0} = 0`:
        exactly ``nn.Conv1d(C, C, W, groups=C, padding=W-1)`` on the transposed input, cut to the first
        L steps.

    Notes
    -----
    Shapes:
        - input ``x``: (N, L, C); output: (N, L, C)

    W shifted multiply-adds in the (N, L, C) layout the projections produce, which avoids the two
    transposes (and the slow depthwise path of the CPU convolution) around ``nn.Conv1d``.

    References
    ----------
    Dao, T. and Gu, A. (2024). Transformers are SSMs. arXiv:2405.21060 (the short convolution of Mamba2).
    """
    width, length = weight.shape[-1], x.shape[1]
    taps = weight[:, 0].t()  # (W, C)
    y = x * taps[width - 1]
    for j in range(width - 1):
        shift = width - 1 - j
        if shift < length:
            y[:, shift:].addcmul_(x[:, : length - shift], taps[j])
    return y if bias is None else y + bias


def causal_depthwise_conv1d_step(
    x: torch.Tensor, cache: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`causal_depthwise_conv1d` continued from the last ``W - 1`` inputs of the previous call.

    Parameters
    ----------
    x : Tensor, shape (N, L, C)
        The new steps (L >= 1).
    cache : Tensor, shape (N, W - 1, C)
        The ``W - 1`` inputs before ``x`` (zeros at the start of a sequence).
    weight, bias
        As in :func:`causal_depthwise_conv1d`.

    Returns
    -------
    y : Tensor, shape (N, L, C)
        Equal to the last L steps of the convolution over the whole sequence.
    cache : Tensor, shape (N, W - 1, C)
        The last ``W - 1`` inputs, for the next call.
    """
    width = weight.shape[-1]
    if width == 1:
        return causal_depthwise_conv1d(x, weight, bias), cache
    full = torch.cat([cache.to(x.dtype), x], dim=1)
    y = causal_depthwise_conv1d(full, weight, bias)[:, width - 1 :]
    return y, full[:, -(width - 1) :]
