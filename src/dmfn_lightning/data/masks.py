"""Hole generators: every mask type of the paper and of the released DMFN code, as small callable objects.

Each generator is built by ``hydra.utils.instantiate`` from ``conf/mask/<name>.yaml`` and called as::

    mask, bbox = generator(height, width, rng)

* ``rng`` is a :class:`numpy.random.Generator`; a generator draws every random number from it and from nothing
  else, so a seeded ``rng`` gives the same hole (evaluation seeds it per sample index, see
  :class:`dmfn_lightning.data.datasets.ImageDataset`).
* ``mask`` is a float32 tensor ``[1, H, W]`` with values in {0, 1}; **1 = missing pixel** (docs/design.md, conventions).
* ``bbox`` is ``(top, left, height, width)``, the ``H // 2 x W // 2`` window the local discriminator sees. For the
  box masks it is the (unshrunk) box when the box is half the image (the paper's setting), otherwise the
  ``H // 2 x W // 2`` window centred on the box; for every other mask it is the window centred on the bounding box
  of the hole and clamped to the image (:func:`bbox_around`). The released code paired irregular holes with an
  unrelated random box; centring the window on the hole is a documented deviation.

Sizes scale with the image: hole sizes are fractions of H and W, and sizes given in pixels (``delta``, brush width)
are pixels *at* ``reference_size`` (256, the paper's resolution) and are scaled by ``size / reference_size``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from dmfn_lightning.holes import HOLE_THRESHOLD, MASK_FILE_EXTENSIONS, hole_from_image

BBox = tuple[int, int, int, int]
MaskResult = tuple[torch.Tensor, BBox]

__all__ = [
    "BBox",
    "CenterMask",
    "FreeFormMask",
    "IrregularFileMask",
    "MaskGenerator",
    "MixedMask",
    "RandomBoxMask",
    "bbox_around",
    "box_window",
    "hole_ratio",
]


# ----------------------------------------------------------------------------------------------------------------
# helpers


def _pair(value: float | Sequence[float], name: str) -> tuple[float, float]:
    if isinstance(value, int | float):
        return float(value), float(value)
    values = tuple(float(v) for v in value)
    if len(values) != 2:
        raise ValueError(f"{name} must be a number or a pair (height, width), got {value!r}")
    return values  # type: ignore[return-value]


def _range(value: float | Sequence[float], name: str) -> tuple[float, float]:
    lo, hi = _pair(value, name)
    if lo > hi:
        raise ValueError(f"{name} must be (low, high) with low <= high, got {value!r}")
    return lo, hi


def _window_size(height: int, width: int) -> tuple[int, int]:
    return max(1, height // 2), max(1, width // 2)


def _centred_window(centre_y: float, centre_x: float, height: int, width: int) -> BBox:
    """The H//2 x W//2 window centred on (centre_y, centre_x), clamped to lie inside the image."""
    wh, ww = _window_size(height, width)
    top = math.floor(centre_y - wh / 2 + 0.5)
    left = math.floor(centre_x - ww / 2 + 0.5)
    top = min(max(top, 0), height - wh)
    left = min(max(left, 0), width - ww)
    return top, left, wh, ww


def box_window(box: BBox, height: int, width: int) -> BBox:
    """Local-discriminator window for a box hole: the box itself when it is H//2 x W//2, else centred on it."""
    top, left, bh, bw = box
    if (bh, bw) == _window_size(height, width):
        return int(top), int(left), int(bh), int(bw)
    return _centred_window(top + bh / 2, left + bw / 2, height, width)


def bbox_around(mask: torch.Tensor | np.ndarray) -> BBox:
    """The ``H//2 x W//2`` window centred on the bounding box of the hole (mask > 0.5), clamped to the image.

    ``mask`` is ``[H, W]`` or ``[1, H, W]`` (tensor or array). An empty mask gives the centred window.
    """
    arr = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if arr.ndim == 3:
        if arr.shape[0] != 1:
            raise ValueError(f"bbox_around expects a [1, H, W] or [H, W] mask, got shape {arr.shape}")
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"bbox_around expects a [1, H, W] or [H, W] mask, got shape {arr.shape}")
    height, width = arr.shape
    hole = arr > 0.5
    rows = np.flatnonzero(hole.any(axis=1))
    if rows.size == 0:
        return _centred_window(height / 2, width / 2, height, width)
    cols = np.flatnonzero(hole.any(axis=0))
    centre_y = (rows[0] + rows[-1] + 1) / 2
    centre_x = (cols[0] + cols[-1] + 1) / 2
    return _centred_window(centre_y, centre_x, height, width)


