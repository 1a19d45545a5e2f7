"""Test images for the metric tests: uint8 levels as the data layer delivers them, crops of a real photo, and
inpainting-like composites (a hole filled with noise, a blur or a flat colour)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from skimage import data as skdata


def levels_to_tensor(levels: np.ndarray) -> torch.Tensor:
    """uint8 levels [B, 3, H, W] -> [-1, 1] exactly as the data layer does."""
    return torch.from_numpy(levels.astype(np.float32)).div(127.5).sub(1.0)


def random_levels(shape, low=0, high=256, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(low, high, shape).astype(np.uint8)


def photo(size: int, seed: int = 0) -> np.ndarray:
    """A ``size`` x ``size`` uint8 HWC crop of scikit-image's astronaut (a real photo: smooth areas and edges)."""
    rng = np.random.default_rng(seed)
    full = skdata.astronaut()
    side = int(rng.integers(max(size, 64), 512))
    y, x = (int(v) for v in rng.integers(0, 512 - side + 1, 2))
    return np.asarray(Image.fromarray(full[y : y + side, x : x + side]).resize((size, size), Image.BICUBIC))


def composite(gt: np.ndarray, hole: tuple[slice, slice], fill: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(output, mask): ``gt`` with the hole replaced as an inpainting result would be (noise, blur or flat)."""
    out = gt.copy()
    region = out[hole]
    if fill == "noise":
        out[hole] = np.random.default_rng(seed).integers(0, 256, region.shape)
    elif fill == "blur":
        out[hole] = ndimage.gaussian_filter(gt.astype(np.float64), sigma=(4, 4, 0))[hole].round().astype(np.uint8)
    else:
        out[hole] = region.reshape(-1, 3).mean(axis=0).round().astype(np.uint8)
    mask = np.zeros(gt.shape[:2], dtype=np.float32)
    mask[hole] = 1.0
    return out, mask


def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """uint8 HWC images -> [-1, 1] ``[B, 3, H, W]`` as the data layer delivers them."""
    return levels_to_tensor(np.stack(images).transpose(0, 3, 1, 2))


def photo_batch(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    return to_tensor([photo(size, seed + i) for i in range(n)])
