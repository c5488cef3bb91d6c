"""Mamba2 sequence mixer, reference backend (pure PyTorch, chunked SSD scan)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ictal.detector.stacks.conv import causal_depthwise_conv1d, causal_depthwise_conv1d_step
from ictal.detector.stacks.norms import RMSNormGated
from ictal.detector.stacks.ssd import ssd_chunked_scan


def init_dt_bias(
    n_heads: int, dt_min: float = 1e-3, dt_max: float = 0.1, floor: float = 1e-4
) -> torch.Tensor:
    """Inverse-softplus of step sizes drawn log-uniformly in [dt_min, dt_max] (Mamba2's initialisation)."""
    dt = torch.exp(torch.rand(n_heads) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
    dt = dt.clamp(min=floor)
    return dt + torch.log(-torch.expm1(-dt))


class Mamba2Mixer(nn.Module):
    """One causal Mamba2 mixer with the parameter names and shapes of ``mamba_ssm.Mamba2``.

    Parameters
    ----------
    d_model : int
        Width ``D`` of the input and output.
    d_state : int
        State size ``S``.
    n_heads : int
        Heads ``H``; the head dim is ``P = expand * d_model / n_heads``.
    expand : int
        Inner width ``E = expand * d_model``.
    d_conv : int
        Kernel of the causal depthwise convolution over (x, B, C).
    chunk_size : int
        Chunk length of the SSD scan.

    Notes
    -----
    Shapes:
        - input ``u``: (N, L, D)
        - output: (N, L, D)

    Computes, for every step t (causal: the output at t depends on inputs at steps <= t only):

    .. math::
        (z, \\tilde x, \\tilde B, \\tilde C, \\tilde\\Delta) &= W_{in} u \\\\
        (x, B, C) &= \\mathrm{SiLU}(\\mathrm{conv1d}(\\tilde x, \\tilde B, \\tilde C)) \\\\
        \\Delta &= \\mathrm{softplus}(\\tilde\\Delta + b_\\Delta), \\quad A = -e^{A_{log}} \\\\
        y &= \\mathrm{SSD}(x, \\Delta, A, B, C) + D x \\\\
        \\mathrm{out} &= W_{out} \\, \\mathrm{rms}(y \\odot \\mathrm{SiLU}(z)) \\, w

    Parameters (state-dict keys): ``in_proj.weight`` (2E+2S+H, D), ``conv1d.weight`` (E+2S, 1, d_conv),
    ``conv1d.bias`` (E+2S,), ``dt_bias`` (H,), ``A_log`` (H,), ``D`` (H,), ``norm.weight`` (E,),
    ``out_proj.weight`` (D, E): those of ``mamba_ssm.Mamba2(d_model, d_state, d_conv, expand=expand,
    headdim=P, ngroups=1, bias=False, conv_bias=True)``.

    The attribute ``scan_impl`` ("chunked" or "naive") selects the scan; "naive" is the step-by-step
    recurrence, for tests only.

    References
    ----------
    Dao, T. and Gu, A. (2024). Transformers are SSMs: generalized models and efficient algorithms
    through structured state space duality. arXiv:2405.21060.
    """

    def __init__(
        self, d_model: int, d_state: int, n_heads: int, expand: int, d_conv: int, chunk_size: int
    ) -> None:
        super().__init__()
        d_inner = expand * d_model
        if d_inner % n_heads:
            raise ValueError(
                f"Mamba2 inner width expand * d_model = {d_inner} must be divisible by n_heads "
                f"(found n_heads={n_heads})"
            )
        self.d_model, self.d_state, self.d_inner = d_model, d_state, d_inner
        self.n_heads, self.headdim = n_heads, d_inner // n_heads
        self.d_conv, self.chunk_size = d_conv, chunk_size
        self.scan_impl = "chunked"
        conv_dim = d_inner + 2 * d_state
        self.in_proj = nn.Linear(d_model, 2 * d_inner + 2 * d_state + n_heads, bias=False)
        # nn.Conv1d for the parameter layout only: forward runs causal_depthwise_conv1d on its weight
        self.conv1d = nn.Conv1d(conv_dim, conv_dim, d_conv, groups=conv_dim, padding=d_conv - 1, bias=True)
        self.dt_bias = nn.Parameter(init_dt_bias(n_heads))
        self.A_log = nn.Parameter(torch.log(torch.empty(n_heads).uniform_(1.0, 16.0)))
        self.D = nn.Parameter(torch.ones(n_heads))
        self.norm = RMSNormGated(d_inner, eps=1e-5, norm_before_gate=False)
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        n, length, _ = u.shape
        e, s, h = self.d_inner, self.d_state, self.n_heads
        z, xbc, dt = torch.split(self.in_proj(u), [e, e + 2 * s, h], dim=-1)
        xbc = F.silu(causal_depthwise_conv1d(xbc, self.conv1d.weight, self.conv1d.bias))
        x, B, C = torch.split(xbc, [e, s, s], dim=-1)
        dt = F.softplus(dt.float() + self.dt_bias.float())
        A = -torch.exp(self.A_log.float())
        x = x.reshape(n, length, h, self.headdim)
        if self.scan_impl == "chunked":
            y = ssd_chunked_scan(x, dt, A, B, C, self.chunk_size)
        elif self.scan_impl == "naive":
            from ictal.detector.stacks._naive import naive_ssd_scan

            y = naive_ssd_scan(x, dt, A, B, C)
        else:
            raise ValueError(f"scan_impl must be 'chunked' or 'naive' (found {self.scan_impl!r})")
        y = y + x * self.D.to(y.dtype).unsqueeze(-1)
        y = self.norm(y.reshape(n, length, e), z)
        return self.out_proj(y)


def mamba2_state_shapes(mixer: nn.Module) -> dict[str, tuple[int, ...]]:
    """Per-sequence shapes of the streaming state of a Mamba2 mixer (either backend).

    Returns
    -------
    shapes : dict
        ``conv``: (d_conv - 1, E + 2S), the last inputs of the depthwise convolution; ``ssm``:
        (H, S, P), the state :math:`h^\\top` of every head.
    """
    conv_dim, _, d_conv = mixer.conv1d.weight.shape
    e = mixer.out_proj.weight.shape[1]
    h = mixer.A_log.shape[0]
    s = (conv_dim - e) // 2
    return {"conv": (d_conv - 1, conv_dim), "ssm": (h, s, e // h)}


def mamba2_step(
    mixer: nn.Module, u: torch.Tensor, state: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Run a Mamba2 mixer over the next steps of its sequences, continuing from ``state``.

    The same computation as :meth:`Mamba2Mixer.forward`, from the parameters alone, so it runs on the
    reference mixer and on ``mamba_ssm.Mamba2`` (same parameter names and shapes) alike; streaming
    always uses this pure-PyTorch path.

    Parameters
    ----------
    mixer : Mamba2Mixer or mamba_ssm.Mamba2
        The mixer whose parameters are used.
    u : Tensor, shape (N, L, D)
        The next L steps of N sequences.
    state : dict
        ``conv`` (N, d_conv - 1, E + 2S) and ``ssm`` (N, H, S, P), as :func:`mamba2_state_shapes`;
        zeros at the start of a sequence.

    Returns
    -------
    out : Tensor, shape (N, L, D)
        Equal (to float32 rounding) to the last L steps of the mixer over the whole sequence.
    state : dict
        The state after the last step.
    """
    n, length, _ = u.shape
    shapes = mamba2_state_shapes(mixer)
    h, s, p = shapes["ssm"]
    e = h * p
    z, xbc, dt = torch.split(mixer.in_proj(u), [e, e + 2 * s, h], dim=-1)
    xbc, conv_cache = causal_depthwise_conv1d_step(xbc, state["conv"], mixer.conv1d.weight, mixer.conv1d.bias)
    xbc = F.silu(xbc)
    x, B, C = torch.split(xbc, [e, s, s], dim=-1)
    dt = F.softplus(dt.float() + mixer.dt_bias.float())
    A = -torch.exp(mixer.A_log.float())
    x = x.reshape(n, length, h, p)
    chunk = min(getattr(mixer, "chunk_size", 64), length)  # short steps: no padding to a whole chunk
    y, ssm = ssd_chunked_scan(x, dt, A, B, C, chunk, initial_state=state["ssm"], return_final_state=True)
    y = y + x * mixer.D.to(y.dtype).unsqueeze(-1)
    y = mixer.norm(y.reshape(n, length, e), z)
    return mixer.out_proj(y), {"conv": conv_cache, "ssm": ssm}
