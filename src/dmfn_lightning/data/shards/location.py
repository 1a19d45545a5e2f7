"""Where a split's shards are read from: a local folder, or a URL copied once into a local cache, checked by sha256.

``data.shards`` is a folder (``/scratch/shards/places2``) or a URL (``s3://bucket/places2``, ``gs://...``,
``https://...``, ``file:///abs/dir`` for a "remote" on a mounted file system). A URL is read through fsspec (which
torch and Lightning already install; object stores need its backend: ``s3fs``, ``gcsfs``, ``adlfs``): its
``<split>/index.json`` is read on every start, and each shard is copied into
``<cache>/<sha256 of the URL>/<split>/`` unless the cached copy already has the index's size and sha256. A copy
is hashed as it streams in and renamed into place only when it matches; processes sharing a cache (the DDP ranks
of a node) copy each shard once, one at a time under a lock per shard.

Every shard is checked against the index before training starts (missing, other size, other sha256: one
:class:`~dmfn_lightning.core.errors.DataError` line naming it). Hashing a Places2-size split takes minutes, so
the result is remembered per file (size, mtime, sha256) in ``<cache>/verified/``: an unchanged shard is hashed once,
and a changed one (a rewritten or damaged file has a new mtime) is hashed again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from dmfn_lightning.core.errors import DataError
from dmfn_lightning.core.file_lists import absolute_path
from dmfn_lightning.core.files import atomic_write_bytes
from dmfn_lightning.data.shards.index import INDEX_NAME, ShardIndex

__all__ = ["cache_root", "fetch_split", "is_url", "open_split"]

log = logging.getLogger(__name__)
_COPY_BLOCK = 8 << 20


def cache_root(shard_cache: str | os.PathLike | None = None) -> Path:
    """``data.shard_cache``, else ``$DMFN_SHARD_CACHE``, else ``$XDG_CACHE_HOME/dmfn_lightning/shards`` (default
    ``~/.cache``): on a cluster, point it at node-local disk."""
    if shard_cache:
        return absolute_path(shard_cache)
    if os.environ.get("DMFN_SHARD_CACHE"):
        return absolute_path(os.environ["DMFN_SHARD_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "dmfn_lightning" / "shards"


def is_url(location: str | os.PathLike) -> bool:
    return "://" in str(location)


def _key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _stamps_file(folder: Path, cache: Path) -> Path:
    return cache / "verified" / f"{_key(str(folder.resolve()))}.json"


def _load_stamps(path: Path) -> dict[str, list]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _save_stamps(path: Path, stamps: dict[str, list]) -> None:
    try:
        atomic_write_bytes(path, json.dumps(stamps).encode())
    except OSError as err:  # a read-only cache costs a re-hash next time, never the run
        log.warning("cannot record verified shards in %s (%s): they will be hashed again next time", path, err)


def _shard_lock(index: ShardIndex, number: int, cache: Path) -> Path:
    """The lock file of one shard, in the (node-local) cache."""
    return cache / "locks" / f"{_key(str(index.shard_path(number)))}.lock"


def verify(index: ShardIndex, cache: Path) -> int:
    """Check every shard of ``index`` (see :meth:`ShardIndex.check_shard`); returns how many were hashed now.

    Processes that share the cache (the DDP ranks of a node, starting together) hash each shard once: a shard is
    checked under its lock, after reading the records the others have written meanwhile, and its record is saved
    before the lock is released."""
    stamps_path = _stamps_file(index.folder, cache)
    stamps = _load_stamps(stamps_path)
    hashed = 0
    for number in range(len(index.shards)):
        with _holding(_shard_lock(index, number, cache)):
            stamps.update(_load_stamps(stamps_path))
            if index.check_shard(number, stamps):
                hashed += 1
                _save_stamps(stamps_path, {**_load_stamps(stamps_path), **stamps})
    return hashed


def _filesystem(url: str):
    """(fsspec file system, path inside it) of ``url``; a :class:`DataError` when fsspec cannot read it."""
    try:
        import fsspec
    except ImportError:  # pragma: no cover - torch depends on fsspec
        raise DataError(f"data.shards={url}: reading URLs needs fsspec (pip install fsspec)") from None
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as err:
        raise DataError(f"data.shards={url}: cannot read this URL ({err})") from None


def _copy(fs, remote: str, local: Path, sha256: str, where: str) -> None:
    """Stream ``remote`` to a temporary file beside ``local``, hashing it; rename it to ``local`` if it matches."""
    tmp = local.with_name(f".{local.name}.{os.getpid()}.tmp")  # one per process: two ranks may copy at once
    digest = hashlib.sha256()
    try:
        with fs.open(remote, "rb") as src, open(tmp, "wb") as dst:
            while block := src.read(_COPY_BLOCK):
                digest.update(block)
                dst.write(block)
        if digest.hexdigest() != sha256:
            raise DataError(
                f"{where}: remote shard is corrupt (its sha256 differs from its {INDEX_NAME}; write the shards again)"
            )
        os.replace(tmp, local)
    except FileNotFoundError:
        raise DataError(f"{where}: remote shard is missing (listed in its {INDEX_NAME}; upload it again)") from None
    except OSError as err:
        raise DataError(f"{where}: cannot copy the shard ({err}; check the URL and your access)") from None
    finally:
        tmp.unlink(missing_ok=True)


def _cached(index: ShardIndex, number: int, stamps: dict[str, list]) -> bool:
    """Whether the cache already holds shard ``number`` as the index describes it."""
    try:
        index.check_shard(number, stamps)
    except DataError:
        return False
    return True


@contextlib.contextmanager
def _holding(lock_file: Path) -> Iterator[None]:
    """Hold the lock of one cached shard while it is copied or checked: the DDP ranks of one node share the cache,
    and one copy or hash of a Places2 shard is enough (the others wait, then find it in place or recorded).
    ``fcntl.lockf`` is a per-process lock the kernel drops when its holder dies, so a killed copy never blocks the
    next run; without fcntl (Windows) each process copies on its own, which is slower but still correct (tmp file +
    rename)."""
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a+b") as handle:  # left in place: removing a lock file others may wait on is a race
        fcntl.lockf(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(handle, fcntl.LOCK_UN)


def fetch_split(url: str, cache: Path) -> tuple[ShardIndex, list[str]]:
    """Bring the shards of ``url`` (one split's folder) into the cache; returns the cached index and the names of
    the shards copied now (none when the cache was up to date)."""
    fs, base = _filesystem(url)
    base = base.rstrip("/")
    where = f"{url.rstrip('/')}/{INDEX_NAME}"
    try:
        text = fs.cat_file(f"{base}/{INDEX_NAME}")
    except FileNotFoundError:
        raise DataError(
            f"{where}: no shard index there (write the shards with python -m dmfn_lightning.data.shards write and "
            "upload the output folder)"
        ) from None
    except OSError as err:
        raise DataError(f"{where}: cannot read it ({err}; check the URL and your access)") from None
    folder = cache / _key(url.rstrip("/"))
    folder.mkdir(parents=True, exist_ok=True)
    index = ShardIndex.parse(folder, text, where)
    stamps_path = _stamps_file(folder, cache)
    stamps = _load_stamps(stamps_path)
    copied = []
    for number, entry in enumerate(index.shards):
        if _cached(index, number, stamps):
            continue
        with _holding(_shard_lock(index, number, cache)):
            if _cached(index, number, stamps):  # another process on this machine (a DDP rank) copied it meanwhile
                continue
            _copy(fs, f"{base}/{entry['file']}", index.shard_path(number), entry["sha256"], f"{url}/{entry['file']}")
        stat = index.shard_path(number).stat()
        stamps[str(index.shard_path(number))] = [stat.st_size, stat.st_mtime_ns, entry["sha256"]]
        copied.append(entry["file"])
    _save_stamps(stamps_path, stamps)
    atomic_write_bytes(folder / INDEX_NAME, text if isinstance(text, bytes) else text.encode())
    if copied:
        log.info("copied %d of %d shards of %s into %s", len(copied), len(index.shards), url, folder)
    return index, copied


def open_split(location: str | os.PathLike, split: str, shard_cache: str | os.PathLike | None = None) -> ShardIndex:
    """The checked index of ``split`` under ``location`` (``<location>/<split>/``, a folder or a URL)."""
    cache = cache_root(shard_cache)
    if is_url(location):
        index, _ = fetch_split(f"{str(location).rstrip('/')}/{split}", cache)
        return index
    folder = absolute_path(location) / split
    if not folder.parent.is_dir():
        raise DataError(
            f"data.shards={location}: folder does not exist (write the shards first: python -m "
            "dmfn_lightning.data.shards write data=<dataset> out=DIR)"
        )
    index = ShardIndex.load(folder)
    verify(index, cache)
    return index
