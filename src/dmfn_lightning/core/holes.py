"""Which pixels of a mask are holes: the one rule shared by every way a mask enters the library.

The inpainting CLI (``--mask``), the Python API (:func:`dmfn_lightning.inpainting.load_mask` and the ``mask``
argument of :func:`~dmfn_lightning.inpainting.api.inpaint`), the web app (brush layers and uploaded mask files) and the
irregular mask files of training and evaluation (:class:`dmfn_lightning.masks.IrregularFileMask`) all call
:func:`hole_from_image` or :func:`hole_from_array`, so a mask means the same thing everywhere.

The rule, per pixel:

1. **Levels.** Values are read relative to full scale: 255 for 8-bit data, 65535 for 16-bit data whose values
   exceed 255 (16-bit files that only use 0..255 count as 8-bit), 1.0 for floats in [0, 1] (floats above 1 are
   read on the 0..255 scale). A mask whose values are only 0 and 1 (an integer 0/1 array or image, as saved
   straight from numpy) uses 1 as full scale, so 1 is a hole. ``bool`` arrays are used as they are.
2. **Colour.** A pixel's level is the level of its *brightest* colour channel, so white and also coloured strokes
   (red, green, blue, magenta, ... on black) mark holes, not only light grey values.
3. **Threshold.** A pixel is a hole when its level is at least :data:`HOLE_THRESHOLD` (50 % of full scale: 128
   and above in 8-bit files, 0.5 and above in float arrays). Soft masks are cut at that one level, and JPEG
   ringing around black/white edges (well below 50 %) is ignored. Nothing is inverted: black (0) is never a hole.
4. **Transparency.** A mask with an alpha channel that is not fully opaque everywhere is a painted layer (an
   image editor's layer, the web app's brush): every painted pixel, i.e. every pixel with a non-zero alpha, is a
   hole whatever its colour (antialiased stroke edges included), except when the painted pixels themselves mix
   bright and dark colours (a black-and-white mask with transparent parts): then only the painted pixels that
   pass rules 2-3 are. A fully opaque alpha channel is ignored.

The module depends on numpy, PIL and torch only, so any part of the package can use it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from dmfn_lightning.core.decode import IMAGE_FILE_EXTENSIONS

__all__ = ["HOLE_THRESHOLD", "MASK_FILE_EXTENSIONS", "hole_from_array", "hole_from_image", "read_hole"]

HOLE_THRESHOLD = 0.5
# File types read as mask images (by the CLI's mask folders and by IrregularFileMask's folder scan): any image.
MASK_FILE_EXTENSIONS = IMAGE_FILE_EXTENSIONS

_ALPHA_MODES = ("RGBA", "LA", "La", "RGBa", "PA")


def _full_scale(values: np.ndarray) -> float:
    """Full scale of the colour values (rule 1)."""
    top = float(values.max()) if values.size else 0.0
    if top <= 1.0:
        return 1.0  # 0/1 masks and floats in [0, 1]
    if np.issubdtype(values.dtype, np.floating) or values.dtype == np.uint8 or top <= 255:
        return 255.0
    return 65535.0


def _hole(colour: np.ndarray, alpha: np.ndarray | None, threshold: float) -> np.ndarray:
    """Rules 1-4 for ``colour`` ``[H, W, C]`` (C = 1 or 3) and an optional ``alpha`` ``[H, W]``."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"the hole threshold must be in (0, 1], got {threshold}")
    if np.issubdtype(colour.dtype, np.floating):
        colour = np.nan_to_num(colour, nan=0.0, posinf=0.0, neginf=0.0)
    level = colour.max(axis=-1) if colour.shape[-1] else np.zeros(colour.shape[:2])
    bright = level.astype(np.float64) >= threshold * _full_scale(colour)
    if alpha is None:
        return bright
    if np.issubdtype(alpha.dtype, np.floating):
        alpha = np.nan_to_num(alpha, nan=0.0)
    full = 1.0 if np.issubdtype(alpha.dtype, np.floating) and float(alpha.max(initial=0)) <= 1.0 else 255.0
    if alpha.size and float(alpha.min()) >= full:
        return bright  # fully opaque: the alpha channel says nothing
    painted = alpha > 0
    painted_bright = painted & bright
    if painted_bright.any() and (painted & ~bright).any():
        return painted_bright  # a black-and-white mask with transparent parts
    return painted


def hole_from_image(img: Image.Image, threshold: float = HOLE_THRESHOLD) -> np.ndarray:
    """The holes of a mask image as a bool array ``[H, W]`` (True = hole), by the module's rule.

    The EXIF orientation is applied first, so the mask lines up with the image as it is displayed.
    """
    img = ImageOps.exif_transpose(img)
    if img.mode == "1":
        return np.asarray(img, dtype=bool).copy()
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return _hole(np.asarray(img)[..., None], None, threshold)
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        if img.mode == "LA":
            arr = np.asarray(img)
            return _hole(arr[..., :1], arr[..., 1], threshold)
        rgba = np.asarray(img.convert("RGBA"))
        return _hole(rgba[..., :3], rgba[..., 3], threshold)
    if img.mode == "L":
        return _hole(np.asarray(img)[..., None], None, threshold)
    return _hole(np.asarray(img.convert("RGB")), None, threshold)


def _hwc(arr: np.ndarray) -> np.ndarray:
    """``arr`` as ``[H, W, C]``: accepts ``[H, W]``, ``[H, W, C]``, ``[C, H, W]`` and ``[1, C, H, W]``, C in 1..4."""
    shape = arr.shape
    if arr.ndim == 4 and shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 2:
        return arr[..., None]
    if arr.ndim == 3:
        if arr.shape[-1] in (1, 2, 3, 4):
            return arr
        if arr.shape[0] in (1, 2, 3, 4):  # channels first (the data layer's [1, H, W], torch's CHW)
            return np.moveaxis(arr, 0, -1)
    raise ValueError(
        f"a mask array must be [H, W], [H, W, C], [C, H, W] or [1, C, H, W] with C in 1..4; got shape {shape}"
    )


def hole_from_array(mask: np.ndarray | torch.Tensor, threshold: float = HOLE_THRESHOLD) -> np.ndarray:
    """The holes of a mask array or tensor as a bool array ``[H, W]`` (True = hole), by the module's rule.

    Layouts: ``[H, W]``, ``[H, W, C]``, ``[C, H, W]``, ``[1, C, H, W]`` with C = 1 (grey), 2 (grey + alpha),
    3 (RGB) or 4 (RGBA). ``bool`` masks are holes where True (any colour channel). Raises ``ValueError`` for
    another shape or a non-numeric dtype.
    """
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu()
        if mask.dtype in (torch.bfloat16, torch.float16):
            mask = mask.float()
        mask = mask.numpy()
    arr = np.asarray(mask)
    if arr.dtype != bool and not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"a mask array must be bool, integer or float, got dtype {arr.dtype}")
    arr = _hwc(arr)
    channels = arr.shape[-1]
    if arr.dtype == bool:
        return np.ascontiguousarray(arr[..., : min(channels, 3)].any(axis=-1))
    if channels in (2, 4):
        return _hole(arr[..., : channels - 1], arr[..., -1], threshold)
    return _hole(arr, None, threshold)


def read_hole(path: str | os.PathLike, threshold: float = HOLE_THRESHOLD) -> np.ndarray:
    """The holes of the mask file at ``path``; decoding errors (``OSError``, ``ValueError``, ...) propagate."""
    with Image.open(Path(path)) as img:
        img.load()
        return hole_from_image(img, threshold)
