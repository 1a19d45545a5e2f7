"""Writing a split's images into WebDataset tar shards and an index, resumably.

The files are the ones :func:`~dmfn_lightning.data.files.list_images` lists for the split (the same order, so
sample ``i`` of the shards is file ``i`` of the folder), copied byte for byte (JPEGs are not re-encoded, PNGs stay
lossless). Shards are cut by size and count, each written to a temporary file and renamed when complete, with
deterministic tar headers (mtime 0, uid 0), so the same files always give the same shards. After each shard, its
index entry goes to ``.progress.jsonl``; an interrupted write, run again, keeps the finished shards whose sha256
still matches and writes the rest. ``index.json`` is written last: its presence means the split is complete.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from dmfn_lightning.core.errors import DataError
from dmfn_lightning.core.file_lists import absolute_path
from dmfn_lightning.core.files import atomic_write, atomic_write_bytes
from dmfn_lightning.data.files import ImageSource, list_images
from dmfn_lightning.data.shards.index import FORMAT, INDEX_NAME, VERSION, member_name, sha256_file, shard_name

__all__ = ["JOURNAL_NAME", "SPLITS", "plan_shards", "write_split"]

SPLITS = ("train", "val", "test")
JOURNAL_NAME = ".progress.jsonl"
_TAR_BLOCK = 512
_OWN_FILE = re.compile(r"^(shard-\d{6}\.tar|index\.json|\.progress\.jsonl|\..+\.tmp)$")


def plan_shards(sizes: Sequence[int], max_bytes: int, max_samples: int) -> list[range]:
    """Consecutive sample ranges, one per shard: a shard ends before it would pass ``max_bytes`` (counting tar
    headers and padding) or ``max_samples``; a file larger than ``max_bytes`` gets a shard of its own."""
    if max_bytes < 1 or max_samples < 1:
        raise DataError(f"shard_bytes and shard_samples must be positive, got {max_bytes} and {max_samples}")
    ranges, start, used = [], 0, 0
    for i, size in enumerate(sizes):
        cost = _TAR_BLOCK + -(-size // _TAR_BLOCK) * _TAR_BLOCK
        if i > start and (used + cost > max_bytes or i - start >= max_samples):
            ranges.append(range(start, i))
            start, used = i, 0
        used += cost
    ranges.append(range(start, len(sizes)))
    return ranges


def _relative(path: Path, root: Path | None) -> str:
    """The path recorded in the index: relative to the split's root when under it (portable), else absolute."""
    if root is not None:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            pass
    return str(path)


