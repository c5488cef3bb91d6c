"""Backend choice (auto / fused / reference) and the parameter layout shared with the fused modules."""

from __future__ import annotations

import logging

import pytest
import torch

from ictal.detector.config import StackConfig
from ictal.detector.stacks import (
    GATED_DELTANET_PARAMETER_KEYS,
    MAMBA2_PARAMETER_KEYS,
    build_stack,
    fused_parameter_shapes,
    missing_fused_requirements,
    resolve_backend,
)
from ictal.detector.stacks import build as build_module

STACKS = ["bimamba2", "gated_deltanet"]
CONFIG = StackConfig(n_layers=2, d_model=16, d_state=8, n_heads=4, expand=2, chunk_size=16)

# written out from the upstream sources (mamba_ssm/modules/mamba2.py, fla/layers/gated_deltanet.py)
UPSTREAM_KEYS = {
    "bimamba2": {
        "in_proj.weight",
        "conv1d.weight",
        "conv1d.bias",
        "dt_bias",
        "A_log",
        "D",
        "norm.weight",
        "out_proj.weight",
    },
    "gated_deltanet": {
        "q_proj.weight",
        "k_proj.weight",
        "v_proj.weight",
        "a_proj.weight",
        "b_proj.weight",
        "A_log",
        "dt_bias",
        "q_conv1d.weight",
        "k_conv1d.weight",
        "v_conv1d.weight",
        "g_proj.weight",
        "o_norm.weight",
        "o_proj.weight",
    },
}


def test_key_constants_match_the_upstream_modules() -> None:
    assert set(MAMBA2_PARAMETER_KEYS) == UPSTREAM_KEYS["bimamba2"]
    assert set(GATED_DELTANET_PARAMETER_KEYS) == UPSTREAM_KEYS["gated_deltanet"]


@pytest.mark.parametrize("stack", STACKS)
def test_reference_mixers_have_the_fused_keys_and_shapes(stack: str) -> None:
    module = build_stack(stack, CONFIG, backend="reference")
    expected = fused_parameter_shapes(stack, CONFIG)
    for direction in ("forward_mixer", "backward_mixer"):
        mixer = getattr(module.layers[1], direction)
        shapes = {k: tuple(v.shape) for k, v in mixer.state_dict().items()}
        assert shapes == expected
    assert set(module.state_dict()) == {
        f"layers.{i}.{part}"
        for i in range(2)
        for part in ["norm.weight"]
        + [f"{d}.{k}" for d in ("forward_mixer", "backward_mixer") for k in expected]
    } | {"norm_f.weight"}


def test_mamba2_shapes_follow_the_upstream_formulas() -> None:
    shapes = fused_parameter_shapes("bimamba2", CONFIG)  # E = 32, S = 8, H = 4, D = 16
    assert shapes["in_proj.weight"] == (2 * 32 + 2 * 8 + 4, 16)
    assert shapes["conv1d.weight"] == (32 + 2 * 8, 1, 4)
    assert shapes["norm.weight"] == (32,)


def test_gated_deltanet_shapes_follow_the_upstream_formulas() -> None:
    shapes = fused_parameter_shapes("gated_deltanet", CONFIG)  # K = 8, V = 16, H = 4, D = 16
    assert shapes["v_proj.weight"] == (4 * 16, 16)
    assert shapes["q_conv1d.weight"] == (4 * 8, 1, 4)
    assert shapes["o_norm.weight"] == (16,)
    assert shapes["o_proj.weight"] == (16, 4 * 16)


@pytest.mark.parametrize("stack", STACKS)
def test_checkpoint_of_one_stack_loads_strictly_into_another(stack: str) -> None:
    torch.manual_seed(0)
    a = build_stack(stack, CONFIG, backend="reference").eval()
    torch.manual_seed(1)
    b = build_stack(stack, CONFIG, backend="reference").eval()
    x = torch.randn(2, 20, 16)
    with torch.no_grad():
        assert not torch.allclose(a(x), b(x))
        b.load_state_dict(a.state_dict(), strict=True)
        assert torch.equal(a(x), b(x))


