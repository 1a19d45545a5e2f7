"""Box holes (Table 1): the centred box of the test protocol and the released training code's random box.

Sizes are fractions of the image side; ``delta`` (the random shrink of each side) and ``margin`` are pixels at
``reference_size`` (256, the paper's resolution) and scale with the image. ``bbox`` is the unshrunk box when it is
half the image (the paper's setting), else the ``H // 2 x W // 2`` window centred on it (:func:`box_window`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from dmfn_lightning.masks.base import BBox, MaskGenerator, MaskResult, as_pair, box_window

__all__ = ["CenterMask", "RandomBoxMask"]


def _box_size(hole_size: tuple[float, float], height: int, width: int) -> tuple[int, int]:
    bh = round(hole_size[0] * height)
    bw = round(hole_size[1] * width)
    if not (1 <= bh <= height and 1 <= bw <= width):
        raise ValueError(f"hole_size {hole_size} gives a {bh}x{bw} box, which does not fit a {height}x{width} image")
    return bh, bw


def _scaled(pixels_at_reference: float, size: int, reference_size: int) -> float:
    return pixels_at_reference * size / reference_size


def _box_mask(height: int, width: int, box: BBox, shrink: tuple[int, int] = (0, 0)) -> torch.Tensor:
    top, left, bh, bw = box
    dh, dw = shrink
    mask = torch.zeros(1, height, width, dtype=torch.float32)
    mask[:, top + dh : top + bh - dh, left + dw : left + bw - dw] = 1.0
    return mask


def _draw_shrink(delta: tuple[int, int], rng: np.random.Generator) -> tuple[int, int]:
    # Released code: h = randint(0, delta_h // 2 + 1) (inclusive), taken off the top AND the bottom; w likewise.
    dh = int(rng.integers(0, delta[0] // 2 + 1, endpoint=True))
    dw = int(rng.integers(0, delta[1] // 2 + 1, endpoint=True))
    return dh, dw


class CenterMask(MaskGenerator, kind="center", label="centre box", for_photos=True):
    """The fixed centred box of the Table 1 test protocol.

    Args:
        hole_size: box side as a fraction of the image side (a number, or ``(fh, fw)``). 0.5 gives the paper's
            128 x 128 box at (64, 64) on 256 x 256 images.
        shrink: if true, shrink each side by ``U{0 .. delta/2 + 1}`` drawn from ``rng`` as the released *test* code
            did (with its ``delta = 0`` that is ``U{0, 1}``). Off by default: our evaluation uses the exact box.
        delta: see ``shrink``; pixels at ``reference_size``.
    """

    def __init__(
        self,
        hole_size: float | Sequence[float] = 0.5,
        shrink: bool = False,
        delta: float | Sequence[float] = 0,
        reference_size: int = 256,
    ) -> None:
        self.hole_size = as_pair(hole_size, "hole_size")
        self.shrink = bool(shrink)
        self.delta = as_pair(delta, "delta")
        self.reference_size = int(reference_size)

    def box(self, height: int, width: int) -> BBox:
        bh, bw = _box_size(self.hole_size, height, width)
        return (height - bh) // 2, (width - bw) // 2, bh, bw

    def __call__(self, height: int, width: int, rng: np.random.Generator) -> MaskResult:
        box = self.box(height, width)
        shrink = (0, 0)
        if self.shrink:
            delta = (
                round(_scaled(self.delta[0], height, self.reference_size)),
                round(_scaled(self.delta[1], width, self.reference_size)),
            )
            shrink = _draw_shrink(delta, rng)
        return _box_mask(height, width, box, shrink), box_window(box, height, width)


class RandomBoxMask(MaskGenerator, kind="random_box", label="random box", for_photos=True):
    """A box at a uniformly random position, each side shrunk at random (the released training masks).

    The box is ``hole_size * (H, W)`` (128 x 128 at 256). Its top-left corner is uniform over all positions that
    keep the box ``margin`` pixels inside the image. Then, as in the released code, ``dh ~ U{0 .. delta_h/2 + 1}``
    (inclusive) is removed from the top *and* the bottom and ``dw ~ U{0 .. delta_w/2 + 1}`` from the left and the
    right: with ``delta = 32`` every side moves in by 0 .. 17 px. ``bbox`` is the unshrunk box.

    Args:
        hole_size: box side as a fraction of the image side (number or ``(fh, fw)``).
        delta: maximum shrink (the released ``max_delta_height/width``), pixels at ``reference_size``; scaled
            with the image (16 at 128 px, so 0 .. 9 px per side).
        margin: minimum distance of the unshrunk box from the border (released ``vertical/horizontal_margin``),
            pixels at ``reference_size``.
    """

    def __init__(
        self,
        hole_size: float | Sequence[float] = 0.5,
        delta: float | Sequence[float] = 32,
        margin: float | Sequence[float] = 0,
        reference_size: int = 256,
    ) -> None:
        self.hole_size = as_pair(hole_size, "hole_size")
        self.delta = as_pair(delta, "delta")
        self.margin = as_pair(margin, "margin")
        self.reference_size = int(reference_size)

    def scaled_delta(self, height: int, width: int) -> tuple[int, int]:
        return (
            round(_scaled(self.delta[0], height, self.reference_size)),
            round(_scaled(self.delta[1], width, self.reference_size)),
        )

    def __call__(self, height: int, width: int, rng: np.random.Generator) -> MaskResult:
        bh, bw = _box_size(self.hole_size, height, width)
        mh = round(_scaled(self.margin[0], height, self.reference_size))
        mw = round(_scaled(self.margin[1], width, self.reference_size))
        max_top, max_left = height - mh - bh, width - mw - bw
        if max_top < mh or max_left < mw:
            raise ValueError(f"a {bh}x{bw} box with margin ({mh}, {mw}) does not fit a {height}x{width} image")
        top = int(rng.integers(mh, max_top, endpoint=True))
        left = int(rng.integers(mw, max_left, endpoint=True))
        box = (top, left, bh, bw)
        shrink = _draw_shrink(self.scaled_delta(height, width), rng)
        return _box_mask(height, width, box, shrink), box_window(box, height, width)
