"""Holes read from mask image files (e.g. the NVIDIA irregular mask data set), a folder or a file list."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from dmfn_lightning.core.errors import DataError
from dmfn_lightning.core.file_lists import read_file_list
from dmfn_lightning.core.folders import walk_files
from dmfn_lightning.core.holes import HOLE_THRESHOLD, MASK_FILE_EXTENSIONS, hole_from_image
from dmfn_lightning.masks.base import MaskGenerator, MaskResult, as_range, bbox_around, mask_tensor

__all__ = ["IrregularFileMask"]


class IrregularFileMask(MaskGenerator, kind="irregular_files", label="mask files"):
    """Holes read from mask image files (a folder, searched recursively, or a file list).

    A file is binarised with the library's one mask rule (:mod:`dmfn_lightning.core.holes`, as for ``--mask`` files of
    the inpainting CLI): a pixel whose brightest colour channel is at least ``threshold`` of full scale is a hole
    (white = hole, as in the NVIDIA irregular mask set and the released DMFN loader; coloured strokes count too;
    1 in a 0/1 mask; the painted pixels of a transparent layer); ``invert`` swaps that. In training (``augment``) it
    is flipped left-right / top-bottom with probability 1/2 each and rotated by a random multiple of 90 degrees.
    It is then resized to the image with **nearest neighbour** and its hole ratio recomputed after resizing (the
    released code resized bicubic and thresholded > 0, which grows holes). ``hole_ratio`` keeps only masks whose
    resized hole fraction lies in (low, high] (re-drawing up to ``max_tries``), e.g. ``[0.1, 0.2]`` for one bin of
    the NVIDIA test set. Which file is used is drawn from ``rng`` (so evaluation is a function of the sample index).

    A folder is searched with :func:`~dmfn_lightning.core.folders.walk_files` (symlinked folders followed, loops
    skipped). On first use the files are checked: a folder where no mask has a hole (all black, or holes of the
    other colour than ``invert`` says) is refused with a :class:`DataError`; empty masks among others are warned
    about once (when met first, or drawn).

    Args:
        root: folder of mask images, or the root that relative entries of ``list`` are resolved against.
        list: optional text file, one mask path per line.
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        list: str | os.PathLike | None = None,
        augment: bool = True,
        threshold: float = HOLE_THRESHOLD,
        invert: bool = False,
        hole_ratio: Sequence[float] | None = None,
        max_tries: int = 100,
    ) -> None:
        if root is None and list is None:
            raise ValueError("IrregularFileMask needs a root folder or a list file")
        self.root = None if root is None else str(root)
        self.list = None if list is None else str(list)
        self.augment = bool(augment)
        self.threshold = float(threshold)
        self.invert = bool(invert)
        self.hole_ratio = None if hole_ratio is None else as_range(hole_ratio, "hole_ratio")
        self.max_tries = int(max_tries)
        self._files: list[Path] | None = None
        self._warned_empty = False

    @property
    def files(self) -> list[Path]:
        """The mask files, found and checked on first use (so building the generator touches no disk)."""
        if self._files is None:
            files = self._find_files()
            self._check_holes(files)
            self._files = files
        return self._files

    @property
    def where(self) -> str:
        """The folder or list the masks come from, for messages."""
        return str(self.list or self.root)

    def _find_files(self) -> list[Path]:
        if self.list is not None:
            files = read_file_list(self.list, self.root)
        else:
            root = Path(self.root).expanduser()
            if not root.is_dir():
                raise DataError(f"{root}: mask folder does not exist")
            files = walk_files(root, MASK_FILE_EXTENSIONS, what="mask folder")
        if not files:
            raise DataError(f"{self.where}: no mask images found")
        return files

    def _hole_rule(self) -> str:
        rule = (
            f"a hole is a pixel whose brightest colour channel reaches threshold={self.threshold:g} of full scale, "
            "e.g. white, or 1 in a 0/1 mask"
        )
        if self.invert:
            rule += ", and invert=true makes holes the pixels below it"
        return rule

    def _check_holes(self, files: list[Path]) -> None:
        """Refuse masks without any hole; warn when the first masks are empty (draws warn about later ones).

        Reads files in order up to the first one with a hole: one file for a usual folder, all of them only when
        none has a hole (black masks, or white = kept pixels: ``invert``)."""
        for count, path in enumerate(files):
            if self.read_hole(path).any():
                if count:
                    self._warn_empty(path=files[0], count=count)
                return
        raise DataError(
            f"{self.where}: none of the {len(files)} mask images has a hole ({self._hole_rule()}); use masks with "
            "white holes on black, or set mask.invert=true if the holes are black"
        )

    def _warn_empty(self, path: Path, count: int | None = None) -> None:
        if self._warned_empty:
            return
        self._warned_empty = True
        how_many = f"the first {count} mask image(s)" if count else "some mask images"
        warnings.warn(
            f"{self.where}: {how_many} give samples without a hole, e.g. {path} ({self._hole_rule()}): such "
            "samples have nothing to inpaint; remove empty masks from the folder",
            stacklevel=3,
        )

    def read_hole(self, path: Path) -> np.ndarray:
        """Binary uint8 mask of ``path`` at the file's size (``invert`` applied, nothing else)."""
        try:
            with Image.open(path) as img:
                img.load()
                hole = hole_from_image(img, self.threshold).astype(np.uint8)
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            raise DataError(f"{path}: cannot read mask image ({err})") from err
        return 1 - hole if self.invert else hole

    def load(self, path: Path, height: int, width: int, rng: np.random.Generator | None) -> np.ndarray:
        """Binary uint8 [H, W] mask from ``path`` (augmented when ``rng`` is given and ``augment`` is on)."""
        hole = self.read_hole(path)
        if rng is not None and self.augment:
            if rng.random() < 0.5:
                hole = hole[:, ::-1]
            if rng.random() < 0.5:
                hole = hole[::-1, :]
            hole = np.rot90(hole, int(rng.integers(0, 4)))
        if hole.shape != (height, width):
            resized = Image.fromarray(np.ascontiguousarray(hole) * 255).resize((width, height), Image.NEAREST)
            hole = (np.asarray(resized) > 127).astype(np.uint8)
        return np.ascontiguousarray(hole)

    def __call__(self, height: int, width: int, rng: np.random.Generator) -> MaskResult:
        files = self.files
        for _ in range(self.max_tries):
            path = files[int(rng.integers(0, len(files)))]
            hole = self.load(path, height, width, rng)
            ratio = float(hole.mean())
            if ratio == 0.0:
                self._warn_empty(path)
            if self.hole_ratio is None or self.hole_ratio[0] < ratio <= self.hole_ratio[1]:
                return mask_tensor(hole), bbox_around(hole)
        raise RuntimeError(
            f"IrregularFileMask found no mask with hole ratio in {self.hole_ratio} after {self.max_tries} draws "
            f"from {len(files)} files under {self.where}"
        )
