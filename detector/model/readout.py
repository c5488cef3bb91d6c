"""Read-out over electrodes: attention and max pooling of the fused features."""

from __future__ import annotations

import torch
from torch import nn


class ElectrodeReadout(nn.Module):
    r"""Pool the N electrodes of every step into one vector (a seizure may involve any electrode).

    .. math::
        \beta_{n,t} = \mathrm{softmax}_n(v^\top f_{n,t}), \qquad
        r_t = \Big[\sum_n \beta_{n,t} f_{n,t} \,\Big\|\, \max_n f_{n,t}\Big]

    Parameters
    ----------
    d_in : int
        Fused feature width :math:`D_g`.

    Shapes:
        - **input:** :math:`(B, L, N, D_g)`
        - **output:** :math:`(B, 2 D_g, L)`

    References
    ----------
    Ilse, Tomczak, Welling (2018). Attention-based deep multiple instance learning. ICML.
    """

    def __init__(self, d_in: int) -> None:
        super().__init__()
        self.score = nn.Linear(d_in, 1)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        """Pool ``f`` (B, L, N, D_g) to (B, 2 D_g, L)."""
        beta = torch.softmax(self.score(f).float(), dim=2).to(f.dtype)
        pooled = torch.cat([(beta * f).sum(2), f.amax(2)], dim=-1)
        return pooled.transpose(1, 2)
