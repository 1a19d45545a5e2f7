"""Small building blocks shared by the generator and its DMFB variants."""

from __future__ import annotations

from collections import OrderedDict

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
