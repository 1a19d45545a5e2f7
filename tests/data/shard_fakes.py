"""A small image folder (JPEGs and PNGs of several sizes, in sub-folders) and its shards, for the shard tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dmfn_lightning.data import DMFNDataModule
from dmfn_lightning.data.shards.cli import write_shards


def image_folder(root: Path, train: int = 12, val: int = 4, seed: int = 0) -> Path:
    """``root/train`` (JPEGs and PNGs, 64-96 px, some in a sub-folder) and ``root/val`` (PNGs); returns root."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("val", val)):
        for i in range(count):
            height, width = (int(v) for v in rng.integers(64, 97, size=2))
            # smooth gradients plus noise: JPEG-like content that is not all high-frequency
            yy, xx = np.mgrid[0:height, 0:width]
            base = np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) * 127 // (width + height)], -1)
            arr = np.clip(base + rng.integers(-20, 21, (height, width, 3)), 0, 255).astype(np.uint8)
            folder = root / split / ("deep" if i % 4 == 3 else "")
            folder.mkdir(parents=True, exist_ok=True)
            png = split == "val" or i % 3 == 0
            Image.fromarray(arr).save(folder / f"img_{i:03d}.{'png' if png else 'jpg'}", quality=85)
    return root


def datamodule(root: Path, **kwargs: Any) -> DMFNDataModule:
    """The folder's data module: random crops with scale and flips, so the per-sample randomness is exercised."""
    settings: dict[str, Any] = {
        "train": "train",
        "val": "val",
        "root": str(root),
        "image_size": 48,
        "batch_size": 3,
        "num_workers": 0,
        "persistent_workers": False,
        "scale": (0.6, 1.0),
        "hflip": 0.5,
        "seed": 7,
    }
    return DMFNDataModule(**{**settings, **kwargs})


def write(root: Path, out: Path, **kwargs: Any) -> list[dict[str, Any]]:
    """Shards of ``root``'s splits in ``out``: at most 5 images (or 100 kB) a shard, so there are several."""
    return write_shards(datamodule(root), out, max_bytes=kwargs.pop("max_bytes", 100_000), max_samples=5, **kwargs)
