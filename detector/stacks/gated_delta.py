"""The chunked gated delta rule in pure PyTorch (WY/UT-transform form)."""

from __future__ import annotations

import torch

from ictal.detector.stacks.ssd import _pad_to_chunks


def chunk_gated_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    scale: float,
    chunk_size: int = 64,
    initial_state: torch.Tensor | None = None,
    return_final_state: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Gated delta rule over a whole sequence, computed chunk by chunk.

    Parameters
    ----------
    q, k : Tensor, shape (N, L, H, K)
        Queries and keys (L2-normalised by the caller).
    v : Tensor, shape (N, L, H, V)
        Values.
    g : Tensor, shape (N, L, H)
        Log decay per step (<= 0).
    beta : Tensor, shape (N, L, H)
        Writing strength per step, in (0, 1).
    scale : float
        Factor applied to the queries (``K ** -0.5`` upstream).
    chunk_size : int
        Chunk length ``Q``; ``L`` need not be a multiple of it.
    initial_state : Tensor, shape (N, H, K, V), optional
        :math:`S_0^\\top` (float32); zeros when None.
    return_final_state : bool
        Also return :math:`S_L^\\top`, to continue the recurrence (streaming).

    Returns
    -------
    o : Tensor, shape (N, L, H, V)
        Outputs, in the dtype of ``v``.
    final_state : Tensor, shape (N, H, K, V)
        Only with ``return_final_state``: :math:`S_L^\\top` in float32. Running a sequence in pieces,
        each started from the previous piece's final state, gives the outputs of one run over the whole
        sequence (to float32 rounding).

    Notes
    -----
    Shapes:
        - ``N`` sequences, ``L`` steps, ``H`` heads, ``K`` key dim, ``V`` value dim, ``Q`` chunk length
        - inputs and output as above

    The recurrence, per head, with state :math:`S_t \\in \\mathbb{R}^{V \\times K}` and :math:`S_0 = 0`:

    .. math::
        S_t = S_{t-1} e^{g_t} (I - \\beta_t k_t k_t^\\top) + \\beta_t v_t k_t^\\top, \\qquad
        o_t = S_t (\\mathrm{scale} \\cdot q_t).

    Writing :math:`S_t = e^{g_t} S_{t-1} + u_t k_t^\\top` with
    :math:`u_t = \\beta_t (v_t - e^{g_t} S_{t-1} k_t)`, and :math:`\\gamma_t = \\exp\\sum_{r \\le t} g_r`
    within a chunk entering with state :math:`S_0`, the pseudo-values of the chunk solve one unit lower
    triangular system (the UT transform):

    .. math::
        (I + A) U = \\mathrm{diag}(\\beta) V - \\mathrm{diag}(\\beta \\gamma) K S_0^\\top, \\quad
        A_{ti} = \\beta_t \\tfrac{\\gamma_t}{\\gamma_i} k_t^\\top k_i \\; (i < t),

    so :math:`U = U_0 - W S_0^\\top`. The outputs are
    :math:`O = \\mathrm{diag}(\\gamma) Q S_0^\\top + (Q K^\\top \\odot \\Gamma) U` with
    :math:`\\Gamma_{ti} = \\gamma_t / \\gamma_i` (:math:`i \\le t`) and the state leaving the chunk is the
    affine map :math:`S_Q^\\top = (\\gamma_Q I - \\tilde K^\\top W) S_0^\\top + \\tilde K^\\top U_0`,
    :math:`\\tilde K = \\mathrm{diag}(\\gamma_Q / \\gamma) K`. Everything but this (K, K) x (K, V)
    state hand-over is batched over all chunks; the hand-over is a loop of L / Q small batched matmuls.
    All decay factors are exponentials of non-positive numbers. Computed in float32.

    References
    ----------
    Yang, S., Kautz, J. and Hatamizadeh, A. (2024). Gated Delta Networks: improving Mamba2 with delta
    rule. arXiv:2412.06464.
    Yang, S., Wang, B., Zhang, Y., Shen, Y. and Kim, Y. (2024). Parallelizing linear transformers with
    the delta rule over sequence length. arXiv:2406.06484.
    """
    dtype = v.dtype
    n, length, h, dk = k.shape
    dv = v.shape[-1]
    cq = chunk_size
    q, k, v, g, beta = (_pad_to_chunks(t.float(), cq) for t in (q, k, v, g, beta))
    c = k.shape[1] // cq

    def chunks(t: torch.Tensor) -> torch.Tensor:  # (N, c*Q, H, ...) -> (N, H, c, Q, ...)
        t = t.view(n, c, cq, h, *t.shape[3:])
        return t.permute(0, 3, 1, 2, *range(4, t.dim())).contiguous()

    q, k, v = chunks(q) * scale, chunks(k), chunks(v)  # (N, H, c, Q, K|V)
    g, beta = chunks(g), chunks(beta)  # (N, H, c, Q)
    g_cumsum = torch.cumsum(g, dim=-1)
    # decay[t, i] = gamma_t / gamma_i for i <= t, 0 above the diagonal (exponent <= 0 where kept)
    lower = torch.ones(cq, cq, dtype=torch.bool, device=k.device).tril()
    decay = (g_cumsum.unsqueeze(-1) - g_cumsum.unsqueeze(-2)).masked_fill_(~lower, float("-inf")).exp_()

    # UT transform: solve (I + A) [U0, W] = [beta V, beta gamma K] for all chunks at once; the solver
    # reads only the strictly lower part of `a` (unit diagonal), which is A
    beta_ = beta.unsqueeze(-1)
    a = ((beta_ * k) @ k.transpose(-1, -2)) * decay
    gamma = torch.exp(g_cumsum).unsqueeze(-1)  # (N, H, c, Q, 1)
    rhs = torch.cat([beta_ * v, (beta_ * gamma) * k], dim=-1)
    u0, w = torch.linalg.solve_triangular(a, rhs, upper=False, unitriangular=True).split([dv, dk], dim=-1)

    # state hand-over between chunks: S_next^T = M S^T + b
    gamma_end = gamma[..., -1:, :]  # (N, H, c, 1, 1)
    k_to_end = k * torch.exp(g_cumsum[..., -1:] - g_cumsum).unsqueeze(-1)  # (N, H, c, Q, K)
    eye_k = torch.eye(dk, dtype=k.dtype, device=k.device)
    transition = gamma_end * eye_k - k_to_end.transpose(-1, -2) @ w  # (N, H, c, K, K)
    offset = k_to_end.transpose(-1, -2) @ u0  # (N, H, c, K, V)
    states = [k.new_zeros(n, h, dk, dv) if initial_state is None else initial_state.float().reshape(n, h, dk, dv)]
    for i in range(c - 1 + int(return_final_state)):
        states.append(
            torch.baddbmm(
                offset[:, :, i].reshape(-1, dk, dv),
                transition[:, :, i].reshape(-1, dk, dk),
                states[-1].reshape(-1, dk, dv),
            ).view(n, h, dk, dv)
        )
    # padded steps have g = 0 and beta = 0 (identity transition), so the state after chunk c - 1 is S_L
    final_state = states.pop() if return_final_state else None
    entering = torch.stack(states, dim=2)  # (N, H, c, K, V): S^T entering each chunk

    # outputs of all chunks at once
    u = u0 - w @ entering
    o = (q * gamma) @ entering + ((q @ k.transpose(-1, -2)) * decay) @ u  # (N, H, c, Q, V)
    o = o.permute(0, 2, 3, 1, 4).reshape(n, c * cq, h, dv)[:, :length].to(dtype)
    if return_final_state:
        return o, final_state
    return o
