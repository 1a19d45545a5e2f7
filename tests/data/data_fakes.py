"""Helpers shared by the data tests (tests/data/) and the decoding and file-list tests (tests/core/): small test
images and a folder of bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def save_image(path: Path, arr: np.ndarray | None = None, size=(32, 24), mode: str | None = None, **kwargs) -> Path:
    """Write a test image (default: a 32 x 24 RGB gradient) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if arr is None:
        w, h = size
        yy, xx = np.mgrid[0:h, 0:w]
        arr = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), (xx + yy) % 256], -1)
        arr = arr.astype(np.uint8)
    img = Image.fromarray(arr)
    if mode is not None and mode != img.mode:
        img = img.convert(mode)
    img.save(path, **kwargs)
    return path


def truncated_jpeg(path: Path) -> Path:
    rng = np.random.default_rng(0)
    save_image(path, rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def bad_folder(root: Path) -> dict[str, Path]:
    """One truncated JPEG, one RGBA PNG, one grayscale PNG, one 16-bit PNG and one .txt file."""
    rgba = np.zeros((24, 32, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 255
    rgba[:, :16, 3] = 0  # left half transparent
    g16 = (np.arange(24 * 32).reshape(24, 32) * 85).astype(np.uint16)  # 0 .. 65195
    files = {
        "truncated": truncated_jpeg(root / "a_truncated.jpg"),
        "rgba": save_image(root / "b_rgba.png", rgba),
        "gray": save_image(root / "c_gray.png", mode="L"),
        "g16": save_image(root / "d_16bit.png", g16),
        "txt": root / "e_notes.txt",
    }
    files["txt"].write_text("not an image")
    return files
