"""Reading a split from shards by random access: :class:`ShardDataset` is :class:`ImageDataset` with another file store.

Sample ``i`` is the member at ``(shard, offset, size)`` of the index: one ``pread`` from a shard file that each
process opens once and keeps open, so an epoch opens as many files per DataLoader worker as there are shards (a
folder opens one per image). Everything else (the (seed, epoch, index) randomness, crops, holes, the bad-image
policy, :class:`~dmfn_lightning.data.sampling.EpochSampler`'s order and the resume state) is ImageDataset's, so
the same seed gives the same batches from the shards as from the folder they were written from.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dmfn_lightning.core.decode import load_rgb, read_size
from dmfn_lightning.core.errors import DataError
from dmfn_lightning.data.datasets import ImageDataset
from dmfn_lightning.data.files import ImageSource
from dmfn_lightning.data.shards.index import ShardIndex

__all__ = ["ShardDataset", "ShardReader"]


class ShardReader:
    """Reads byte ranges of a split's shards, keeping one open file per shard per process.

    The handles are dropped when pickled (spawned DataLoader workers) and reopened after a fork (a worker must
    not share its parent's files), so every process opens each shard it reads at most once: :attr:`opened`
    counts those opens in this process.
    """

    def __init__(self, index: ShardIndex) -> None:
        self.index = index
        self._files: dict[int, int] = {}
        self._pid = os.getpid()
        self.opened = 0

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_files": {}, "opened": 0}

    def _fd(self, shard: int) -> int:
        if self._pid != os.getpid():  # forked: the parent's descriptors share one file position with it
            self._files, self._pid, self.opened = {}, os.getpid(), 0
        fd = self._files.get(shard)
        if fd is None:
            path = self.index.shard_path(shard)
            try:
                fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
            except FileNotFoundError:
                raise DataError(f"{path}: shard is missing (it was there at start-up; copy it again)") from None
            self._files[shard] = fd
            self.opened += 1
        return fd

    def read(self, shard: int, offset: int, size: int) -> bytes:
        """``size`` bytes at ``offset`` of shard ``shard``; raises :class:`DataError` if the shard is shorter."""
        fd = self._fd(shard)
        if hasattr(os, "pread"):
            data = os.pread(fd, size, offset)
        else:  # pragma: no cover - Windows
            os.lseek(fd, offset, os.SEEK_SET)
            data = os.read(fd, size)
        if len(data) != size:
            raise DataError(
                f"{self.index.shard_path(shard)}: shard is truncated (it changed after start-up; copy it again)"
            )
        return data

    def close(self) -> None:
        for fd in self._files.values():
            os.close(fd)
        self._files = {}

    def __del__(self) -> None:
        if getattr(self, "_pid", None) == os.getpid():
            self.close()


class ShardDataset(ImageDataset):
    """:class:`ImageDataset` over a split's shards (see the module docstring).

    Args:
        index: the split's checked :class:`ShardIndex` (:func:`~dmfn_lightning.data.shards.location.open_split`).
        source: the split's source as configured: only its ``length`` and per-split preprocessing overrides are
            used (its ``root``, ``list`` and filters were applied when the shards were written).
        **kwargs: as for :class:`ImageDataset`.
    """

    def __init__(self, index: ShardIndex, source: ImageSource | None = None, **kwargs: Any) -> None:
        self.index = index
        self.reader = ShardReader(index)
        self._rows = np.arange(len(index))  # file index -> sample row of the index (after header checks)
        spec = source if source is not None else ImageSource()
        shard_source = ImageSource(
            root=str(index.folder),
            length=spec.length,
            crop=spec.crop,
            scale=spec.scale,
            hflip=spec.hflip,
            allow_upscale=spec.allow_upscale,
            on_bad_image=spec.on_bad_image,
        )
        super().__init__(shard_source, **kwargs)

    def _list_files(self) -> list[Path]:
        # The recorded paths, under the shard folder: they name samples in batches, warnings and errors.
        return [self.index.folder / path for path in self.index.paths]

    def _bytes(self, file_index: int) -> bytes:
        row = self._rows[file_index]
        return self.reader.read(int(self.index.shard[row]), int(self.index.offset[row]), int(self.index.size[row]))

    def _decode(self, file_index: int) -> Image.Image:
        return load_rgb(self.paths[file_index], data=self._bytes(file_index))

    def _header_size(self, file_index: int) -> tuple[int, int]:
        return read_size(self.paths[file_index], data=self._bytes(file_index))

    def _keep(self, file_indices: Sequence[int]) -> None:
        super()._keep(file_indices)
        self._rows = self._rows[np.asarray(file_indices, dtype=np.int64)]