@pytest.mark.parametrize("stack", STACKS)
def test_auto_picks_reference_and_logs_when_kernels_are_missing(
    stack: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(build_module, "missing_fused_requirements", lambda s: ["mamba_ssm (not installed)"])
    with caplog.at_level(logging.INFO, logger="ictal.detector.stacks.build"):
        module = build_stack(stack, CONFIG, backend="auto")
    assert module.backend == "reference"
    assert "auto -> reference" in caplog.text and "mamba_ssm (not installed)" in caplog.text


@pytest.mark.parametrize("stack", STACKS)
def test_auto_picks_fused_and_logs_when_everything_is_there(
    stack: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(build_module, "missing_fused_requirements", lambda s: [])
    with caplog.at_level(logging.INFO, logger="ictal.detector.stacks.build"):
        assert resolve_backend(stack, "auto") == "fused"
    assert "auto -> fused" in caplog.text


@pytest.mark.parametrize("stack", STACKS)
def test_forced_fused_without_kernels_names_what_is_missing(
    stack: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        build_module, "missing_fused_requirements", lambda s: ["fla (not installed)", "a CUDA device"]
    )
    with pytest.raises(RuntimeError, match=r"backend='fused'.*fla \(not installed\), a CUDA device"):
        build_stack(stack, CONFIG, backend="fused")


@pytest.mark.parametrize("stack", STACKS)
def test_kernel_package_that_fails_to_import_falls_back_under_auto_only(
    stack: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(stack: str, config: StackConfig) -> torch.nn.Module:
        raise ImportError("libcudart.so.12: cannot open shared object file")

    monkeypatch.setattr(build_module, "missing_fused_requirements", lambda s: [])
    monkeypatch.setattr(build_module, "_fused_mixer", broken)
    with caplog.at_level(logging.WARNING, logger="ictal.detector.stacks.build"):
        module = build_stack(stack, CONFIG, backend="auto")
    assert module.backend == "reference"
    assert "fail to import" in caplog.text and "libcudart" in caplog.text
    with pytest.raises(RuntimeError, match=r"does not import \(ImportError: libcudart"):
        build_stack(stack, CONFIG, backend="fused")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only environment")
@pytest.mark.parametrize("stack", STACKS)
def test_this_cpu_machine_lacks_a_cuda_device_for_the_fused_backend(stack: str) -> None:
    missing = missing_fused_requirements(stack)
    assert any("CUDA" in m for m in missing)
    assert build_stack(stack, CONFIG, backend="auto").backend == "reference"
    with pytest.raises(RuntimeError, match="CUDA"):
        build_stack(stack, CONFIG, backend="fused")


def test_unknown_stack_and_backend_are_errors() -> None:
    with pytest.raises(ValueError, match=r"stack must be one of .* \(found 'lstm'\)"):
        build_stack("lstm", CONFIG)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"backend must be one of .* \(found 'cuda'\)"):
        build_stack("bimamba2", CONFIG, backend="cuda")  # type: ignore[arg-type]


def test_heads_must_divide_the_inner_width() -> None:
    with pytest.raises(
        ValueError, match=r"expand \* d_model = 16 must be divisible by n_heads \(found n_heads=3\)"
    ):
        StackConfig(d_model=8, expand=2, n_heads=3)


@pytest.mark.gpu
@pytest.mark.skipif(
    bool(missing_fused_requirements("bimamba2")) and bool(missing_fused_requirements("gated_deltanet")),
    reason="needs CUDA and the gpu extra (mamba-ssm / flash-linear-attention)",
)
@pytest.mark.parametrize("stack", STACKS)
def test_fused_backend_matches_reference_on_the_same_weights(stack: str) -> None:
    if missing_fused_requirements(stack):
        pytest.skip(f"fused {stack} unavailable: {missing_fused_requirements(stack)}")
    config = StackConfig(n_layers=2, d_model=64, d_state=16, n_heads=2, expand=2, chunk_size=64)
    torch.manual_seed(0)
    fused = build_stack(stack, config, backend="fused").cuda().eval()
    reference = build_stack(stack, config, backend="reference").cuda().eval()
    reference.load_state_dict(fused.state_dict(), strict=True)
    x = torch.randn(4, 300, 64, device="cuda")
    with torch.no_grad():
        diff = (fused(x) - reference(x)).abs().max().item()
    assert diff < 2e-3, f"fused and reference {stack} differ by {diff}"
