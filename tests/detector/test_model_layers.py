"""The layers of the time-then-graph detector, one behaviour at a time."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from ictal.detector.config import StackConfig
from ictal.detector.model import (
    DynamicAdjacency,
    EdgeStream,
    GraphNetwork,
    LaplacianPE,
    TCNEncoder,
    batched_edges,
    pair_index,
)
from ictal.detector.model import _stack as stack_module


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("n_times", [16, 64, 256])
def test_tcn_downsamples_by_16_for_any_multiple_of_16(n_times):
    encoder = TCNEncoder(19, [4, 6, 8, 10], 3, [1, 8], dropout=0.0)
    z = encoder(torch.randn(2, 19, n_times))
    assert z.shape == (2, 10, n_times // 16)


def test_tcn_is_centred_so_a_step_sees_later_samples_of_the_window():
    encoder = TCNEncoder(19, [4, 4, 4, 4], 3, [1, 2], dropout=0.0).eval()
    x = torch.randn(1, 19, 256)
    y = x.clone()
    y[..., 200:] += 1.0
    z_x, z_y = encoder(x), encoder(y)
    # step 10 covers samples 160..175: it changes only through future context
    assert not torch.allclose(z_x[..., 10], z_y[..., 10])
    assert torch.allclose(z_x[..., :2], z_y[..., :2])  # the receptive field is finite


def test_pair_index_lists_the_171_unordered_pairs():
    rows, cols = pair_index(19)
    assert rows.shape == (171,)
    assert bool((rows < cols).all())
    assert len({(int(r), int(c)) for r, c in zip(rows, cols, strict=True)}) == 171


def _weights(batch=2, length=3, n=19):
    return torch.rand(batch, length, n * (n - 1) // 2) + 0.01


def test_adjacency_is_symmetric_with_top_k_edges_of_the_pair_weights():
    weights = _weights()
    top_k = 3
    adjacency = DynamicAdjacency(19, top_k)(weights)
    full = DynamicAdjacency(19, top_k).dense(weights)
    assert adjacency.shape == (2, 3, 19, 19)
    assert torch.equal(adjacency, adjacency.transpose(-1, -2))
    assert torch.all(torch.diagonal(adjacency, dim1=-2, dim2=-1) == 0)  # nobody isolated here
    kept = adjacency > 0
    ranks = full.argsort(dim=-1, descending=True).argsort(dim=-1)  # rank of j in row i
    in_top = ranks < top_k
    assert torch.equal(kept, in_top | in_top.transpose(-1, -2))
    assert torch.equal(adjacency[kept], full[kept])
    assert bool((kept.sum(-1) >= top_k).all())


def test_adjacency_adds_a_self_loop_only_to_isolated_nodes():
    rows, cols = pair_index(19)
    weights = _weights(batch=1, length=1)
    touches_0_or_5 = (rows == 0) | (cols == 0) | (rows == 5) | (cols == 5)
    weights[..., touches_0_or_5] = 0.0
    adjacency = DynamicAdjacency(19, 3)(weights)[0, 0]
    diagonal = torch.diagonal(adjacency)
    assert diagonal[0] == 1 and diagonal[5] == 1
    assert torch.all(diagonal[[n for n in range(19) if n not in (0, 5)]] == 0)
    assert adjacency[0].sum() == 1 and adjacency[5].sum() == 1


def test_adjacency_passes_gradients_to_the_kept_weights_only():
    weights = _weights(batch=1, length=1).requires_grad_()
    DynamicAdjacency(19, 2)(weights).sum().backward()
    rows, cols = pair_index(19)
    adjacency = DynamicAdjacency(19, 2)(weights.detach())[0, 0]
    kept = adjacency[rows, cols] > 0
    assert bool((weights.grad[0, 0, kept] == 2).all())  # each kept weight appears at (i, j) and (j, i)
    assert bool((weights.grad[0, 0, ~kept] == 0).all())


def test_adjacency_rejects_top_k_out_of_range():
    with pytest.raises(ValueError, match="top_k"):
        DynamicAdjacency(19, 19)


def test_lpe_is_one_batched_fp32_eigh_over_all_graphs(monkeypatch):
    calls = []
    real_eigh = torch.linalg.eigh

    def counting_eigh(matrix, *args, **kwargs):
        calls.append((tuple(matrix.shape), matrix.dtype))
        return real_eigh(matrix, *args, **kwargs)

    monkeypatch.setattr(torch.linalg, "eigh", counting_eigh)
    adjacency = DynamicAdjacency(19, 3)(_weights(batch=2, length=5)).double()
    pe = LaplacianPE(6)(adjacency)
    assert calls == [((10, 19, 19), torch.float32)]
    assert pe.shape == (2, 5, 19, 6) and pe.dtype == torch.float32


def test_lpe_vectors_are_orthonormal_sign_fixed_eigenvectors_of_the_normalised_laplacian():
    adjacency = DynamicAdjacency(19, 3)(_weights(batch=2, length=4))
    lpe = LaplacianPE(8, regularisation=0.0)
    values, vectors = lpe.eigendecomposition(adjacency)
    pe = lpe(adjacency)
    assert torch.equal(pe, vectors[..., :8])
    gram = pe.transpose(-1, -2) @ pe
    assert torch.allclose(gram, torch.eye(8).expand_as(gram), atol=1e-5)
    laplacian = LaplacianPE.normalised_laplacian(adjacency)
    assert torch.allclose(laplacian @ pe, pe * values[..., None, :8], atol=1e-5)
    assert bool((values[..., 1:] >= values[..., :-1] - 1e-6).all())  # ascending: the k smallest
    peak = pe.abs().argmax(dim=-2, keepdim=True)
    assert bool((pe.gather(-2, peak) > 0).all())


def test_lpe_is_detached_from_the_graph_of_gradients():
    weights = _weights(batch=1, length=2).requires_grad_()
    adjacency = DynamicAdjacency(19, 3)(weights)
    assert adjacency.requires_grad
    pe = LaplacianPE(4)(adjacency)
    assert not pe.requires_grad and pe.grad_fn is None


def _disconnected_adjacency():
    weights = torch.rand(19, 19) + 0.1
    adjacency = torch.zeros(1, 1, 19, 19)
    adjacency[..., :10, :10] = weights[:10, :10]  # component of 10 nodes
    adjacency[..., 10:18, 10:18] = weights[10:18, 10:18]  # component of 8 nodes
    adjacency = (adjacency + adjacency.transpose(-1, -2)) / 2
    adjacency[..., torch.arange(19), torch.arange(19)] = 0.0
    adjacency[..., 18, 18] = 1.0  # an isolated node with its self-loop
    return adjacency


def test_plain_lpe_of_a_disconnected_graph_is_finite_with_one_zero_eigenvalue_per_component():
    values, vectors = LaplacianPE(4, regularisation=0.0).eigendecomposition(_disconnected_adjacency())
    assert torch.isfinite(values).all() and torch.isfinite(vectors).all()
    assert int((values.abs() < 1e-5).sum()) == 3


def test_regularised_lpe_of_a_disconnected_graph_is_stable_under_rounding_noise():
    adjacency = _disconnected_adjacency()
    noisy = adjacency + 1e-6 * torch.rand(1, 1, 19, 19)
    noisy = (noisy + noisy.transpose(-1, -2)) / 2
    lpe = LaplacianPE(4)
    values, _ = lpe.eigendecomposition(adjacency)
    assert int((values.abs() < 1e-5).sum()) == 1  # connected by the regularisation
    assert values[0, 0, 1] > 1e-2  # the components are separated by a gap
    assert (lpe(adjacency) - lpe(noisy)).abs().max() < 1e-3
    plain = LaplacianPE(4, regularisation=0.0)
    assert torch.isfinite(plain(noisy)).all()


def test_lpe_rejects_more_eigenvectors_than_nodes():
    with pytest.raises(ValueError, match="k = 20"):
        LaplacianPE(20)(torch.eye(19)[None, None])


def test_edge_similarity_is_the_cosine_of_each_feature_slice(monkeypatch):
    monkeypatch.setattr(stack_module, "make_stack", lambda stack, config, backend, direction="bidirectional": torch.nn.Identity())
    stream = EdgeStream(8, 2, "bimamba2", StackConfig(n_layers=1, d_model=4), "reference")
    h = torch.randn(2, 19, 6, 8)
    s = stream.similarity(h)
    rows, cols = pair_index(19)
    p = 40
    i, j = int(rows[p]), int(cols[p])
    expected = F.cosine_similarity(h[1, i, 3, 4:], h[1, j, 3, 4:], dim=0)
    assert s.shape == (2, 171, 6, 2)
    assert torch.allclose(s[1, p, 3, 1], expected, atol=1e-6)


def test_edge_weights_are_non_negative_and_constant_over_each_pooled_block(monkeypatch):
    monkeypatch.setattr(stack_module, "make_stack", lambda stack, config, backend, direction="bidirectional": torch.nn.Identity())
    stream = EdgeStream(8, 4, "bimamba2", StackConfig(n_layers=1, d_model=4), "reference", pool=3)
    w = stream(torch.randn(2, 19, 12, 8))
    assert w.shape == (2, 12, 171)
    assert bool((w >= 0).all())
    blocks = w.reshape(2, 4, 3, 171)
    assert torch.equal(blocks, blocks[:, :, :1].expand_as(blocks))
    assert not torch.equal(blocks[:, 0, 0], blocks[:, 1, 0])
    with pytest.raises(ValueError, match="multiple of pool"):
        stream(torch.randn(1, 19, 10, 8))


def test_batched_edges_offset_each_graph_by_its_nodes():
    adjacency = torch.zeros(3, 4, 4)
    adjacency[2, 0, 1] = adjacency[2, 1, 0] = 0.5
    edge_index, edge_weight = batched_edges(adjacency)
    assert edge_index.tolist() == [[8, 9], [9, 8]]
    assert edge_weight.tolist() == [0.5, 0.5]


def test_graph_network_over_all_graphs_equals_one_graph_at_a_time():
    gnn = GraphNetwork(d_node=6, pe_dim=4, hidden=8, alpha=0.05, k_hops=2).eval()
    u = torch.randn(2, 19, 3, 6)
    adjacency = DynamicAdjacency(19, 3)(_weights(batch=2, length=3))
    pe = LaplacianPE(4)(adjacency)
    together = gnn(u, pe, adjacency)
    assert together.shape == (2, 3, 19, 8)
    for b in range(2):
        for t in range(3):
            alone = gnn(u[b : b + 1, :, t : t + 1], pe[b : b + 1, t : t + 1], adjacency[b : b + 1, t : t + 1])
            assert torch.allclose(together[b, t], alone[0, 0], atol=1e-5)


def test_graph_network_mixes_neighbours_and_handles_isolated_nodes():
    gnn = GraphNetwork(d_node=6, pe_dim=2, hidden=8, alpha=0.05, k_hops=2).eval()
    adjacency = torch.zeros(1, 1, 19, 19)
    adjacency[..., 0, 1] = adjacency[..., 1, 0] = 1.0
    adjacency[..., torch.arange(2, 19), torch.arange(2, 19)] = 1.0  # isolated nodes with self-loops
    u = torch.randn(1, 19, 1, 6)
    pe = torch.zeros(1, 1, 19, 2)
    out = gnn(u, pe, adjacency)
    u2 = u.clone()
    u2[:, 1] += 1.0
    out2 = gnn(u2, pe, adjacency)
    assert torch.isfinite(out).all()
    assert not torch.allclose(out[0, 0, 0], out2[0, 0, 0])  # node 0 hears its neighbour 1
    assert torch.allclose(out[0, 0, 2:], out2[0, 0, 2:])  # isolated nodes hear nobody
