"""A bidirectional stack: residual blocks, each running one mixer forward and one on the reversed sequence."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def _mixer_output(out: torch.Tensor | tuple) -> torch.Tensor:
    """fla's GatedDeltaNet returns (output, attentions, cache); every other mixer returns the output."""
    return out[0] if isinstance(out, tuple) else out


class BidirectionalBlock(nn.Module):
    """Pre-norm residual block with a forward mixer and a backward mixer (separate parameters), summed.

    Parameters
    ----------
    d_model : int
        Width ``D``.
    make_mixer : callable
        Returns a new causal mixer (N, L, D) -> (N, L, D); called twice.
    norm_eps : float
        Epsilon of the RMS pre-norm.

    Notes
    -----
    Shapes:
        - input ``x``: (N, L, D)
        - output: (N, L, D)

    .. math::
        h = \\mathrm{RMSNorm}(x), \\qquad
        \\mathrm{out} = x + f(h) + R\\,b(R\\,h)

    where :math:`f` and :math:`b` are the forward and backward mixers and :math:`R` reverses the time
    axis. :math:`f` sees the past, :math:`R b R` the future, so the output at t depends on the whole
    sequence. Summing (rather than concatenating and projecting) adds no parameters; each mixer already
    ends in its own output projection.

    References
    ----------
    Zhu, L. et al. (2024). Vision Mamba: efficient visual representation learning with bidirectional
    state space model. arXiv:2401.09417.
    """

    def __init__(self, d_model: int, make_mixer: Callable[[], nn.Module], norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = nn.RMSNorm(d_model, eps=norm_eps)
        self.forward_mixer = make_mixer()
        self.backward_mixer = make_mixer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        fwd = _mixer_output(self.forward_mixer(h))
        bwd = _mixer_output(self.backward_mixer(h.flip(1))).flip(1)
        return x + fwd + bwd


class BidirectionalStack(nn.Module):
    """``n_layers`` bidirectional blocks followed by a final RMS norm.

    Parameters
    ----------
    d_model : int
        Width ``D``.
    n_layers : int
        Number of :class:`BidirectionalBlock`.
    make_mixer : callable
        Returns a new causal mixer (N, L, D) -> (N, L, D).
    stack : str
        Name recorded on the module (``bimamba2`` or ``gated_deltanet``).
    backend : str
        Backend recorded on the module (``reference`` or ``fused``).

    Notes
    -----
    Shapes:
        - input: (N, L, D), N independent sequences of L steps
        - output: (N, L, D)

    :math:`x_{l+1} = \\mathrm{Block}_l(x_l)`, output :math:`\\mathrm{RMSNorm}(x_{n\\_layers})`.
    State-dict keys: ``layers.{i}.norm.weight``, ``layers.{i}.forward_mixer.*``,
    ``layers.{i}.backward_mixer.*``, ``norm_f.weight``; the mixer keys are the same on both backends.

    References
    ----------
    Zhu, L. et al. (2024). Vision Mamba: efficient visual representation learning with bidirectional
    state space model. arXiv:2401.09417.
    """

    def __init__(
        self,
        d_model: int,
        n_layers: int,
        make_mixer: Callable[[], nn.Module],
        stack: str,
        backend: str,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.d_model, self.stack, self.backend = d_model, stack, backend
        self.layers = nn.ModuleList(
            BidirectionalBlock(d_model, make_mixer, norm_eps) for _ in range(n_layers)
        )
        self.norm_f = nn.RMSNorm(d_model, eps=norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(
                f"{self.stack} stack input must have shape (N, L, {self.d_model}) (found {tuple(x.shape)})"
            )
        for layer in self.layers:
            x = layer(x)
        return self.norm_f(x)
