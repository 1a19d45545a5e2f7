"""The pairs of a manifest as evaluation samples: finding each row's image, and preparing images and masks as
the data groups prepare test pairs (centred square crop, bicubic resize to the masks' size, ``[-1, 1]``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from dmfn_lightning.core.errors import DMFNError, ManifestError
from dmfn_lightning.data.datasets import ImageDataset
from dmfn_lightning.data.files import ImageSource
from dmfn_lightning.evaluation.manifests.files import Manifest, read_mask

__all__ = ["ManifestDataset", "mask_size", "resolve_images"]


def resolve_images(
    manifest: Manifest, data_root: str | os.PathLike | None, fallback: Callable[[], Sequence[Path]] | None = None
) -> list[Path]:
    """The image file of every row: ``data_root / image`` (or the absolute path), else a file of the same name among
    ``fallback()`` (e.g. the data group's test files, for a flat FFHQ folder). Raises :class:`ManifestError`."""
    root = Path(data_root).expanduser() if data_root is not None else None
    paths: list[Path] = []
    missing: list[int] = []
    for n, row in enumerate(manifest.rows):
        path = Path(row.image).expanduser()
        if not path.is_absolute():
            path = (root / path) if root is not None else path
        paths.append(path)
        if not path.is_file():
            missing.append(n)
    if missing and fallback is not None:
        try:
            by_name = {p.name: p for p in fallback()}
        except DMFNError:
            by_name = {}
        for n in list(missing):
            found = by_name.get(Path(manifest.rows[n].image).name)
            if found is not None:
                paths[n] = found
                missing.remove(n)
    if missing:
        shown = ", ".join(str(paths[n]) for n in missing[:3])
        raise ManifestError(
            f"{len(missing)} of {len(paths)} images of {manifest.source} do not exist (image paths are relative to "
            f"the data root {root}): {shown}{' ...' if len(missing) > 3 else ''}; set data.root=... / --data-root"
        )
    return paths


class ManifestDataset(Dataset):
    """The pairs of a (verified) manifest as evaluation samples ``{"image", "mask", "index", "path", "id",
    "bucket"}``: images prepared as the data groups prepare test images (centred square crop, bicubic resize to
    the masks' size), masks read with the library's mask rule."""

    def __init__(
        self, manifest: Manifest, image_paths: Sequence[Path], image_size: int, allow_upscale: bool = False
    ) -> None:
        if len(image_paths) != len(manifest.rows):
            raise ValueError("one image path per manifest row is needed")
        unique = list(dict.fromkeys(str(p) for p in image_paths))
        where = {p: i for i, p in enumerate(unique)}
        self.manifest = manifest
        self.paths = [Path(p) for p in image_paths]
        self.file_index = [where[str(p)] for p in image_paths]
        self.image_size = int(image_size)
        self.images = ImageDataset(
            ImageSource(files=unique),
            image_size=self.image_size,
            train=False,
            crop="center",
            allow_upscale=allow_upscale,
            on_bad_image="raise",
        )

    def __len__(self) -> int:
        return len(self.manifest.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.manifest.rows[index]
        # Centre crop at scale 1: the generator is not drawn from; any fixed one will do.
        image = self.images.load_image(self.file_index[index], np.random.default_rng(0))
        path = self.manifest.mask_path(row)
        _checksum, hole = read_mask(path)
        if hole.shape != (self.image_size, self.image_size):
            raise ManifestError(
                f"{path}: mask is {hole.shape[1]}x{hole.shape[0]} but the images are prepared at "
                f"{self.image_size}x{self.image_size}"
            )
        return {
            "image": image,
            "mask": torch.from_numpy(hole.astype(np.float32))[None],
            "index": torch.tensor(index, dtype=torch.int64),
            "path": str(self.paths[index]),
            "id": row.id,
            "bucket": row.bucket,
        }


def mask_size(manifest: Manifest) -> int:
    """The side of the manifest's (square) masks, from its first mask; all must agree (checked when loading)."""
    with Image.open(manifest.mask_path(manifest.rows[0])) as img:
        width, height = img.size
    if width != height:
        raise ManifestError(f"{manifest.mask_path(manifest.rows[0])}: masks must be square, got {width}x{height}")
    return int(width)
