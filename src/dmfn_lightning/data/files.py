"""Finding a split's images: a folder (searched recursively), a file list or explicit paths, then filters and checks.

A split is described by an :class:`ImageSource`; :func:`list_images` turns it into sorted paths, raising
:class:`~dmfn_lightning.core.errors.DataError` (naming the folder or list) for a missing root, listed files that do not
exist, an empty result or a count that differs from the protocol's ``expected_count``. ``pkg:<name>`` names a file
list shipped in ``dmfn_lightning/data/lists/`` (the test splits of the paper's data sets).

Folders are listed by :func:`~dmfn_lightning.core.folders.walk_files`: symlinked folders are followed, but one that
leads back into the tree (a loop) is skipped, with one warning. :func:`shared_files` finds the files two splits share,
also when one reaches the other's folder through a symlinked folder (the data module refuses such splits).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dmfn_lightning.core.decode import IMAGE_FILE_EXTENSIONS
from dmfn_lightning.core.errors import DataError
from dmfn_lightning.core.file_lists import absolute_path, read_file_list, resolve_list_path
from dmfn_lightning.core.folders import walk_files

__all__ = ["ImageSource", "list_images", "shared_files"]

_TRAILING_NUMBER = re.compile(r"(\d+)$")


def _file_number(path: Path) -> int | None:
    match = _TRAILING_NUMBER.search(path.stem)
    return int(match.group(1)) if match else None


@dataclass
class ImageSource:
    """Where one split's images are, and per-split preprocessing overrides.

    Attributes:
        root: folder searched recursively for images (jpg, jpeg, png, webp, bmp, tif, tiff, any case), or the root
            relative ``list`` entries are resolved against. Relative roots are resolved against the data module's
            ``root`` when given, else the working directory.
        list: text file with one image path per line (``pkg:<name>`` = a list shipped with the package).
        files: explicit paths (used by the demo data).
        number_range: keep files whose name ends in a number within ``[low, high]`` (inclusive), e.g. FFHQ's test
            split ``[60000, 69999]`` or Places365 ``Places365_val_00000001.jpg`` .. ``00000100``.
        limit: keep only the first ``limit`` files (after sorting and filtering).
        expected_count: if set, the number of files found must be exactly this (a protocol check).
        length: number of samples per epoch, cycling over the files (default: one per file).
        crop, scale, hflip, allow_upscale, on_bad_image: override the data module's settings for this split.
    """

    root: str | None = None
    list: str | None = None
    files: Sequence[str] | None = None
    number_range: Sequence[int] | None = None
    limit: int | None = None
    expected_count: int | None = None
    length: int | None = None
    crop: str | None = None
    scale: Sequence[float] | None = None
    hflip: float | None = None
    allow_upscale: bool | None = None
    on_bad_image: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_spec(cls, spec: Any) -> ImageSource:
        """From an ``ImageSource``, a folder path, or a mapping (``dict`` / ``DictConfig``) of the attributes."""
        if isinstance(spec, ImageSource):
            return spec
        if isinstance(spec, str | os.PathLike):
            return cls(root=str(spec))
        if isinstance(spec, DictConfig):
            spec = OmegaConf.to_container(spec, resolve=True)
        if not isinstance(spec, Mapping):
            raise DataError(f"a dataset source must be a folder path or a mapping, got {spec!r}")
        names = {f.name for f in fields(cls)} - {"extra"}
        unknown = set(spec) - names
        if unknown:
            raise DataError(f"unknown dataset source keys {sorted(unknown)}; valid keys: {sorted(names)}")
        values = dict(spec)
        for key in ("files", "number_range", "scale"):
            if values.get(key) is not None:
                values[key] = list(values[key])
        return cls(**values)

    def with_root(self, base: str | os.PathLike | None) -> ImageSource:
        """A copy whose relative ``root`` is joined to ``base``."""
        if base is None:
            return self
        root = Path(base) / self.root if self.root is not None else Path(base)
        copy = ImageSource(**{f.name: getattr(self, f.name) for f in fields(self)})
        copy.root = str(root)
        return copy

    def describe(self) -> str:
        """A short name of the source for messages: its list, its folder, or its first file names."""
        if self.files is not None:
            names = [Path(f).stem for f in self.files]
            return f"files [{', '.join(names[:4])}{', ...' if len(names) > 4 else ''}]"
        return str(self.list or self.root)


def list_images(source: ImageSource | str | Mapping) -> list[Path]:
    """The sorted image paths of a source. Raises :class:`DataError` for a missing root, a list naming missing
    files, an empty result or a count that differs from ``expected_count``."""
    source = ImageSource.from_spec(source)
    if source.files is not None:
        files = [Path(f).expanduser() for f in source.files]
        missing = [p for p in files if not p.is_file()]
        if missing:
            raise DataError(f"{missing[0]}: image file does not exist ({len(missing)} missing)")
        where = "the explicit file list"
    elif source.list is not None:
        files = read_file_list(source.list, absolute_path(source.root) if source.root is not None else None)
        where = str(resolve_list_path(source.list))
    elif source.root is not None:
        root = absolute_path(source.root)
        if not root.exists():
            raise DataError(f"{root}: image folder does not exist")
        if not root.is_dir():
            raise DataError(f"{root}: not a folder (give a list file with `list:` instead)")
        files = walk_files(root, IMAGE_FILE_EXTENSIONS, what="image folder")
        where = str(root)
        if not files:
            raise DataError(
                f"{root}: no images found (searched recursively for {', '.join(sorted(IMAGE_FILE_EXTENSIONS))})"
            )
    else:
        raise DataError("a dataset source needs `root`, `list` or `files`")

    if source.number_range is not None:
        lo, hi = (int(v) for v in source.number_range)
        files = [p for p in files if (n := _file_number(p)) is not None and lo <= n <= hi]
        if not files:
            raise DataError(f"{where}: no image whose file name ends in a number within [{lo}, {hi}]")
    if source.limit is not None:
        files = files[: int(source.limit)]
    if source.expected_count is not None and len(files) != int(source.expected_count):
        raise DataError(
            f"{where}: found {len(files)} images but this split must have exactly {source.expected_count} "
            "(incomplete download or wrong layout? see the README's dataset section; override "
            "`expected_count: null` to accept)"
        )
    return files


class _RealKeys:
    """``(real folder, file name)`` of a path: its folder resolved (one ``realpath`` per folder), not a link to the
    file itself, so two names linking to one image file stay two images."""

    def __init__(self) -> None:
        self._real: dict[str, str] = {}

    def __call__(self, path: Path) -> tuple[str, str]:
        parent = str(path.parent)
        if parent not in self._real:
            self._real[parent] = os.path.realpath(parent)
        return self._real[parent], path.name


def shared_files(files: Sequence[Path], others: Sequence[Path]) -> list[tuple[Path, Path]]:
    """``(path in files, path in others)`` pairs naming one file of one folder, under the same name or under two
    (one reached through a symlinked folder), in the order of ``files``. Memory grows with ``others`` only: pass the
    smaller split there."""
    key = _RealKeys()
    known = {key(p): p for p in others}
    return [(path, other) for path in files if (other := known.get(key(path))) is not None]
