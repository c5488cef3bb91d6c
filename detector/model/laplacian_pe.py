"""Dynamic Laplacian positional encoding: one batched eigendecomposition over all graphs."""

from __future__ import annotations

import torch
from torch import nn


class LaplacianPE(nn.Module):
    r"""Eigenvectors of the smallest eigenvalues of the normalised Laplacian of every graph.

    .. math::
        A_\tau = A + \frac{\tau}{N} \mathbf{1}\mathbf{1}^\top, \quad
        \tau = \rho \, \frac{\mathbf{1}^\top A \mathbf{1}}{N}, \qquad
        \mathcal{L} = I - D^{-1/2} A_\tau D^{-1/2}, \qquad \mathcal{L} = U \Lambda U^\top, \qquad
        \mathrm{PE} = U_{:, 1:k}\, \mathrm{diag}(\sigma)

    with :math:`D = \mathrm{diag}(A_\tau \mathbf{1})` (a zero degree gives a zero row of
    :math:`D^{-1/2}`) and eigenvalues ascending. The regularisation :math:`\rho` (default 0.1 of the
    mean degree, spread over all pairs) keeps every graph connected: a top-k graph often falls apart
    into components, whose zero eigenvalues would be repeated, and the eigenvectors of a repeated
    eigenvalue are any rotation of each other, so rounding noise (e.g. another batch size) could
    change the encoding completely; with :math:`\rho > 0` the components appear as the next smallest
    eigenvalues, separated by a gap of the order of :math:`\rho`. All :math:`G = B \cdot L` graphs go
    through ONE
    batched fp32 ``torch.linalg.eigh`` (no loop over graphs, autocast off). Eigenvectors are defined up
    to sign; the sign :math:`\sigma_j` makes the entry of largest magnitude of each eigenvector
    positive. Within a repeated eigenvalue (e.g. a disconnected graph, one zero eigenvalue per
    component) the basis is whatever eigh returns: orthonormal and finite, but not unique. The encoding
    is detached: no gradient flows back into the adjacency (the gradient of eigh is unbounded at
    repeated eigenvalues).

    The nodes are those of the input montage (19 electrodes or 18 double-banana derivations,
    ``detector.montage``): the encoding depends on the graph only, never on node positions.

    Parameters
    ----------
    k : int
        Eigenvectors kept, :math:`k \le N`.
    regularisation : float
        :math:`\rho \ge 0`; 0 gives the plain normalised Laplacian of :math:`A`.

    Shapes:
        - **input:** :math:`(B, L, N, N)` symmetric non-negative adjacency
        - **output:** :math:`(B, L, N, k)` float32, ``requires_grad`` False

    References
    ----------
    Qin, Rohe (2013). Regularized spectral clustering under the degree-corrected stochastic
    blockmodel. NeurIPS. arXiv:1309.4111.
    Dwivedi et al. (2023). Benchmarking graph neural networks. JMLR 24(43). arXiv:2003.00982.
    Belkin, Niyogi (2003). Laplacian eigenmaps for dimensionality reduction and data representation.
    """

    def __init__(self, k: int, regularisation: float = 0.1) -> None:
        super().__init__()
        if regularisation < 0:
            raise ValueError(f"regularisation must be non-negative (found {regularisation})")
        self.k = k
        self.regularisation = regularisation

    @staticmethod
    def normalised_laplacian(adjacency: torch.Tensor) -> torch.Tensor:
        """Symmetric normalised Laplacian of (..., N, N) adjacencies, same shape."""
        degree = adjacency.sum(-1)
        inv_sqrt = torch.where(degree > 0, degree.clamp_min(1e-12).rsqrt(), torch.zeros_like(degree))
        eye = torch.eye(adjacency.shape[-1], dtype=adjacency.dtype, device=adjacency.device)
        return eye - inv_sqrt[..., :, None] * adjacency * inv_sqrt[..., None, :]

    def eigendecomposition(self, adjacency: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sign-fixed eigenpairs of the (regularised) normalised Laplacians.

        Parameters
        ----------
        adjacency : Tensor of shape (B, L, N, N)
            Symmetric non-negative adjacencies.

        Returns
        -------
        eigenvalues : Tensor of float32, shape (B, L, N)
            Ascending.
        eigenvectors : Tensor of float32, shape (B, L, N, N)
            Columns are orthonormal eigenvectors, each with its largest-magnitude entry positive.
        """
        *batch, n, _ = adjacency.shape
        if self.k > n:
            raise ValueError(f"k = {self.k} eigenvectors requested from graphs of {n} nodes")
        with torch.no_grad(), torch.autocast(adjacency.device.type, enabled=False):
            adjacency = adjacency.detach().float()
            if self.regularisation > 0:
                tau = self.regularisation * adjacency.sum((-1, -2), keepdim=True) / n
                adjacency = adjacency + tau / n
            laplacian = self.normalised_laplacian(adjacency).reshape(-1, n, n)
            values, vectors = torch.linalg.eigh(laplacian)
            peak = vectors.abs().argmax(dim=-2, keepdim=True)
            sign = torch.sign(vectors.gather(-2, peak))
            vectors = vectors * torch.where(sign == 0, torch.ones_like(sign), sign)
        return values.reshape(*batch, n), vectors.reshape(*batch, n, n)

    def forward(self, adjacency: torch.Tensor) -> torch.Tensor:
        """Map adjacencies (B, L, N, N) to positional encodings (B, L, N, k)."""
        return self.eigendecomposition(adjacency)[1][..., : self.k]
