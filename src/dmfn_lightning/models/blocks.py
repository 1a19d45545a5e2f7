"""Dense multi-scale fusion blocks (DMFB, Section 3.1 and Fig. 3 of the paper) and the Table 2 variants.

All variants share one class, :class:`DMFB`; they differ in the dilation rates of the four branches, in how the
branches are combined before fusion, and in the fusion kernel. ``build_block(name)`` maps the names used in the
configs and in Table 2 onto those settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dmfn_lightning.models.layers import ConvNormAct

COMBINATIONS = ("hierarchical", "cumulative", "none")


@dataclass(frozen=True)
class BlockSpec:
    """How one named block variant is built."""

    dilations: tuple[int, int, int, int]
    combination: str
    fusion_kernel: int
    description: str


BLOCK_SPECS: dict[str, BlockSpec] = {
    "dmfb": BlockSpec((1, 2, 4, 8), "hierarchical", 1, "paper DMFB: K_i combination, 1x1 fusion"),
    "no_ki": BlockSpec((1, 2, 4, 8), "cumulative", 1, "Table 2 'w/o K_i': y_i = x_i + y_(i-1)"),
    "no_combination": BlockSpec((1, 2, 4, 8), "none", 1, "Table 2 'w/o combination': concat(x_1..x_4)"),
    "rate2": BlockSpec((2, 2, 2, 2), "hierarchical", 1, "Table 2 'rate=2': all dilations 2"),
    "rate8": BlockSpec((8, 8, 8, 8), "hierarchical", 1, "Table 2 'rate=8': all dilations 8"),
    "released": BlockSpec((1, 2, 4, 8), "cumulative", 3, "authors' released block: cumulative sums, 3x3 fusion"),
}


class DMFB(nn.Module):
    """Dense multi-scale fusion block.

    ``x -> c1 (3x3, C -> C/4, IN, ReLU) -> four 3x3 branches with dilations r_1..r_4 -> combination -> concat
    -> ReLU(IN) -> fusion conv (C -> C) -> IN -> + x``.

    Combination (Fig. 3): ``hierarchical`` is the paper's ``y_1 = x_1, y_i = K_i(x_i + y_(i-1))`` with
    ``K_i`` a 3x3 conv + IN + ReLU; ``cumulative`` drops ``K_i`` (``y_i = x_i + y_(i-1)``); ``none`` feeds the
    branches straight into the fusion.
    """

    def __init__(
        self,
        channels: int = 256,
        dilations: tuple[int, ...] = (1, 2, 4, 8),
        combination: str = "hierarchical",
        fusion_kernel: int = 1,
    ) -> None:
        super().__init__()
        if combination not in COMBINATIONS:
            raise ValueError(f"combination={combination!r} is not one of {COMBINATIONS}")
        if channels % 4:
            raise ValueError(f"channels={channels} must be divisible by 4 (four branches of C/4 channels)")
        branch = channels // 4
        self.combination = combination
        self.dilations = tuple(int(d) for d in dilations)
        self.c1 = ConvNormAct(channels, branch, 3)
        self.branches = nn.ModuleList(nn.Conv2d(branch, branch, 3, padding=d, dilation=d) for d in self.dilations)
        self.combine = (
            nn.ModuleList(ConvNormAct(branch, branch, 3) for _ in self.dilations[1:])
            if combination == "hierarchical"
            else None
        )
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.act = nn.ReLU(inplace=True)
        self.fusion = nn.Conv2d(channels, channels, fusion_kernel, padding=(fusion_kernel - 1) // 2)

    def forward(self, x: Tensor) -> Tensor:
        reduced = self.c1(x)
        xs = [branch(reduced) for branch in self.branches]
        if self.combination == "none":
            ys = xs
        else:
            ys = [xs[0]]
            for i, xi in enumerate(xs[1:]):
                summed = xi + ys[-1]
                ys.append(self.combine[i](summed) if self.combine is not None else summed)
        fused = self.fusion(self.act(self.norm(torch.cat(ys, dim=1))))
        return x + self.norm(fused)


def build_block(name: str, channels: int = 256) -> DMFB:
    """Build the block variant ``name`` (one of :data:`BLOCK_SPECS`) with ``channels`` input/output channels."""
    try:
        spec = BLOCK_SPECS[name]
    except KeyError:
        raise ValueError(f"unknown block {name!r}; valid blocks: {', '.join(BLOCK_SPECS)}") from None
    return DMFB(channels, spec.dilations, spec.combination, spec.fusion_kernel)
