"""Image datasets: a folder or a file list -> decoded RGB -> square crop -> bicubic resize -> [-1, 1] + a hole.

Preprocessing follows the released DMFN loader: a square crop of side min(H, W) (random position for training,
centred for evaluation and for faces; ``crop="released"`` reproduces the loader's non-square crop), bicubic resize
to ``image_size`` with PIL, then ``x / 127.5 - 1``. Finding the files is :mod:`dmfn_lightning.data.files`, decoding
them to 8-bit RGB (any mode, EXIF orientation applied) :mod:`dmfn_lightning.core.decode`; both are re-exported here.

Bad files (undecodable, truncated, too small for the crop) follow ``on_bad_image``: ``"raise"`` stops with a
:class:`DataError` naming the file and the problem; ``"skip"`` warns with the path, counts it (the count is shared
by all DataLoader workers, see :attr:`ImageDataset.skipped_paths`), and replaces the sample by the next good image
(training) or drops it from the batch (evaluation, so metrics never count an image twice). When no file of a split
is usable, the error counts the images smaller than the crop (``image_size``) apart from those that failed to decode,
and says what to do about each.

Randomness (crops, flips, masks) is a pure function of which sample it is: evaluation samples use
``numpy.random.default_rng([stream, seed, index])``, training samples ``default_rng([stream, seed, epoch, index])``
with the epoch that :class:`~dmfn_lightning.data.sampling.EpochSampler` hands over with each index. Neither the
DataLoader workers nor the DDP rank enter it, so a sample looks the same whichever worker loads it, and a run
resumed mid-epoch (with any number of workers) sees exactly the samples the uninterrupted run would have seen.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, default_collate

from dmfn_lightning.core.decode import load_rgb, read_size, to_rgb
from dmfn_lightning.core.errors import DataError
from dmfn_lightning.core.file_lists import read_file_list, resolve_list_path
from dmfn_lightning.core.pixels import from_rgb_array
from dmfn_lightning.data.files import ImageSource, list_images
from dmfn_lightning.masks import CenterMask, MaskGenerator

__all__ = [
    "CROPS",
    "DataError",
    "ImageDataset",
    "ImageSource",
    "collate_samples",
    "list_images",
    "load_rgb",
    "read_file_list",
    "read_size",
    "resolve_list_path",
    "to_rgb",
]

# Why a file was skipped, as stored in the shared skip flags: it does not decode, it is smaller than the crop, or
# its crop is impossible (crop="released" on a very long image).
_UNREADABLE, _TOO_SMALL, _UNCROPPABLE = 1, 2, 3
_EVAL_STREAM = 0x45564C  # mixed into evaluation seeds so they never coincide with a training stream
_TRAIN_STREAM = 0x54524E


def collate_samples(samples: Sequence[dict | None]) -> dict[str, Any]:
    """``default_collate`` that drops ``None`` (skipped evaluation images); an all-skipped batch is empty (B=0)."""
    kept = [s for s in samples if s is not None]
    if kept:
        return default_collate(kept)
    return {
        "image": torch.zeros(0, 3, 0, 0),
        "mask": torch.zeros(0, 1, 0, 0),
        "bbox": torch.zeros(0, 4, dtype=torch.int64),
        "index": torch.zeros(0, dtype=torch.int64),
        "path": [],
    }


# random / center: square crops (ours; the paper's preprocessing). released: the authors' Paris/Places2 loader, whose
# PIL call crop((ix, iy, side, side)) reads the last two numbers as right/lower, not as a size (see crop_box).
CROPS = ("random", "center", "released")
_POLICIES = ("skip", "raise")


class ImageDataset(Dataset):
    """Images of one split with their holes: items are ``{"image", "mask", "bbox", "index", "path"}``.

    Args:
        source: an :class:`ImageSource`, a folder, a mapping of its fields, or a list of paths.
        image_size: output side (square).
        mask: the hole generator (default: the centred half-size box).
        train: training samples draw crops and masks from a per-worker stream; evaluation samples from a
            generator seeded by ``(seed, index)`` (a pure function of the index).
        crop: ``"random"`` square crop position, ``"center"``, or ``"released"`` (the authors' loader: a random
            position and their ``img.crop((ix, iy, side, side))`` call, see :meth:`crop_box`).
        scale: the crop side is ``U(scale) * min(H, W)`` (never below ``image_size`` unless ``allow_upscale``);
            ``(1, 1)`` is the released behaviour (the largest square).
        hflip: probability of a horizontal flip.
        allow_upscale: accept images whose short side is below ``image_size`` (upsampled bicubic). Off by
            default: a too-small image is a bad image.
        on_bad_image: ``"raise"`` or ``"skip"`` (see the module docstring).
        length: samples per epoch, cycling over the files (default: one per file).
        check_headers: read every header at construction (open + size check) so bad/small files fail before any
            training (``raise``) or are dropped up front with a warning (``skip``).
        seed: the data seed (mixed into every sample's random generator).
    """

    def __init__(
        self,
        source: ImageSource | str | Mapping | Sequence[str | os.PathLike],
        image_size: int = 256,
        mask: MaskGenerator | None = None,
        train: bool = False,
        crop: str = "center",
        scale: Sequence[float] = (1.0, 1.0),
        hflip: float = 0.0,
        allow_upscale: bool = False,
        on_bad_image: str = "raise",
        length: int | None = None,
        check_headers: bool = False,
        seed: int = 0,
    ) -> None:
        if isinstance(source, Sequence) and not isinstance(source, str | os.PathLike | Mapping):
            source = ImageSource(files=[str(p) for p in source])
        self.source = ImageSource.from_spec(source)
        self.image_size = int(image_size)
        self.mask = mask if mask is not None else CenterMask()
        self.train = bool(train)
        if crop not in CROPS:
            raise DataError(f"crop must be one of {CROPS}, got {crop!r}")
        if on_bad_image not in _POLICIES:
            raise DataError(f"on_bad_image must be one of {_POLICIES}, got {on_bad_image!r}")
        lo, hi = (float(v) for v in scale)
        if not 0 < lo <= hi <= 1:
            raise DataError(f"scale must satisfy 0 < low <= high <= 1, got {tuple(scale)}")
        self.crop = crop
        self.scale = (lo, hi)
        self.hflip = float(hflip)
        self.allow_upscale = bool(allow_upscale)
        self.on_bad_image = on_bad_image
        self.seed = int(seed)
        if self.image_size < 4:
            raise DataError(f"image_size must be at least 4, got {image_size}")

        self.paths: list[Path] = self._list_files()
        if check_headers:
            self._check_headers()
        self.length = int(length) if length is not None else len(self.paths)
        if self.length < 1:
            raise DataError(f"{self.source.describe()}: length must be at least 1, got {length}")
        # Shared-memory flags (one per file) so skips in DataLoader workers are visible in the main process.
        self._bad = torch.zeros(len(self.paths), dtype=torch.uint8).share_memory_()
        self._bad_reasons: dict[int, str] = {}

    # -- bookkeeping ---------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.length

    @property
    def num_files(self) -> int:
        return len(self.paths)

    @property
    def skipped_count(self) -> int:
        """Number of distinct files skipped so far (in this process and all its DataLoader workers)."""
        return int(torch.count_nonzero(self._bad))

    @property
    def skipped_paths(self) -> list[str]:
        return [str(self.paths[i]) for i in torch.nonzero(self._bad).flatten().tolist()]

    # -- reading files: a subclass reads them elsewhere (data.shards.ShardDataset: members of tar shards) ----------

    def _list_files(self) -> list[Path]:
        """The split's files, in the order that sample indices count them."""
        return list_images(self.source)

    def _decode(self, file_index: int) -> Image.Image:
        """File ``file_index`` decoded to 8-bit RGB (raises :class:`DataError` naming it)."""
        return load_rgb(self.paths[file_index])

    def _header_size(self, file_index: int) -> tuple[int, int]:
        """(width, height) of file ``file_index`` from its header (raises :class:`DataError` naming it)."""
        return read_size(self.paths[file_index])

    def _keep(self, file_indices: Sequence[int]) -> None:
        """Keep only these files (those whose headers passed :meth:`_check_headers`), in this order."""
        self.paths = [self.paths[i] for i in file_indices]

    def _check_headers(self) -> None:
        kept = []
        counts = dict.fromkeys((_UNREADABLE, _TOO_SMALL, _UNCROPPABLE), 0)
        for file_index, path in enumerate(self.paths):
            kind = _UNREADABLE
            try:
                size = self._header_size(file_index)
                kind = _TOO_SMALL
                self._check_size(path, *size)
            except DataError as err:
                if self.on_bad_image == "raise":
                    raise
                warnings.warn(f"skipping bad image {err}", stacklevel=3)
                counts[kind] += 1
                continue
            kept.append(file_index)
        if not kept:
            raise self._none_usable(counts)
        self._keep(kept)

    def _none_usable(self, counts: Mapping[int, int]) -> DataError:
        """The error for a split none of whose files can be used, counting each reason apart."""
        size = self.image_size
        reasons = []
        if counts.get(_TOO_SMALL):
            reasons.append(
                f"{counts[_TOO_SMALL]} smaller than the {size}x{size} crop of data.image_size={size} (use larger "
                "images, a smaller data.image_size, or data.allow_upscale=true to upsample them)"
            )
        if counts.get(_UNREADABLE):
            reasons.append(
                f"{counts[_UNREADABLE]} failed to decode (damaged files or not images: replace or remove them; "
                "the warnings above name them)"
            )
        if counts.get(_UNCROPPABLE):
            reasons.append(f"{counts[_UNCROPPABLE]} cannot be cropped with crop={self.crop} (use crop=random)")
        total = sum(counts.values())
        return DataError(f"{self.source.describe()}: none of the {total} images is usable: {'; '.join(reasons)}")

    def _check_size(self, path: Path, width: int, height: int) -> None:
        if min(width, height) < self.image_size and not self.allow_upscale:
            raise DataError(
                f"{path}: image is {width}x{height}, smaller than the {self.image_size}x{self.image_size} crop "
                "(use larger images, a smaller data.image_size, or allow_upscale: true to upsample)"
            )

    # -- randomness ----------------------------------------------------------------------------------------------

    def sample_rng(self, index: int, epoch: int = 0) -> np.random.Generator:
        """The generator for sample ``index`` (of ``epoch``, for training): a pure function of the sample."""
        if self.train:
            return np.random.default_rng([_TRAIN_STREAM, self.seed, int(epoch), int(index)])
        return np.random.default_rng([_EVAL_STREAM, self.seed, int(index)])

    # -- loading -------------------------------------------------------------------------------------------------

    def crop_box(self, width: int, height: int, rng: np.random.Generator, crop: str | None = None) -> tuple:
        """(left, top, right, bottom) of the crop: a square of side ``min(H, W)`` (times the drawn scale).

        ``crop="released"`` reproduces the authors' loader: the square's corner ``(ix, iy)`` is drawn like
        ``"random"``, but the box is ``(ix, iy, side, side)``: PIL reads the last two numbers as right and lower
        edges, so the crop is ``(side - ix) x (side - iy)`` (on a 936 x 537 Paris image ``iy = 0`` and
        138 .. 537 px wide), and the resize then stretches it to a square. Square images are not cropped, as there.
        """
        short = min(width, height)
        lo, hi = self.scale
        side = short
        if hi < 1 or lo < 1:
            side = round(short * rng.uniform(lo, hi))
            side = min(short, max(side, min(self.image_size, short), 1))
        mode = crop or self.crop
        if mode == "center":
            left, top = (width - side) // 2, (height - side) // 2
        else:
            left = int(rng.integers(0, width - side, endpoint=True))
            top = int(rng.integers(0, height - side, endpoint=True))
        if mode == "released":
            if left >= side or top >= side:
                # Only for images more than twice as wide (or tall) as their short side; PIL refuses such a box.
                raise DataError(
                    f"crop=released: the authors' box ({left}, {top}, {side}, {side}) is empty for a "
                    f"{width}x{height} image"
                )
            return left, top, side, side
        return left, top, left + side, top + side

    def load_image(self, file_index: int, rng: np.random.Generator) -> torch.Tensor:
        """Decoded, cropped, resized image ``[3, S, S]`` in [-1, 1]. Raises :class:`DataError`."""
        path = self.paths[file_index]
        img = self._decode(file_index)
        self._check_size(path, *img.size)
        return self._crop_resize(path, img, rng)

    def _crop_resize(self, path: Path, img: Image.Image, rng: np.random.Generator) -> torch.Tensor:
        try:
            box = self.crop_box(img.width, img.height, rng)
        except DataError as err:
            raise DataError(f"{path}: {err}") from err
        size = (self.image_size, self.image_size)
        # crop, then resize (as released; resizing with box= would let pixels outside the crop into the filter)
        img = img.crop(box).resize(size, Image.BICUBIC)
        if self.hflip > 0 and rng.random() < self.hflip:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        return from_rgb_array(np.asarray(img))

    def _mark_bad(self, file_index: int, err: DataError, kind: int) -> None:
        first = not bool(self._bad[file_index])
        self._bad[file_index] = kind
        if first:
            warnings.warn(
                f"skipping bad image (on_bad_image=skip; {self.skipped_count} skipped so far): {err}", stacklevel=3
            )

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any] | None:
        epoch, index = key if isinstance(key, tuple) else (0, key)  # (epoch, index) from EpochSampler
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a dataset of {self.length} samples")
        rng = self.sample_rng(index, epoch)
        file_index = index % len(self.paths)
        for _ in range(len(self.paths)):
            if not bool(self._bad[file_index]):
                path, kind = self.paths[file_index], _UNREADABLE
                try:
                    img = self._decode(file_index)
                    kind = _TOO_SMALL
                    self._check_size(path, *img.size)
                    kind = _UNCROPPABLE
                    image = self._crop_resize(path, img, rng)
                    break
                except DataError as err:
                    if self.on_bad_image == "raise":
                        raise
                    self._mark_bad(file_index, err, kind)
            if not self.train:
                return None  # evaluation: drop it (collate_samples), never count an image twice
            file_index = (file_index + 1) % len(self.paths)
        else:
            counts = torch.bincount(self._bad.long(), minlength=_UNCROPPABLE + 1).tolist()
            raise self._none_usable({kind: counts[kind] for kind in (_UNREADABLE, _TOO_SMALL, _UNCROPPABLE)})
        mask, bbox = self.mask(self.image_size, self.image_size, rng)
        return {
            "image": image,
            "mask": mask,
            "bbox": torch.tensor(bbox, dtype=torch.int64),
            "index": torch.tensor(index, dtype=torch.int64),
            "path": str(self.paths[file_index]),
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.source.describe()!s}, files={len(self.paths)}, samples={self.length}, "
            f"image_size={self.image_size}, train={self.train}, crop={self.crop!r}, mask={self.mask!r})"
        )
