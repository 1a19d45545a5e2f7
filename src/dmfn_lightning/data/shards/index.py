"""The shard index: what ``<split>/index.json`` records, how it is read, and how shard files are checked.

A split written by :mod:`dmfn_lightning.data.shards.writer` is a folder of WebDataset tar shards
(``shard-000000.tar`` ...; member ``<9-digit sample index>.<ext>`` holds the original file's bytes) and
``index.json``::

    {"format": "dmfn-shards", "version": 1, "split": "train", "source": "<folder or list it came from>",
     "fingerprint": "<sha256 of the listed files, their sizes and the shard limits>",
     "shards": [{"file": "shard-000000.tar", "bytes": N, "sha256": "...",
                 "paths": [<original path relative to the source root>, ...],
                 "offsets": [<byte offset of each member's data>, ...], "sizes": [<its size>, ...]}, ...]}

Samples are numbered across shards in order, which is the order :func:`~dmfn_lightning.data.files.list_images`
listed them: sample ``i`` of the shards is file ``i`` of the folder. The offsets make a read one ``pread``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dmfn_lightning.core.errors import DataError

__all__ = ["FORMAT", "INDEX_NAME", "VERSION", "ShardIndex", "member_name", "sha256_file", "shard_name"]

FORMAT, VERSION = "dmfn-shards", 1
INDEX_NAME = "index.json"
_HASH_BLOCK = 8 << 20


def shard_name(number: int) -> str:
    return f"shard-{number:06d}.tar"


def member_name(index: int, path: str) -> str:
    """The tar member of sample ``index``: WebDataset's ``<key>.<extension>`` (key without dots)."""
    return f"{index:09d}.{Path(path).suffix.lower().lstrip('.') or 'img'}"


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class ShardIndex:
    """One split's index, with the sample table as arrays (a million samples cost tens of MB, not a dict each).

    Attributes:
        folder: the local folder holding ``index.json`` and the shards.
        raw: the parsed ``index.json``.
        paths: every sample's original relative path, in sample order.
        shard, offset, size: per sample, its shard number and its member data's byte range.
    """

    folder: Path
    raw: dict[str, Any]
    paths: list[str]
    shard: np.ndarray
    offset: np.ndarray
    size: np.ndarray

    @classmethod
    def parse(cls, folder: str | os.PathLike, text: str | bytes, where: str) -> ShardIndex:
        """From the text of ``index.json`` (``where`` names it in errors)."""
        try:
            raw = json.loads(text)
            if raw.get("format") != FORMAT or raw.get("version") != VERSION:
                raise ValueError(f"not a {FORMAT} v{VERSION} index")
            paths: list[str] = []
            shard, offset, size = [], [], []
            for number, entry in enumerate(raw["shards"]):
                count = len(entry["paths"])
                if not len(entry["offsets"]) == len(entry["sizes"]) == count:
                    raise ValueError(f"shard {entry['file']} lists {count} paths but not as many offsets and sizes")
                paths += entry["paths"]
                shard.append(np.full(count, number, dtype=np.int32))
                offset += entry["offsets"]
                size += entry["sizes"]
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise DataError(
                f"{where}: not a readable shard index ({err}; write the shards again with "
                "python -m dmfn_lightning.data.shards write)"
            ) from err
        if not paths:
            raise DataError(f"{where}: the shard index lists no samples (write the shards again)")
        return cls(
            folder=Path(folder),
            raw=raw,
            paths=paths,
            shard=np.concatenate(shard),
            offset=np.asarray(offset, dtype=np.int64),
            size=np.asarray(size, dtype=np.int64),
        )

    @classmethod
    def load(cls, folder: str | os.PathLike) -> ShardIndex:
        """Read ``folder/index.json``; raises :class:`DataError` when it is missing or unreadable."""
        path = Path(folder) / INDEX_NAME
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            raise DataError(
                f"{path}: no shard index here (write the shards first: python -m dmfn_lightning.data.shards write "
                "data=<dataset> out=DIR, then data.shards=DIR)"
            ) from None
        return cls.parse(folder, text, str(path))

    @property
    def shards(self) -> list[dict[str, Any]]:
        return self.raw["shards"]

    def __len__(self) -> int:
        return len(self.paths)

    def shard_path(self, number: int) -> Path:
        return self.folder / self.shards[number]["file"]

    def check_shard(self, number: int, verified: dict[str, list] | None = None) -> bool:
        """Raise :class:`DataError` (one line naming the file and what to do) if shard ``number`` is missing,
        has another size or another sha256 than the index says. ``verified`` maps a shard's path to the
        ``[size, mtime_ns, sha256]`` it had when last hashed: an unchanged file is not hashed again. Returns
        whether it was hashed now."""
        entry = self.shards[number]
        path = self.shard_path(number)
        redo = "copy it again, or write the shards again with python -m dmfn_lightning.data.shards write"
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise DataError(f"{path}: shard is missing (listed in {INDEX_NAME}; {redo})") from None
        if stat.st_size != entry["bytes"]:
            raise DataError(
                f"{path}: shard is {stat.st_size} bytes, its index says {entry['bytes']} (truncated or replaced; "
                f"{redo})"
            )
        known = (verified or {}).get(str(path))
        if known == [stat.st_size, stat.st_mtime_ns, entry["sha256"]]:
            return False
        if sha256_file(path) != entry["sha256"]:
            raise DataError(f"{path}: shard is corrupt (its sha256 differs from {INDEX_NAME}; {redo})")
        if verified is not None:
            verified[str(path)] = [stat.st_size, stat.st_mtime_ns, entry["sha256"]]
        return True
