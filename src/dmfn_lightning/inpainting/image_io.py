"""Reading images and masks, and writing results: the file side of inpainting.

:func:`load_image` decodes any path, PIL image, array or tensor to 8-bit RGB exactly as the data layer does for
training (:func:`dmfn_lightning.core.decode.to_rgb`: alpha on white, 16-bit rescaled, EXIF orientation).
:func:`load_mask` reads a hole mask with :mod:`dmfn_lightning.core.holes`'s one rule (the holes ``M`` of eq. 1);
generated holes (the training masks of ``conf/mask/<kind>.yaml``) come from the data layer,
:func:`dmfn_lightning.masks.generate_mask`. :func:`save_png` writes results atomically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

# The data layer's conversion, so a photo is decoded identically for training, evaluation and inpainting.
from dmfn_lightning.core.decode import DECODE_ERRORS, to_rgb
from dmfn_lightning.core.errors import InpaintError, OutputPathError
from dmfn_lightning.core.files import atomic_write
from dmfn_lightning.core.holes import hole_from_array, hole_from_image

__all__ = [
    "ImageInput",
    "MaskInput",
    "load_image",
    "load_mask",
    "save_png",
]

ImageInput = str | os.PathLike | Image.Image | np.ndarray | Tensor
MaskInput = str | os.PathLike | Image.Image | np.ndarray | Tensor


# ---------------------------------------------------------------------------------------------------------------
# images and masks


def _describe(source: Any) -> str:
    if isinstance(source, str | os.PathLike):
        return repr(str(source))
    if isinstance(source, Image.Image):
        return f"<{source.mode} image {source.width}x{source.height}>"
    shape = tuple(getattr(source, "shape", ()))
    return f"<{type(source).__name__} {shape}>"


def _not_a_file(path: Path, what: str) -> str:
    """Why ``path``, which is not a regular file, cannot be read as an image or mask."""
    if path.is_dir():
        return f"{what} {str(path)!r} does not exist (it is a folder)"
    if path.exists():
        return f"{what} {str(path)!r} is not a regular file (a pipe, a device or a socket); give an image file"
    return f"{what} {str(path)!r} does not exist"


def _image_array(source: np.ndarray | Tensor) -> np.ndarray:
    """uint8 ``[H, W]`` or ``[H, W, C]`` from an image array or tensor; :class:`InpaintError` when unusable."""
    is_tensor = isinstance(source, Tensor)
    if is_tensor:
        source = source.detach().cpu()
        if source.dtype in (torch.bfloat16, torch.float16):
            source = source.float()
        source = source.numpy()
    arr, shape = np.asarray(source), np.asarray(source).shape
    what = f"{'a tensor' if is_tensor else 'an array'} of shape {tuple(shape)} and dtype {arr.dtype}"
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3:
        first, last = arr.shape[0] in (1, 3, 4), arr.shape[-1] in (1, 3, 4)
        # Tensors are channels-first by convention (torchvision), arrays channels-last (PIL, OpenCV).
        if first and (is_tensor or not last):
            arr = np.moveaxis(arr, 0, -1)
        elif not last:
            arr = None
        if arr is not None and arr.shape[-1] == 1:
            arr = arr[..., 0]
    if arr is None or arr.ndim not in (2, 3):
        raise InpaintError(f"cannot use {what} as an image: expected [H, W], [H, W, C] or [C, H, W], C = 1, 3, 4")
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise InpaintError(f"cannot use {what} as an image: it has NaN or infinite values")
        low, high = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        if low < 0 or high > 255:
            raise InpaintError(
                f"cannot use {what} as an image: float values must lie in [0, 1] (or [0, 255]), got "
                f"{low:g} .. {high:g}" + (" (for an image in [-1, 1], pass (x + 1) / 2)" if low >= -1 else "")
            )
        scale = 255.0 if high <= 1.0 else 1.0
        return np.clip(np.round(arr.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        low, high = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if low < 0 or high > 65535:
            raise InpaintError(f"cannot use {what} as an image: integer values must lie in 0 .. 255 or 0 .. 65535")
        if high > 255:  # 16-bit data, rescaled (not clipped) like 16-bit files
            return np.round(arr.astype(np.float64) * (255.0 / 65535.0)).astype(np.uint8)
        return arr.astype(np.uint8)
    raise InpaintError(f"cannot use {what} as an image")


def load_image(source: ImageInput) -> Image.Image:
    """Decode ``source`` (path, PIL image, array or tensor) to an 8-bit RGB PIL image.

    RGBA/LA/transparent palette images are composited on white; CMYK, palette, grayscale and 16/32-bit images are
    converted (16-bit rescaled, not clipped); the EXIF orientation is applied. Arrays are ``[H, W]`` or
    ``[H, W, C]``, tensors ``[C, H, W]`` (or ``[1, C, H, W]``, or ``[H, W, C]`` when that is unambiguous), with
    C = 1, 3 or 4 and values uint8, 16-bit, bool, or float in [0, 1] (torchvision's convention). Raises
    :class:`InpaintError` naming the file when it cannot be read.
    """
    if isinstance(source, np.ndarray | Tensor):
        arr = _image_array(source)
        try:
            source = Image.fromarray(np.ascontiguousarray(arr))
        except (TypeError, ValueError) as err:
            raise InpaintError(f"cannot use an array of shape {arr.shape} as an image: {err}") from err
    if isinstance(source, Image.Image):
        img = ImageOps.exif_transpose(source)
        rgb = to_rgb(img)
        return rgb.copy() if rgb is source else rgb
    if not isinstance(source, str | os.PathLike):
        raise InpaintError(
            f"cannot use a {type(source).__name__} as an image: give a path, a PIL image, a numpy array or a "
            "torch.Tensor"
        )
    path = Path(source).expanduser()
    if not path.is_file():
        raise InpaintError(_not_a_file(path, "image"))
    try:
        with Image.open(path) as img:
            img.load()
            return to_rgb(ImageOps.exif_transpose(img))
    except DECODE_ERRORS as err:
        raise InpaintError(f"{path}: cannot decode image ({type(err).__name__}: {err})") from err


def load_mask(source: MaskInput, size: tuple[int, int], resize: bool = False) -> np.ndarray:
    """Read a hole mask as a bool array ``[H, W]`` (True = hole) for an image of ``size = (width, height)``.

    ``source`` is a path, a PIL image, an array or a tensor (bool, 0/1, 8/16-bit, float in [0, 1]; ``[H, W]``,
    ``[H, W, C]``, ``[C, H, W]``, ``[1, C, H, W]``). Which pixels are holes is :mod:`dmfn_lightning.core.holes`'s rule:
    a pixel whose brightest colour channel is at least 50 % of full scale
    (:data:`~dmfn_lightning.core.holes.HOLE_THRESHOLD`; 1 in a 0/1 mask) is a hole, so white and coloured strokes on
    black both work and soft masks are cut at 0.5; on a layer with transparency the painted (non-zero alpha)
    pixels are. A mask of another size raises
    :class:`InpaintError` naming both sizes, unless ``resize`` is true: then it is resized with nearest neighbour
    (no new grey values, no grown holes).
    """
    width, height = (int(v) for v in size)
    try:
        if isinstance(source, np.ndarray | Tensor):
            hole = hole_from_array(source)
        elif isinstance(source, Image.Image):
            hole = hole_from_image(source)
        elif isinstance(source, str | os.PathLike):
            path = Path(source).expanduser()
            if not path.is_file():
                raise InpaintError(_not_a_file(path, "mask"))
            try:
                with Image.open(path) as img:
                    img.load()
                    hole = hole_from_image(img)
            except DECODE_ERRORS as err:
                raise InpaintError(f"{path}: cannot decode mask image ({type(err).__name__}: {err})") from err
        else:
            raise InpaintError(
                f"cannot use a {type(source).__name__} as a mask: give a path, a PIL image, a numpy array or a "
                "torch.Tensor"
            )
    except ValueError as err:
        if isinstance(err, InpaintError):
            raise
        raise InpaintError(f"mask {_describe(source)}: {err}") from err
    if hole.shape != (height, width):
        if not resize:
            raise InpaintError(
                f"mask {_describe(source)} is {hole.shape[1]}x{hole.shape[0]} but its image is {width}x{height} "
                "(width x height). Give a mask of the image's size, or pass --resize-mask (resize=True) to resize "
                "it with nearest neighbour."
            )
        resized = Image.fromarray(hole.astype(np.uint8) * 255).resize((width, height), Image.NEAREST)
        hole = np.asarray(resized) >= 128
    return np.ascontiguousarray(hole, dtype=bool)


# ---------------------------------------------------------------------------------------------------------------
# output locations


def save_png(image: Image.Image, path: str | os.PathLike) -> Path:
    """Save ``image`` as PNG at ``path`` through a temporary file and a rename, so an interrupted run never
    leaves a truncated PNG; raises :class:`OutputPathError` naming the file when it cannot be written."""
    path = Path(path)
    try:
        return atomic_write(path, lambda f: image.save(f, format="PNG"))
    except OSError as err:
        raise OutputPathError(f"cannot write {path}: {err.strerror or err}") from err
