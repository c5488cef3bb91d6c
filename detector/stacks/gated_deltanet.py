"""Gated DeltaNet sequence mixer, reference backend (pure PyTorch, chunked gated delta rule)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ictal.detector.stacks.conv import causal_depthwise_conv1d, causal_depthwise_conv1d_step
from ictal.detector.stacks.gated_delta import chunk_gated_delta_rule
from ictal.detector.stacks.mamba2 import init_dt_bias
from ictal.detector.stacks.norms import RMSNormGated


def _l2_normalise(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``x / sqrt(sum(x^2) + eps)`` over the last dimension (fla's ``l2norm``)."""
    return x * torch.rsqrt(x.pow(2).sum(dim=-1, keepdim=True) + eps)


class GatedDeltaNetMixer(nn.Module):
    """One causal Gated DeltaNet mixer with the parameter names and shapes of fla's ``GatedDeltaNet``.

    Parameters
    ----------
    d_model : int
        Width ``D`` of the input and output.
    head_dim : int
        Key dim per head ``K``.
    n_heads : int
        Heads ``H``.
    expand_v : int
        Value dim per head ``V = expand_v * K``.
    d_conv : int
        Kernel of the short causal convolutions of q, k and v.
    chunk_size : int
        Chunk length of the chunked gated delta rule.

    Notes
    -----
    Shapes:
        - input ``x``: (N, L, D)
        - output: (N, L, D)

    For every step t and head (causal: the output at t depends on inputs at steps <= t only):

    .. math::
        q_t &= \\mathrm{L2norm}(\\mathrm{SiLU}(\\mathrm{conv1d}(W_q x))_t), \\quad
        k_t = \\mathrm{L2norm}(\\mathrm{SiLU}(\\mathrm{conv1d}(W_k x))_t), \\quad
        v_t = \\mathrm{SiLU}(\\mathrm{conv1d}(W_v x))_t \\\\
        \\beta_t &= \\sigma(W_b x_t), \\quad g_t = -e^{A_{log}} \\mathrm{softplus}(W_a x_t + b_{dt}) \\\\
        S_t &= S_{t-1} e^{g_t} (I - \\beta_t k_t k_t^\\top) + \\beta_t v_t k_t^\\top, \\quad
        o_t = S_t q_t / \\sqrt{K} \\\\
        \\mathrm{out}_t &= W_o [\\mathrm{rms}(o_t) w \\odot \\mathrm{SiLU}(W_g x_t)]

    Parameters (state-dict keys): ``q_proj.weight``, ``k_proj.weight`` (H*K, D), ``v_proj.weight``,
    ``g_proj.weight`` (H*V, D), ``a_proj.weight``, ``b_proj.weight`` (H, D), ``A_log``, ``dt_bias`` (H,),
    ``q_conv1d.weight``, ``k_conv1d.weight`` (H*K, 1, d_conv), ``v_conv1d.weight`` (H*V, 1, d_conv),
    ``o_norm.weight`` (V,), ``o_proj.weight`` (D, H*V): those of ``fla.layers.GatedDeltaNet(
    hidden_size=D, expand_v, head_dim=K, num_heads=H, conv_size=d_conv)`` with its defaults
    (``use_gate=True``, ``use_short_conv=True``, ``conv_bias=False``).

    The attribute ``scan_impl`` ("chunked" or "naive") selects the scan; "naive" is the step-by-step
    recurrence, for tests only.

    References
    ----------
    Yang, S., Kautz, J. and Hatamizadeh, A. (2024). Gated Delta Networks: improving Mamba2 with delta
    rule. arXiv:2412.06464.
    """

    def __init__(
        self, d_model: int, head_dim: int, n_heads: int, expand_v: int, d_conv: int, chunk_size: int
    ) -> None:
        super().__init__()
        self.d_model, self.n_heads = d_model, n_heads
        self.head_k_dim, self.head_v_dim = head_dim, head_dim * expand_v
        self.key_dim, self.value_dim = n_heads * head_dim, n_heads * head_dim * expand_v
        self.d_conv, self.chunk_size = d_conv, chunk_size
        self.scan_impl = "chunked"
        self.q_proj = nn.Linear(d_model, self.key_dim, bias=False)
        self.k_proj = nn.Linear(d_model, self.key_dim, bias=False)
        self.v_proj = nn.Linear(d_model, self.value_dim, bias=False)
        self.a_proj = nn.Linear(d_model, n_heads, bias=False)
        self.b_proj = nn.Linear(d_model, n_heads, bias=False)
        self.A_log = nn.Parameter(torch.log(torch.empty(n_heads).uniform_(0.0, 16.0).clamp_(min=1e-4)))
        self.dt_bias = nn.Parameter(init_dt_bias(n_heads))
        self.q_conv1d = self._short_conv(self.key_dim)
        self.k_conv1d = self._short_conv(self.key_dim)
        self.v_conv1d = self._short_conv(self.value_dim)
        self.g_proj = nn.Linear(d_model, self.value_dim, bias=False)
        self.o_norm = RMSNormGated(self.head_v_dim, eps=1e-5, norm_before_gate=True)
        self.o_proj = nn.Linear(self.value_dim, d_model, bias=False)

    def _short_conv(self, channels: int) -> nn.Conv1d:
        # a module for the parameter layout only: forward runs causal_depthwise_conv1d on its weight
        return nn.Conv1d(
            channels, channels, self.d_conv, groups=channels, padding=self.d_conv - 1, bias=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, _ = x.shape
        h, dk, dv = self.n_heads, self.head_k_dim, self.head_v_dim
        qkv_weight = torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight], dim=0)
        conv_weight = torch.cat([self.q_conv1d.weight, self.k_conv1d.weight, self.v_conv1d.weight], dim=0)
        qkv = F.silu(causal_depthwise_conv1d(F.linear(x, qkv_weight), conv_weight))  # (N, L, 2HK + HV)
        q, k, v = qkv.split([self.key_dim, self.key_dim, self.value_dim], dim=-1)
        q = _l2_normalise(q.reshape(n, length, h, dk).float())
        k = _l2_normalise(k.reshape(n, length, h, dk).float())
        v = v.reshape(n, length, h, dv)
        beta = torch.sigmoid(self.b_proj(x).float())
        g = -torch.exp(self.A_log.float()) * F.softplus(self.a_proj(x).float() + self.dt_bias.float())
        if self.scan_impl == "chunked":
            o = chunk_gated_delta_rule(q, k, v, g, beta, dk**-0.5, self.chunk_size)
        elif self.scan_impl == "naive":
            from ictal.detector.stacks._naive import naive_gated_delta_rule

            o = naive_gated_delta_rule(q, k, v, g, beta, dk**-0.5)
        else:
            raise ValueError(f"scan_impl must be 'chunked' or 'naive' (found {self.scan_impl!r})")
        o = self.o_norm(o, self.g_proj(x).reshape(n, length, h, dv))
        return self.o_proj(o.reshape(n, length, self.value_dim))


