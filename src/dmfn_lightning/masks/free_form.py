"""Free-form brush-stroke holes drawn with DeepFill v2's released parameterisation (Yu et al., ICCV 2019)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from dmfn_lightning.masks.base import MaskGenerator, MaskResult, as_range, bbox_around, mask_tensor

__all__ = ["FreeFormMask"]


class FreeFormMask(MaskGenerator, kind="free_form", label="free-form", for_photos=True):
    """Free-form brush strokes with DeepFill v2's released parameterisation (Yu et al., ICCV 2019).

    For each of ``strokes`` strokes (uniform integer, inclusive): ``vertices`` vertices (inclusive; the released
    ``np.random.randint(4, 12)`` gives 4 .. 11); the turning angle range is ``mean_angle -/+ U(0, angle_range)``
    with alternate vertices turning the other way; segment lengths ~ N(R, R/2) clipped to [0, 2R] with
    ``R = sqrt(H^2 + W^2) / 8``; brush width ``U(width)`` px at ``reference_size`` (scaled by
    ``sqrt(H W) / reference_size``); the polyline is drawn with round joints. The whole mask is then flipped left-right
    and top-bottom with probability 1/2 each.

    ``hole_ratio`` (low, high) re-draws masks whose hole fraction falls outside the range (up to ``max_tries``),
    so every returned mask respects it. The default (0, 1) keeps DeepFill's distribution unchanged except for
    the (rare) empty mask, which is always re-drawn.
    """

    def __init__(
        self,
        strokes: Sequence[int] = (1, 3),
        vertices: Sequence[int] = (4, 11),
        mean_angle: float = 2 * math.pi / 5,
        angle_range: float = 2 * math.pi / 15,
        width: Sequence[float] = (12, 40),
        hole_ratio: Sequence[float] = (0.0, 1.0),
        flip: bool = True,
        reference_size: int = 256,
        max_tries: int = 100,
    ) -> None:
        self.strokes = tuple(int(v) for v in as_range(strokes, "strokes"))
        self.vertices = tuple(int(v) for v in as_range(vertices, "vertices"))
        self.mean_angle = float(mean_angle)
        self.angle_range = float(angle_range)
        self.width = as_range(width, "width")
        self.hole_ratio = as_range(hole_ratio, "hole_ratio")
        self.flip = bool(flip)
        self.reference_size = int(reference_size)
        self.max_tries = int(max_tries)
        if self.strokes[0] < 1 or self.vertices[0] < 1:
            raise ValueError("strokes and vertices must be at least 1")

    def draw(self, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
        """One unconstrained mask, uint8 [H, W] in {0, 1}."""
        canvas = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(canvas)
        radius = math.sqrt(height * height + width * width) / 8
        width_scale = math.sqrt(height * width) / self.reference_size
        for _ in range(int(rng.integers(self.strokes[0], self.strokes[1], endpoint=True))):
            n = int(rng.integers(self.vertices[0], self.vertices[1], endpoint=True))
            lo = self.mean_angle - rng.uniform(0, self.angle_range)
            hi = self.mean_angle + rng.uniform(0, self.angle_range)
            x, y = float(rng.integers(0, width)), float(rng.integers(0, height))
            points = [(int(x), int(y))]
            for i in range(n):
                turn = rng.uniform(lo, hi)
                angle = 2 * math.pi - turn if i % 2 == 0 else turn
                length = float(np.clip(rng.normal(radius, radius / 2), 0, 2 * radius))
                x = float(np.clip(x + length * math.cos(angle), 0, width - 1))
                y = float(np.clip(y + length * math.sin(angle), 0, height - 1))
                points.append((int(x), int(y)))
            brush = max(1, int(rng.uniform(self.width[0], self.width[1]) * width_scale))
            draw.line(points, fill=1, width=brush)
            r = brush // 2
            for px, py in points:
                draw.ellipse((px - r, py - r, px + r, py + r), fill=1)
        mask = np.asarray(canvas, dtype=np.uint8)
        if self.flip:
            if rng.random() < 0.5:
                mask = mask[:, ::-1]
            if rng.random() < 0.5:
                mask = mask[::-1, :]
        return mask

    def __call__(self, height: int, width: int, rng: np.random.Generator) -> MaskResult:
        lo, hi = self.hole_ratio
        for _ in range(self.max_tries):
            mask = self.draw(height, width, rng)
            ratio = float(mask.mean())
            if ratio > 0 and lo <= ratio <= hi:
                return mask_tensor(mask), bbox_around(mask)
        raise RuntimeError(
            f"FreeFormMask could not draw a {height}x{width} mask with hole ratio in [{lo}, {hi}] "
            f"in {self.max_tries} tries; widen hole_ratio or change the stroke parameters"
        )
