"""Small building blocks shared by the generator and its DMFB variants."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


class ConvNormAct(nn.Sequential):
    """Zero-padded ``Conv2d`` followed by an optional ``InstanceNorm2d(affine=False)`` and an activation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        norm: bool = True,
        act: nn.Module | None = None,
    ) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        padding = (kernel_size - 1) // 2 * dilation
        layers["conv"] = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation=dilation)
        if norm:
            layers["norm"] = nn.InstanceNorm2d(out_channels, affine=False)
        layers["act"] = act if act is not None else nn.ReLU(inplace=True)
        super().__init__(layers)


class UpBlock(nn.Module):
    """``ConvTranspose2d(4, s2)`` + IN + ReLU, then a 3x3 ConvNormAct: one 2x upsampling stage of the decoder."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.deconv = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1)
        self.norm = nn.InstanceNorm2d(out_channels, affine=False)
        self.act = nn.ReLU(inplace=True)
        self.conv = ConvNormAct(out_channels, out_channels, 3)

    def forward(self, x):
        return self.conv(self.act(self.norm(self.deconv(x))))


def bilinear_upsampling_init_(deconv: nn.ConvTranspose2d) -> None:
    """Start a stride-2, 4x4 ``ConvTranspose2d`` as a random 1x1 channel mix followed by bilinear 2x upsampling.

    With PyTorch's default initialisation the four output phases of a stride-2 transposed convolution read
    different kernel taps, so even a flat input comes out as a 2x2 checkerboard (Odena et al., "Deconvolution and
    Checkerboard Artifacts", Distill 2016); a short training run never removes it. Here every tap is the mix
    times the separable bilinear kernel ``[1, 3, 3, 1] / 4``, so the phases agree at the start and training only
    adds what the data asks for (the idea of ICNR, Aitken et al., arXiv:1707.02937). The mix keeps the default
    initialisation's fan-in scale; the bias keeps its default.
    """
    in_channels, out_channels, kh, kw = deconv.weight.shape
    if deconv.stride != (2, 2) or (kh, kw) != (4, 4):
        raise ValueError(f"bilinear initialisation needs a 4x4, stride-2 transposed convolution, got {deconv}")
    taps = torch.tensor([0.25, 0.75, 0.75, 0.25])
    kernel = taps[:, None] * taps[None, :]
    bound = (1.0 / in_channels) ** 0.5
    with torch.no_grad():
        mix = torch.empty(in_channels, out_channels).uniform_(-bound, bound)
        deconv.weight.copy_(mix[:, :, None, None] * kernel)
