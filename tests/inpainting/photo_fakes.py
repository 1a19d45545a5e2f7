"""Stand-ins for the inpainting tests (tests/inpainting/): tiny generators, a spy network, random photos, hole boxes."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import nn

from dmfn_lightning.models import DMFNGenerator

HD_W, HD_H = 600, 400  # the "large photo" of the HD strategy tests


def small_generator(seed: int = 0, **kwargs) -> DMFNGenerator:
    torch.manual_seed(seed)
    kwargs.setdefault("num_blocks", 1)
    return DMFNGenerator(**kwargs).eval()


class Spy(nn.Module):
    """Records the input shapes it sees and returns a constant prediction (mid grey)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        return torch.zeros(x.shape[0], 3, *x.shape[2:]) + self.weight


class Forbidden(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        raise AssertionError("the network must not run")


def rgba_image(width: int = 301, height: int = 199, opaque: bool = True, seed: int = 0) -> Image.Image:
    arr = np.random.default_rng(seed).integers(0, 256, (height, width, 4), dtype=np.uint8)
    if opaque:
        arr[..., 3] = 255
    return Image.fromarray(arr, "RGBA")


def hd_holes(*boxes: tuple[int, int, int, int]) -> np.ndarray:
    """A bool [400, 600] mask with the given (top, left, height, width) boxes as holes."""
    hole = np.zeros((HD_H, HD_W), dtype=bool)
    for top, left, height, width in boxes:
        hole[top : top + height, left : left + width] = True
    return hole


def box_hole(width: int, height: int, top: int, left: int, box_height: int, box_width: int) -> np.ndarray:
    """A bool [height, width] mask with one box hole."""
    hole = np.zeros((height, width), dtype=bool)
    hole[top : top + box_height, left : left + box_width] = True
    return hole
