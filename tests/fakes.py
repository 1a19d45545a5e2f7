"""Tiny stand-ins for the paper's datasets: the real directory layouts, filled with symlinks to one small image."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from dmfn_lightning.core.file_lists import resolve_list_path


def fake_dataset_layouts(data: Path, size: int = 20) -> Path:
    """Create ``paris``, ``places2``, ``celeba_hq``, ``ffhq`` and ``folder`` under ``data`` (as in conf/data/)."""
    data.mkdir(parents=True, exist_ok=True)
    img = data / "_src.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(img)

    def link(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(img, path)

    for i in range(3):
        link(data / "paris" / "paris_train_original" / f"{i:03d}_train.JPG")
    for i in range(1, 101):
        link(data / "paris" / "paris_eval_gt" / f"{i:03d}_im.png")
    for i in range(1, 4):  # three training images everywhere: a batch of 2 with drop_last still exists
        link(data / "places2" / "data_256" / "a" / "airfield" / f"{i:08d}.jpg")
    for i in range(1, 102):
        link(data / "places2" / "val_256" / f"Places365_val_{i:08d}.jpg")
    for i in range(4, 7):
        link(data / "celeba_hq" / "celeba_hq_train" / f"img{i:08d}.png")
    for name in resolve_list_path("pkg:celeba_hq_test.txt").read_text().split():  # the authors' 2,000 test files
        link(data / "celeba_hq" / name)
    for n in [*range(3), *range(60000, 70000), 70000]:
        link(data / "ffhq" / "images1024x1024" / f"{n // 1000 * 1000:05d}" / f"{n:05d}.png")
    for name in ("x.webp", "y.png", "z.JPEG"):
        link(data / "folder" / "train" / name)
    link(data / "folder" / "val" / "y.tif")
    return data