def hole_ratio(mask: torch.Tensor | np.ndarray) -> float:
    """Fraction of missing pixels."""
    if isinstance(mask, torch.Tensor):
        return float(mask.float().mean())
    return float(np.asarray(mask, dtype=np.float32).mean())


def _to_tensor(mask: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None]


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


class MaskGenerator:
    """Base class: ``__call__(height, width, rng) -> (mask [1, H, W] float32 in {0, 1}, bbox)``."""

    def __call__(self, height: int, width: int, rng: np.random.Generator) -> MaskResult:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


# ----------------------------------------------------------------------------------------------------------------
# boxes (Table 1)


class CenterMask(MaskGenerator):
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
        self.hole_size = _pair(hole_size, "hole_size")
        self.shrink = bool(shrink)
        self.delta = _pair(delta, "delta")
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


class RandomBoxMask(MaskGenerator):
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
        self.hole_size = _pair(hole_size, "hole_size")
        self.delta = _pair(delta, "delta")
        self.margin = _pair(margin, "margin")
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


# ----------------------------------------------------------------------------------------------------------------
# free-form brush strokes (DeepFill v2)


class FreeFormMask(MaskGenerator):
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
        self.strokes = tuple(int(v) for v in _range(strokes, "strokes"))
        self.vertices = tuple(int(v) for v in _range(vertices, "vertices"))
        self.mean_angle = float(mean_angle)
        self.angle_range = float(angle_range)
        self.width = _range(width, "width")
        self.hole_ratio = _range(hole_ratio, "hole_ratio")
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
                return _to_tensor(mask), bbox_around(mask)
        raise RuntimeError(
            f"FreeFormMask could not draw a {height}x{width} mask with hole ratio in [{lo}, {hi}] "
            f"in {self.max_tries} tries; widen hole_ratio or change the stroke parameters"
        )


# ----------------------------------------------------------------------------------------------------------------
# mask files (e.g. the NVIDIA irregular mask data set)

_MASK_EXTENSIONS = set(MASK_FILE_EXTENSIONS)  # the same file types as the inpainting CLI's masks


