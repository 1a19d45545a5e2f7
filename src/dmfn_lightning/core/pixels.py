"""The one pixel convention: 8-bit levels <-> the [-1, 1] floats that the generator and every metric see.

A level ``v`` in 0..255 is ``v / 127.5 - 1``; a float goes back as ``round((x + 1) * 127.5)`` after clamping to
[-1, 1], so an image that makes the round trip is byte-identical and a metric on quantised values reads exactly the
pixels a saved PNG holds.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["from_levels", "from_rgb_array", "to_levels", "to_uint8"]


def from_levels(levels: Tensor) -> Tensor:
    """uint8 (or float 0..255) ``levels`` -> float32 in [-1, 1]."""
    return levels.float().div(127.5).sub_(1.0)


def from_rgb_array(array: np.ndarray) -> Tensor:
    """An ``[H, W, 3]`` uint8 array (a decoded image) -> ``[3, H, W]`` float32 in [-1, 1]."""
    return from_levels(torch.from_numpy(np.array(array, dtype=np.uint8, copy=True)).permute(2, 0, 1))


def to_levels(x: Tensor) -> Tensor:
    """[-1, 1] floats -> float tensor of integer levels 0..255 (clamped, rounded half to even)."""
    return ((x.float().clamp(-1.0, 1.0) + 1.0) * 127.5).round_()


def to_uint8(x: Tensor) -> Tensor:
    """[-1, 1] floats -> uint8 levels (NaN is not checked here: callers that can meet it check first)."""
    return to_levels(x).to(torch.uint8)
