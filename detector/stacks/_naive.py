"""Step-by-step recurrences of the two scans: slow, obviously correct, for tests only."""

from __future__ import annotations

import torch


def naive_ssd_scan(
    x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor
) -> torch.Tensor:
    """Mamba2 recurrence one step at a time.

    ``h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T``, ``y_t = h_t C_t``.

    Shapes: x (N, L, H, P), dt (N, L, H), A (H,), B and C (N, L, S) -> y (N, L, H, P). Float32.
    """
    dtype = x.dtype
    x, dt, A, B, C = (t.float() for t in (x, dt, A, B, C))
    n, length, h, p = x.shape
    state = x.new_zeros(n, h, p, B.shape[-1])
    ys = []
    for t in range(length):
        decay = torch.exp(dt[:, t] * A)  # (N, H)
        inp = (dt[:, t, :, None] * x[:, t]).unsqueeze(-1) * B[:, t, None, None, :]  # (N, H, P, S)
        state = decay[:, :, None, None] * state + inp
        ys.append(state @ C[:, t, None, :, None])  # (N, H, P, 1)
    return torch.stack(ys, dim=1).squeeze(-1).to(dtype)


def naive_gated_delta_rule(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor, scale: float
) -> torch.Tensor:
    """Gated delta rule one step at a time.

    ``S_t = S_{t-1} exp(g_t) (I - beta_t k_t k_t^T) + beta_t v_t k_t^T``, ``o_t = S_t (scale q_t)``.

    Shapes: q and k (N, L, H, K), v (N, L, H, V), g and beta (N, L, H) -> o (N, L, H, V). Float32.
    """
    dtype = v.dtype
    q, k, v, g, beta = (t.float() for t in (q, k, v, g, beta))
    n, length, h, dk = k.shape
    state = v.new_zeros(n, h, v.shape[-1], dk)  # (N, H, V, K)
    eye = torch.eye(dk, dtype=v.dtype)
    outs = []
    for t in range(length):
        kt, b = k[:, t], beta[:, t, :, None, None]  # (N, H, K), (N, H, 1, 1)
        transition = eye - b * kt.unsqueeze(-1) * kt.unsqueeze(-2)  # (N, H, K, K)
        state = torch.exp(g[:, t])[:, :, None, None] * state @ transition
        state = state + b * v[:, t].unsqueeze(-1) * kt.unsqueeze(-2)
        outs.append(state @ (scale * q[:, t]).unsqueeze(-1))
    return torch.stack(outs, dim=1).squeeze(-1).to(dtype)