class IrregularFileMask(MaskGenerator):
    """Holes read from mask image files (a folder, searched recursively, or a file list).

    A file is binarised with the library's one mask rule (:mod:`dmfn_lightning.holes`, as for ``--mask`` files of
    the inpainting CLI): a pixel whose brightest colour channel is at least ``threshold`` of full scale is a hole
    (white = hole, as in the NVIDIA irregular mask set and the released DMFN loader; coloured strokes count too;
    1 in a 0/1 mask; the painted pixels of a transparent layer); ``invert`` swaps that. In training (``augment``) it
    is flipped left-right / top-bottom with probability 1/2 each and rotated by a random multiple of 90 degrees.
    It is then resized to the image with **nearest neighbour** and its hole ratio recomputed after resizing (the
    released code resized bicubic and thresholded > 0, which grows holes). ``hole_ratio`` keeps only masks whose
    resized hole fraction lies in (low, high] (re-drawing up to ``max_tries``), e.g. ``[0.1, 0.2]`` for one bin of
    the NVIDIA test set. Which file is used is drawn from ``rng`` (so evaluation is a function of the sample index).

    Args:
        root: folder of mask images, or the root that relative entries of ``list`` are resolved against.
        list: optional text file, one mask path per line.
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        list: str | os.PathLike | None = None,
        augment: bool = True,
        threshold: float = HOLE_THRESHOLD,
        invert: bool = False,
        hole_ratio: Sequence[float] | None = None,
        max_tries: int = 100,
    ) -> None:
        if root is None and list is None:
            raise ValueError("IrregularFileMask needs a root folder or a list file")
        self.root = None if root is None else str(root)
        self.list = None if list is None else str(list)
        self.augment = bool(augment)
        self.threshold = float(threshold)
        self.invert = bool(invert)
        self.hole_ratio = None if hole_ratio is None else _range(hole_ratio, "hole_ratio")
        self.max_tries = int(max_tries)
        self._files: list[Path] | None = None

    @property
    def files(self) -> list[Path]:
        if self._files is None:
            self._files = self._find_files()
        return self._files

    def _find_files(self) -> list[Path]:
        # Imported here: datasets imports this module.
        from dmfn_lightning.data.datasets import DataError, read_file_list

        if self.list is not None:
            files = read_file_list(self.list, self.root)
        else:
            root = Path(self.root).expanduser()
            if not root.is_dir():
                raise DataError(f"{root}: mask folder does not exist")
            files = sorted(p for p in root.rglob("*") if p.suffix.lower() in _MASK_EXTENSIONS and p.is_file())
        if not files:
            raise DataError(f"{self.list or self.root}: no mask images found")
        return files

    def load(self, path: Path, height: int, width: int, rng: np.random.Generator | None) -> np.ndarray:
        """Binary uint8 [H, W] mask from ``path`` (augmented when ``rng`` is given and ``augment`` is on)."""
        from dmfn_lightning.data.datasets import DataError

        try:
            with Image.open(path) as img:
                img.load()
                hole = hole_from_image(img, self.threshold).astype(np.uint8)
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            raise DataError(f"{path}: cannot read mask image ({err})") from err
        if self.invert:
            hole = 1 - hole
        if rng is not None and self.augment:
            if rng.random() < 0.5:
                hole = hole[:, ::-1]
            if rng.random() < 0.5:
                hole = hole[::-1, :]
            hole = np.rot90(hole, int(rng.integers(0, 4)))
        if hole.shape != (height, width):
            resized = Image.fromarray(np.ascontiguousarray(hole) * 255).resize((width, height), Image.NEAREST)
            hole = (np.asarray(resized) > 127).astype(np.uint8)
        return np.ascontiguousarray(hole)

    def __call__(self, height: int, width: int, rng: np.random.Generator) -> MaskResult:
        files = self.files
        for _ in range(self.max_tries):
            path = files[int(rng.integers(0, len(files)))]
            hole = self.load(path, height, width, rng)
            ratio = float(hole.mean())
            if self.hole_ratio is None or self.hole_ratio[0] < ratio <= self.hole_ratio[1]:
                return _to_tensor(hole), bbox_around(hole)
        raise RuntimeError(
            f"IrregularFileMask found no mask with hole ratio in {self.hole_ratio} after {self.max_tries} draws "
            f"from {len(files)} files under {self.list or self.root}"
        )


# ----------------------------------------------------------------------------------------------------------------
# mixtures


class MixedMask(MaskGenerator):
    """A probability-weighted mixture of other generators.

    ``combine="choose"``: pick one generator with probability proportional to its weight; ``bbox`` is that
    generator's. ``combine="union"``: include each generator independently with its probability (at least one:
    if none is drawn, one is chosen by weight) and OR the holes; ``bbox`` is centred on the union
    (:func:`bbox_around`). ``masks`` and ``probs`` are mappings with the same keys (as composed by
    ``conf/mask/mixed.yaml``) or sequences of the same length.
    """

    def __init__(
        self,
        masks: Mapping[str, MaskGenerator] | Sequence[MaskGenerator],
        probs: Mapping[str, float] | Sequence[float] | None = None,
        combine: str = "choose",
    ) -> None:
        if isinstance(masks, Mapping):
            names = [str(k) for k in masks]
            generators = [masks[k] for k in masks]
            if probs is None:
                weights = [1.0] * len(names)
            elif isinstance(probs, Mapping):
                unknown = set(probs) - set(names)
                if unknown:
                    raise ValueError(f"probs names unknown masks {sorted(unknown)}; masks are {names}")
                weights = [float(probs.get(k, 0.0)) for k in names]
            else:
                weights = [float(p) for p in probs]
        else:
            generators = list(masks)
            names = [type(g).__name__ for g in generators]
            weights = [1.0] * len(generators) if probs is None else [float(p) for p in probs]  # type: ignore[union-attr]
        if not generators:
            raise ValueError("MixedMask needs at least one mask generator")
        if len(weights) != len(generators):
            raise ValueError(f"MixedMask got {len(generators)} masks but {len(weights)} probabilities")
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"MixedMask probabilities must be >= 0 and not all 0, got {weights}")
        if combine not in ("choose", "union"):
            raise ValueError(f"MixedMask combine must be 'choose' or 'union', got {combine!r}")
        if combine == "union" and any(w > 1 for w in weights):
            raise ValueError(f"with combine='union' each probability must be <= 1, got {weights}")
        self.names = names
        self.masks = generators
        self.probs = weights
        self.combine = combine

    def __call__(self, height: int, width: int, rng: np.random.Generator) -> MaskResult:
        p = np.asarray(self.probs, dtype=np.float64)
        if self.combine == "choose":
            k = int(rng.choice(len(self.masks), p=p / p.sum()))
            return self.masks[k](height, width, rng)
        chosen = [k for k in range(len(self.masks)) if rng.random() < p[k]]
        if not chosen:
            chosen = [int(rng.choice(len(self.masks), p=p / p.sum()))]
        if len(chosen) == 1:
            return self.masks[chosen[0]](height, width, rng)
        union = torch.zeros(1, height, width, dtype=torch.float32)
        for k in chosen:
            union = torch.maximum(union, self.masks[k](height, width, rng)[0])
        return union, bbox_around(union)
