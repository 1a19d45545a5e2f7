"""The hole generators' common contract: the base class, the local discriminator's window, shared helpers.

A generator is called as ``mask, bbox = generator(height, width, rng)`` (see :mod:`dmfn_lightning.masks`):
``mask`` is float32 ``[1, H, W]`` with 1 = missing pixel, ``bbox`` is ``(top, left, height, width)``, the
``H // 2 x W // 2`` window the local discriminator sees.

A generator class that is a *mask kind* says so where it is defined (``class CenterMask(MaskGenerator,
kind="center", label="centre box", for_photos=True)``) and is thereby in :data:`KINDS`, the one registry of mask
kinds that :mod:`dmfn_lightning.masks.registry` answers from (see there).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch

__all__ = [
    "KINDS",
    "BBox",
    "MaskGenerator",
    "MaskResult",
    "as_pair",
    "as_range",
    "bbox_around",
    "box_window",
    "hole_ratio",
    "mask_tensor",
]

BBox = tuple[int, int, int, int]
MaskResult = tuple[torch.Tensor, BBox]

# The one registry of mask kinds: kind -> generator class, in the order the classes were defined (the order the
# command line and the web page offer them in). Filled by MaskGenerator.__init_subclass__; read it through
# dmfn_lightning.masks.registry.
KINDS: dict[str, type[MaskGenerator]] = {}


class MaskGenerator:
    """Base class: ``__call__(height, width, rng) -> (mask [1, H, W] float32 in {0, 1}, bbox)``.

    A subclass declares itself a mask kind with class keywords, which registers it in :data:`KINDS`::

        class StripeMask(MaskGenerator, kind="stripes", label="stripes", for_photos=True): ...

    * ``kind``: its name, that of its configuration ``conf/mask/<kind>.yaml`` (``mask=<kind>`` in training and
      evaluation, ``--mask-type <kind>`` for photos). A subclass without ``kind`` is no kind (not even its parent's).
    * ``label``: how the web page names it (default: the kind with spaces for underscores).
    * ``for_photos``: whether it can be drawn for any photo from ``(height, width, rng)`` alone, with no mask files or
      folders: only such kinds are offered by ``python -m dmfn_lightning.inpaint --mask-type``, the web app's
      generated holes and the evaluation manifests' generators (default ``False``).
    """

    kind: ClassVar[str | None] = None
    label: ClassVar[str | None] = None
    for_photos: ClassVar[bool] = False

    def __init_subclass__(
        cls, *, kind: str | None = None, label: str | None = None, for_photos: bool = False, **kwargs
    ) -> None:
        super().__init_subclass__(**kwargs)
        cls.kind = kind
        cls.label = label or (kind.replace("_", " ") if kind else None)
        cls.for_photos = bool(for_photos)
        if kind is None:
            return
        if not kind.isidentifier() or kind != kind.lower():
            raise ValueError(f"mask kind {kind!r} of {cls.__name__} must be a lower-case name such as 'free_form'")
        if kind in KINDS and KINDS[kind].__qualname__ != cls.__qualname__:
            raise ValueError(f"mask kind {kind!r} is declared by both {KINDS[kind].__name__} and {cls.__name__}")
        KINDS[kind] = cls

    def __call__(self, height: int, width: int, rng: np.random.Generator) -> MaskResult:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


# ----------------------------------------------------------------------------------------------------------------
# arguments


def as_pair(value: float | Sequence[float], name: str) -> tuple[float, float]:
    """A number or a ``(height, width)`` pair as a pair of floats; ``name`` is the argument, for the message."""
    if isinstance(value, int | float):
        return float(value), float(value)
    values = tuple(float(v) for v in value)
    if len(values) != 2:
        raise ValueError(f"{name} must be a number or a pair (height, width), got {value!r}")
    return values  # type: ignore[return-value]


def as_range(value: float | Sequence[float], name: str) -> tuple[float, float]:
    """A ``(low, high)`` pair with ``low <= high`` (a number is the range of one value)."""
    lo, hi = as_pair(value, name)
    if lo > hi:
        raise ValueError(f"{name} must be (low, high) with low <= high, got {value!r}")
    return lo, hi


def mask_tensor(mask: np.ndarray) -> torch.Tensor:
    """An ``[H, W]`` 0/1 array as the generators' float32 ``[1, H, W]`` mask."""
    return torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None]


def hole_ratio(mask: torch.Tensor | np.ndarray) -> float:
    """Fraction of missing pixels."""
    if isinstance(mask, torch.Tensor):
        return float(mask.float().mean())
    return float(np.asarray(mask, dtype=np.float32).mean())


# ----------------------------------------------------------------------------------------------------------------
# the local discriminator's window


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