def _write_tar(out: BinaryIO, files: Sequence[Path], first: int, names: Sequence[str]) -> tuple[list, list]:
    """Write ``files`` as members of one tar to ``out``; returns each member's data offset and size."""
    offsets, sizes = [], []
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for i, (path, name) in enumerate(zip(files, names)):
            data = path.read_bytes()
            info = tarfile.TarInfo(member_name(first + i, name))
            info.size, info.mode, info.mtime = len(data), 0o644, 0  # the same files give the same bytes
            tar.addfile(info, io.BytesIO(data))
            # addfile leaves tar.offset after the member's data, padded to whole blocks; the header came before
            offsets.append(tar.offset - -(-len(data) // _TAR_BLOCK) * _TAR_BLOCK)
            sizes.append(len(data))
    return offsets, sizes


def _write_shard(path: Path, files: Sequence[Path], first: int, names: Sequence[str]) -> tuple[list, list]:
    """Write one shard atomically (a temporary file renamed into place); returns its members' offsets and sizes."""
    layout: list[tuple[list, list]] = []
    atomic_write(path, lambda out: layout.append(_write_tar(out, files, first, names)))
    return layout[0]


def _read_journal(folder: Path, fingerprint: str) -> dict[str, dict[str, Any]]:
    """Finished shards of an earlier, interrupted write of the same files (by file name; later lines win)."""
    done: dict[str, dict[str, Any]] = {}
    index = folder / INDEX_NAME
    if index.is_file():
        raw = json.loads(index.read_text())
        if raw.get("fingerprint") != fingerprint:
            raise DataError(
                f"{folder}: holds shards of other files (another dataset, split, file list or shard size); choose "
                "another out= or delete that folder"
            )
        return {entry["file"]: entry for entry in raw["shards"]}
    journal = folder / JOURNAL_NAME
    if not journal.is_file():
        return done
    lines = journal.read_text().splitlines()
    try:
        header = json.loads(lines[0]) if lines else {}
    except json.JSONDecodeError:
        header = {}
    if header.get("fingerprint") != fingerprint:
        raise DataError(
            f"{folder}: holds an unfinished write of other files (another dataset, split, file list or shard "
            "size); choose another out= or delete that folder"
        )
    for line in lines[1:]:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:  # the line being written when the writer was killed
            continue
        done[entry["file"]] = entry
    return done


def _check_folder(folder: Path) -> None:
    """Refuse a split folder holding files this writer did not make (never write shards among other data)."""
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{folder}: exists and is not a folder (choose another out=)")
    if not folder.is_dir():
        return
    foreign = sorted(p.name for p in folder.iterdir() if not _OWN_FILE.match(p.name))
    if foreign:
        raise DataError(
            f"{folder}: holds other files ({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); "
            "choose an empty or new out="
        )


def write_split(
    source: ImageSource,
    folder: Path,
    split: str,
    max_bytes: int,
    max_samples: int,
    advance: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Write one split's files into ``folder`` (shards + ``index.json``), keeping finished shards of an earlier
    write; ``advance(n, total)`` is called as ``n`` of the ``total`` samples are written or found done. Returns a
    summary."""
    files = list_images(source)
    root = absolute_path(source.root) if source.root is not None else None  # as list_images made the paths
    names = [_relative(path, root) for path in files]
    sizes = [path.stat().st_size for path in files]
    plan = plan_shards(sizes, max_bytes, max_samples)
    fingerprint = hashlib.sha256(
        json.dumps({"paths": names, "sizes": sizes, "max_bytes": max_bytes, "max_samples": max_samples}).encode()
    ).hexdigest()

    _check_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    done = _read_journal(folder, fingerprint)
    for stale in folder.glob(".*.tmp"):  # left by a writer killed mid-shard
        stale.unlink(missing_ok=True)
    journal = folder / JOURNAL_NAME
    if not journal.is_file() and not (folder / INDEX_NAME).is_file():
        atomic_write_bytes(journal, (json.dumps({"fingerprint": fingerprint, "split": split}) + "\n").encode())

    entries, written, kept = [], 0, 0
    for number, samples in enumerate(plan):
        name = shard_name(number)
        path = folder / name
        entry = done.get(name)
        if (
            entry is not None
            and entry["paths"] == names[samples.start : samples.stop]
            and path.is_file()
            and path.stat().st_size == entry["bytes"]
            and sha256_file(path) == entry["sha256"]
        ):
            kept += 1
        else:
            span = slice(samples.start, samples.stop)
            offsets, member_sizes = _write_shard(path, files[span], samples.start, names[span])
            entry = {
                "file": name,
                "bytes": path.stat().st_size,
                "sha256": sha256_file(path),
                "paths": names[span],
                "offsets": offsets,
                "sizes": member_sizes,
            }
            with open(journal, "a") as f:  # one line per finished shard: what a resumed write keeps
                f.write(json.dumps(entry) + "\n")
            written += 1
        entries.append(entry)
        if advance is not None:
            advance(len(samples), len(files))

    planned = {shard_name(n) for n in range(len(plan))}
    for extra in folder.glob("shard-*.tar"):  # from an earlier plan of this folder, never read
        if extra.name not in planned:
            extra.unlink()
    index = {
        "format": FORMAT,
        "version": VERSION,
        "split": split,
        "source": source.describe(),
        "fingerprint": fingerprint,
        "samples": len(files),
        "shards": entries,
    }
    atomic_write_bytes(folder / INDEX_NAME, json.dumps(index).encode())
    journal.unlink(missing_ok=True)
    return {
        "split": split,
        "folder": str(folder),
        "samples": len(files),
        "shards": len(entries),
        "written": written,
        "kept": kept,
        "bytes": sum(e["bytes"] for e in entries),
    }
