"""The chunked SSD scan of Mamba2 in pure PyTorch (scalar decay per head, one group of B and C)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _pad_to_chunks(t: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """Zero-pad dimension 1 (time) of ``t`` to a multiple of ``chunk_size``."""
    pad = (-t.shape[1]) % chunk_size
    if pad == 0:
        return t
    widths = [0, 0] * (t.dim() - 2) + [0, pad]
    return F.pad(t, widths)


def _causal_decay(a_cumsum: torch.Tensor) -> torch.Tensor:
    """exp(a_cumsum[..., t] - a_cumsum[..., s]) for s <= t, 0 above the diagonal: (..., Q) -> (..., Q, Q)."""
    q = a_cumsum.shape[-1]
    lower = torch.ones(q, q, dtype=torch.bool, device=a_cumsum.device).tril()
    diff = a_cumsum.unsqueeze(-1) - a_cumsum.unsqueeze(-2)
    return diff.masked_fill_(~lower, float("-inf")).exp_()


def ssd_chunked_scan(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    chunk_size: int = 64,
    initial_state: torch.Tensor | None = None,
    return_final_state: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Selective state-space scan of Mamba2, computed chunk by chunk in the SSD (dual) form.

    Parameters
    ----------
    x : Tensor, shape (N, L, H, P)
        Inputs, ``H`` heads of ``P`` channels.
    dt : Tensor, shape (N, L, H)
        Positive step sizes (already ``softplus(dt + dt_bias)``).
    A : Tensor, shape (H,)
        Negative decay rate per head.
    B, C : Tensor, shape (N, L, S)
        Input and output projections of the state (one group shared by all heads).
    chunk_size : int
        Chunk length ``Q``; ``L`` need not be a multiple of it.
    initial_state : Tensor, shape (N, H, S, P), optional
        State :math:`h_0^\\top` before the first step (float32); zeros when None.
    return_final_state : bool
        Also return the state after the last step, to continue the scan (streaming).

    Returns
    -------
    y : Tensor, shape (N, L, H, P)
        Scan output, without the ``D`` skip term, in the dtype of ``x``.
    final_state : Tensor, shape (N, H, S, P)
        Only with ``return_final_state``: :math:`h_L^\\top` in float32. Scanning a sequence in pieces,
        each started from the previous piece's final state, gives the outputs of one scan over the
        whole sequence (to float32 rounding).

    Notes
    -----
    Shapes:
        - ``N`` sequences, ``L`` steps, ``H`` heads, ``P`` head dim, ``S`` state size, ``Q`` chunk length
        - input: as above; output ``y``: (N, L, H, P)

    The recurrence, per head, with state :math:`h_t \\in \\mathbb{R}^{P \\times S}`:

    .. math::
        h_t = e^{\\Delta_t A} h_{t-1} + \\Delta_t x_t B_t^\\top, \\qquad y_t = h_t C_t.

    Within a chunk the output is the masked "attention" form
    :math:`y = (C B^\\top \\odot \\mathcal{L}) (\\Delta x)` with
    :math:`\\mathcal{L}_{ts} = \\exp(\\sum_{r=s+1}^{t} \\Delta_r A)` for :math:`s \\le t`; the states at
    chunk boundaries are passed between chunks by one (n_chunks+1)^2 decay matrix, so the whole scan is
    batched matrix products, without a loop over time or over chunks. Computed in float32; memory is
    O(N H L Q), never (L, L).

    References
    ----------
    Dao, T. and Gu, A. (2024). Transformers are SSMs: generalized models and efficient algorithms
    through structured state space duality. arXiv:2405.21060.
    """
    dtype = x.dtype
    n, length, h, p = x.shape
    q = chunk_size
    x, dt, B, C = (_pad_to_chunks(t.float(), q) for t in (x, dt, B, C))
    c = x.shape[1] // q
    s = B.shape[-1]
    # chunked layouts: heads before chunks so that matmuls batch over (N, H, c)
    xdt = (x * dt.unsqueeze(-1)).view(n, c, q, h, p).permute(0, 3, 1, 2, 4).contiguous()  # (N, H, c, Q, P)
    a = (dt * A.float()).view(n, c, q, h).permute(0, 3, 1, 2)  # (N, H, c, Q)
    a_cumsum = torch.cumsum(a, dim=-1)
    Bc = B.view(n, 1, c, q, s)
    Cc = C.view(n, 1, c, q, s)

    # 1. intra-chunk (diagonal blocks): (C B^T * decay) @ (dt x)
    cb = Cc @ Bc.transpose(-1, -2)  # (N, 1, c, Q, Q)
    y = (cb * _causal_decay(a_cumsum)) @ xdt  # (N, H, c, Q, P)

    # 2. state contributed by each chunk at its end: sum_s exp(a_end - a_s) B_s (dt x)_s^T
    decay_to_end = torch.exp(a_cumsum[..., -1:] - a_cumsum)  # (N, H, c, Q)
    chunk_states = Bc.transpose(-1, -2) @ (xdt * decay_to_end.unsqueeze(-1))  # (N, H, c, S, P)

    # 3. states entering each chunk: decayed sums over the previous chunks (one small matrix)
    totals = F.pad(a_cumsum[..., -1], (1, 0))  # (N, H, c+1), totals[0] = 0
    chunk_decay = _causal_decay(torch.cumsum(totals, dim=-1))  # (N, H, c+1, c+1)
    padded = F.pad(chunk_states.reshape(n, h, c, s * p), (0, 0, 1, 0))  # (N, H, c+1, S*P)
    if initial_state is not None:
        padded[:, :, 0] = initial_state.float().reshape(n, h, s * p)
    passed = chunk_decay @ padded  # (N, H, c+1, S*P): row i enters chunk i, row c leaves the last
    entering = passed[:, :, :c].view(n, h, c, s, p)  # (N, H, c, S, P)

    # 4. contribution of the entering state to every step of its chunk
    y = y + (Cc @ entering) * torch.exp(a_cumsum).unsqueeze(-1)
    y = y.permute(0, 2, 3, 1, 4).reshape(n, c * q, h, p)[:, :length].to(dtype)
    if return_final_state:
        # padded steps have dt = 0: no decay and no input, so the state leaving the last chunk is h_L
        return y, passed[:, :, c].view(n, h, s, p)
    return y
