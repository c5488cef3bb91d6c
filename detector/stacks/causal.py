"""A causal stack: residual blocks, each running one mixer forward in time only; streamable."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ictal.detector.stacks.bidirectional import _mixer_output


def _mixer_state_shapes(stack: str, mixer: nn.Module) -> dict[str, tuple[int, ...]]:
    if stack == "bimamba2":
        from ictal.detector.stacks.mamba2 import mamba2_state_shapes

        return mamba2_state_shapes(mixer)
    from ictal.detector.stacks.gated_deltanet import gated_deltanet_state_shapes

    return gated_deltanet_state_shapes(mixer)


def _mixer_step(
    stack: str, mixer: nn.Module, h: torch.Tensor, state: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    if stack == "bimamba2":
        from ictal.detector.stacks.mamba2 import mamba2_step

        return mamba2_step(mixer, h, state)
    from ictal.detector.stacks.gated_deltanet import gated_deltanet_step

    return gated_deltanet_step(mixer, h, state)


class CausalBlock(nn.Module):
    """Pre-norm residual block with one forward (causal) mixer.

    Parameters
    ----------
    d_model : int
        Width ``D``.
    make_mixer : callable
        Returns a new causal mixer (N, L, D) -> (N, L, D).
    norm_eps : float
        Epsilon of the RMS pre-norm.

    Notes
    -----
    Shapes:
        - input ``x``: (N, L, D)
        - output: (N, L, D)

    .. math::
        \\mathrm{out} = x + f(\\mathrm{RMSNorm}(x))

    The output at step t depends on steps <= t only. State-dict keys ``norm.weight`` and ``mixer.*``
    (the upstream module's keys, as in :class:`~ictal.detector.stacks.bidirectional.BidirectionalBlock`).

    References
    ----------
    Dao, T. and Gu, A. (2024). Transformers are SSMs. arXiv:2405.21060.
    """

    def __init__(self, d_model: int, make_mixer: Callable[[], nn.Module], norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = nn.RMSNorm(d_model, eps=norm_eps)
        self.mixer = make_mixer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + _mixer_output(self.mixer(self.norm(x)))


class CausalStack(nn.Module):
    """``n_layers`` causal blocks and a final RMS norm, with a streaming ``step``.

    Parameters
    ----------
    d_model : int
        Width ``D``.
    n_layers : int
        Number of :class:`CausalBlock`.
    make_mixer : callable
        Returns a new causal mixer (N, L, D) -> (N, L, D).
    stack : {"bimamba2", "gated_deltanet"}
        Which mixer (``bimamba2`` names the Mamba2 mixer; here it runs forward only).
    backend : str
        Backend of ``forward`` (``reference`` or ``fused``); ``step`` always runs the pure-PyTorch
        recurrence on the mixers' parameters (identical names and shapes on both backends).

    Notes
    -----
    Shapes:
        - input: (N, L, D), N independent sequences of L steps
        - output: (N, L, D)

    State of ``step`` (dict of tensors, leading dimension N): per layer ``i`` the mixer's convolution
    cache ``{i}.conv`` and its recurrent state (``{i}.ssm`` for Mamba2, ``{i}.recurrent`` for Gated
    DeltaNet). ``forward(x)`` equals ``step(x, init_state(N))[0]`` to float32 rounding, and so does
    any split of ``x`` into consecutive pieces, each stepped from the previous piece's state.

    References
    ----------
    Dao, T. and Gu, A. (2024). Transformers are SSMs. arXiv:2405.21060.
    Yang, S., Kautz, J. and Hatamizadeh, A. (2024). Gated Delta Networks. arXiv:2412.06464.
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
        self.layers = nn.ModuleList(CausalBlock(d_model, make_mixer, norm_eps) for _ in range(n_layers))
        self.norm_f = nn.RMSNorm(d_model, eps=norm_eps)

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(
                f"{self.stack} stack input must have shape (N, L, {self.d_model}) (found {tuple(x.shape)})"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        for layer in self.layers:
            x = layer(x)
        return self.norm_f(x)

    def init_state(self, n: int, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """Zero state for ``n`` sequences (float32): what ``forward`` starts from."""
        state = {}
        for i, layer in enumerate(self.layers):
            for name, shape in _mixer_state_shapes(self.stack, layer.mixer).items():
                state[f"{i}.{name}"] = torch.zeros((n, *shape), device=device)
        return state

    def step(
        self, x: torch.Tensor, state: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Run the next L steps of N sequences, (N, L, D) -> (N, L, D), from ``state``; returns the new state."""
        self._check(x)
        new_state = {}
        for i, layer in enumerate(self.layers):
            prefix = f"{i}."
            mine = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            out, mine = _mixer_step(self.stack, layer.mixer, layer.norm(x), mine)
            x = x + out
            new_state.update({prefix + k: v for k, v in mine.items()})
        return self.norm_f(x), new_state