def gated_deltanet_state_shapes(mixer: nn.Module) -> dict[str, tuple[int, ...]]:
    """Per-sequence shapes of the streaming state of a Gated DeltaNet mixer (either backend).

    Returns
    -------
    shapes : dict
        ``conv``: (d_conv - 1, 2HK + HV), the last inputs of the q, k, v convolutions; ``recurrent``:
        (H, K, V), the state :math:`S^\\top` of every head.
    """
    key_dim = mixer.q_proj.weight.shape[0]
    value_dim = mixer.v_proj.weight.shape[0]
    h = mixer.A_log.shape[0]
    d_conv = mixer.q_conv1d.weight.shape[-1]
    return {"conv": (d_conv - 1, 2 * key_dim + value_dim), "recurrent": (h, key_dim // h, value_dim // h)}


def gated_deltanet_step(
    mixer: nn.Module, x: torch.Tensor, state: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Run a Gated DeltaNet mixer over the next steps of its sequences, continuing from ``state``.

    The same computation as :meth:`GatedDeltaNetMixer.forward`, from the parameters alone, so it runs
    on the reference mixer and on fla's ``GatedDeltaNet`` (same parameter names and shapes) alike;
    streaming always uses this pure-PyTorch path.

    Parameters
    ----------
    mixer : GatedDeltaNetMixer or fla.layers.GatedDeltaNet
        The mixer whose parameters are used.
    x : Tensor, shape (N, L, D)
        The next L steps of N sequences.
    state : dict
        ``conv`` (N, d_conv - 1, 2HK + HV) and ``recurrent`` (N, H, K, V), as
        :func:`gated_deltanet_state_shapes`; zeros at the start of a sequence.

    Returns
    -------
    out : Tensor, shape (N, L, D)
        Equal (to float32 rounding) to the last L steps of the mixer over the whole sequence.
    state : dict
        The state after the last step.
    """
    n, length, _ = x.shape
    h, dk, dv = gated_deltanet_state_shapes(mixer)["recurrent"]
    key_dim, value_dim = h * dk, h * dv
    qkv_weight = torch.cat([mixer.q_proj.weight, mixer.k_proj.weight, mixer.v_proj.weight], dim=0)
    conv_weight = torch.cat([mixer.q_conv1d.weight, mixer.k_conv1d.weight, mixer.v_conv1d.weight], dim=0)
    qkv, conv_cache = causal_depthwise_conv1d_step(F.linear(x, qkv_weight), state["conv"], conv_weight)
    q, k, v = F.silu(qkv).split([key_dim, key_dim, value_dim], dim=-1)
    q = _l2_normalise(q.reshape(n, length, h, dk).float())
    k = _l2_normalise(k.reshape(n, length, h, dk).float())
    v = v.reshape(n, length, h, dv)
    beta = torch.sigmoid(mixer.b_proj(x).float())
    g = -torch.exp(mixer.A_log.float()) * F.softplus(mixer.a_proj(x).float() + mixer.dt_bias.float())
    chunk = min(getattr(mixer, "chunk_size", 64), length)  # short steps: no padding to a whole chunk
    o, recurrent = chunk_gated_delta_rule(
        q, k, v, g, beta, dk**-0.5, chunk, initial_state=state["recurrent"], return_final_state=True
    )
    o = mixer.o_norm(o, mixer.g_proj(x).reshape(n, length, h, dv))
    return mixer.o_proj(o.reshape(n, length, value_dim)), {"conv": conv_cache, "recurrent": recurrent}
