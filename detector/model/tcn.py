"""The TCN encoder: (B, n_chans, n_times) EEG to (B, C, n_times / 16) features."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ictal.detector.model.channel_norm import ChannelNorm
from ictal.detector.model.temporal_block import DilatedResidualBlock


class TCNEncoder(nn.Module):
    r"""Multi-scale temporal convolutional encoder with x16 downsampling.

    Four stages; stage :math:`s` first halves the rate with a strided convolution (kernel 4, stride 2,
    padding 1) from :math:`C_{s-1}` to :math:`C_s` channels (:math:`C_{-1}` = ``n_chans``), then applies
    one :class:`DilatedResidualBlock` per dilation. Stage :math:`s` runs at ``sfreq / 2**(s+1)``, so a
    dilation :math:`d` there spans :math:`d\,2^{s+1}(k-1)` input samples: with ``k = 7`` and
    ``d = 128`` the last stage sees 48 s of a 60 s window, the first stage's ``d = 1`` sees 47 ms.

    .. math::
        z = \mathrm{Norm}\Big(\prod_{s=0}^{3} \big[\prod_{d} \mathrm{Block}_{s,d}\big]
            \circ \mathrm{Down}_s\Big)(x)

    By default every convolution is centred, so the encoder is **not causal**: a step depends on up to
    :math:`\approx` half the receptive field of future samples within the window. The daemon scores a
    whole 60 s window and keeps its newest hop; for those last samples the "future" is zero padding,
    so their features are computed with less context than samples in the middle of the window (the
    same holds for the backward direction of the sequence stacks, which starts there).

    With ``causal=True`` every convolution is padded on the left only: the strided convolutions by 2
    (output step j of a stage reads its input steps 2j-2 .. 2j+1, i.e. up to the last input sample of
    its own step) and the residual blocks by :math:`(k-1)d`. Output step j then depends on input
    samples :math:`< 16(j+1)` only, and :meth:`step` continues the encoding from cached inputs, for
    any number of new samples that is a multiple of 16 (the stride).

    Parameters
    ----------
    n_chans : int
        Input EEG channels (19).
    widths : sequence of 4 int
        Channels :math:`C_s` of the four stages.
    kernel_size : int
        Odd kernel size of the residual blocks.
    dilations : sequence of int
        Dilations of the residual blocks of every stage.
    dropout : float
        Dropout of the residual branches.
    causal : bool
        Left padding only (streamable); the parameters have the same names and shapes either way.

    Shapes:
        - **input:** :math:`(B, n_{chans}, T)` with :math:`T` a multiple of 16
        - **output:** :math:`(B, C_3, T / 16)`

    References
    ----------
    Bai, Kolter, Koltun (2018). An empirical evaluation of generic convolutional and recurrent networks
    for sequence modeling. arXiv:1803.01271.
    van den Oord et al. (2016). WaveNet: a generative model for raw audio. arXiv:1609.03499.
    """

    def __init__(
        self,
        n_chans: int,
        widths: Sequence[int],
        kernel_size: int,
        dilations: Sequence[int],
        dropout: float = 0.0,
        causal: bool = False,
    ) -> None:
        super().__init__()
        self.causal = causal
        if len(widths) != 4:
            raise ValueError(f"widths must have 4 stages for x16 downsampling (found {list(widths)})")
        self.n_chans = n_chans
        self.out_channels = widths[-1]
        stages = []
        previous = n_chans
        for width in widths:
            layers: list[nn.Module] = [nn.Conv1d(previous, width, 4, stride=2, padding=0 if causal else 1)]
            layers += [DilatedResidualBlock(width, kernel_size, d, dropout, causal) for d in dilations]
            stages.append(nn.Sequential(*layers))
            previous = width
        self.stages = nn.ModuleList(stages)
        self.norm = ChannelNorm(self.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode ``x`` of shape (B, n_chans, T) to (B, C_3, T / 16)."""
        for stage in self.stages:
            if self.causal:
                x = F.pad(x, (2, 0))
            x = stage(x)
        return self.norm(x)

    def init_state(self, batch: int, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """Zero caches of a causal encoder: ``{s}.0`` (B, C_{s-1}, 2) before every strided convolution and
        ``{s}.{i}`` (B, C_s, (k-1)d) before every residual block."""
        state = {}
        for s, stage in enumerate(self.stages):
            down = stage[0]
            state[f"{s}.0"] = torch.zeros(batch, down.in_channels, 2, device=device)
            for i, block in enumerate(stage[1:], start=1):
                state[f"{s}.{i}"] = torch.zeros(batch, block.conv.in_channels, block.context, device=device)
        return state

    def step(
        self, x: torch.Tensor, state: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Encode the next samples ``x`` (B, n_chans, 16 m) of a causal encoder to (B, C_3, m).

        Raises
        ------
        ValueError
            If the encoder is not causal or the number of samples is not a multiple of 16.
        """
        if not self.causal:
            raise ValueError("step needs a causal encoder (ModelConfig.direction='causal')")
        if x.shape[-1] % 16:
            raise ValueError(f"step needs a multiple of 16 samples (found {x.shape[-1]})")
        new_state = {}
        for s, stage in enumerate(self.stages):
            full = torch.cat([state[f"{s}.0"], x], dim=-1)
            new_state[f"{s}.0"] = full[..., -2:]
            x = stage[0](full)
            for i, block in enumerate(stage[1:], start=1):
                x, new_state[f"{s}.{i}"] = block.step(x, state[f"{s}.{i}"])
        return self.norm(x), new_state
