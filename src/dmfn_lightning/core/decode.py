"""Decoding image files to 8-bit RGB whatever their mode, and reading their size from the header alone.

Every image becomes 8-bit RGB: grayscale, palette, RGBA/LA (composited on white), CMYK, 16-bit and 32-bit integer
and float images (rescaled to the full 8-bit range, not clipped); the EXIF orientation is applied first. A file
that cannot be decoded (including a truncated one) raises :class:`~dmfn_lightning.core.errors.DataError` naming it.
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dmfn_lightning.core.errors import DataError

__all__ = ["IMAGE_FILE_EXTENSIONS", "load_rgb", "read_size", "to_rgb"]

# The file types read as images and as mask images everywhere: folders of photos, masks and outputs.
IMAGE_FILE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")

_ALPHA_BACKGROUND = (255, 255, 255)
# What Pillow raises for a file that is not a readable image (truncated, not an image, a decompression bomb).
DECODE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError)


def to_rgb(img: Image.Image) -> Image.Image:
    """``img`` as 8-bit RGB: high bit depths rescaled by their full scale, transparency composited on white."""
    mode = img.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(img)
        if mode == "F":
            arr = arr.astype(np.float64)
            top = 1.0 if arr.size and float(np.nanmax(arr)) <= 1.0 else 255.0
        elif mode.startswith("I;16"):
            top = 65535.0
        else:  # 32-bit integer: Pillow's mode for 16-bit grayscale PNGs in some versions
            peak = int(arr.max()) if arr.size else 0
            top = 255.0 if peak <= 255 else 65535.0 if peak <= 65535 else float(2**32 - 1)
        scaled = np.clip(np.nan_to_num(arr.astype(np.float64)) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(scaled, mode="L").convert("RGB")
    if mode in ("RGBA", "LA", "La", "RGBa", "PA") or (mode in ("P", "L", "RGB") and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*_ALPHA_BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode != "RGB":
        return img.convert("RGB")
    return img


def _opened(path: str | os.PathLike, data: bytes | None) -> str | os.PathLike | io.BytesIO:
    """What ``Image.open`` reads: the file ``path``, or the encoded bytes ``data`` of that file (a shard member)."""
    return path if data is None else io.BytesIO(data)


def load_rgb(path: str | os.PathLike, data: bytes | None = None) -> Image.Image:
    """Decode ``path`` fully to an 8-bit RGB image with its EXIF orientation applied.

    ``data``: the file's encoded bytes, read elsewhere (from a shard); ``path`` then only names it in errors, so
    an image decodes to the same pixels from a folder and from a shard. Raises :class:`DataError` naming the path
    when the file cannot be decoded (including truncated files).
    """
    try:
        with Image.open(_opened(path, data)) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            return to_rgb(img)
    except DECODE_ERRORS as err:
        raise DataError(f"{path}: cannot decode image ({type(err).__name__}: {err})") from err


def read_size(path: str | os.PathLike, data: bytes | None = None) -> tuple[int, int]:
    """(width, height) from the header only, after the EXIF orientation (of ``data`` when given, as in
    :func:`load_rgb`). Raises :class:`DataError`."""
    try:
        with Image.open(_opened(path, data)) as img:
            width, height = img.size
            orientation = img.getexif().get(0x0112, 1)
    except DECODE_ERRORS as err:
        raise DataError(f"{path}: cannot read image header ({type(err).__name__}: {err})") from err
    # EXIF orientations 5-8 rotate by 90 degrees, so the displayed image has its sides swapped.
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return width, height
