"""Manifest rows and files: the CSV format, reading and writing it, and the pixel checksum of mask images.

The columns are described in :mod:`dmfn_lightning.manifest`. A manifest names its source (a path or
``pkg:<name>``, a shipped one) and the folder its mask paths are relative to (beside the CSV, or the cache folder
for shipped manifests). Checksums cover the decoded pixels, not the PNG bytes, so a re-encoded file still matches
while any edited pixel does not.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from dmfn_lightning.core.errors import ManifestError
from dmfn_lightning.core.file_lists import PACKAGE_PREFIX
from dmfn_lightning.core.files import atomic_write, atomic_write_bytes
from dmfn_lightning.core.holes import hole_from_image

__all__ = [
    "COLUMNS",
    "Manifest",
    "ManifestRow",
    "cache_dir",
    "hole_png",
    "manifests_dir",
    "pixels_sha256",
    "read_manifest",
    "read_mask",
    "save_png",
    "shipped_manifests",
    "write_manifest",
]

COLUMNS = ("id", "image", "mask", "hole_ratio", "bucket", "seed", "generator", "mask_sha256")
_REQUIRED = ("id", "image", "mask", "mask_sha256")


@dataclass(frozen=True)
class ManifestRow:
    """One evaluated pair (the columns are described in :mod:`dmfn_lightning.manifest`)."""

    id: str
    image: str
    mask: str
    hole_ratio: float
    bucket: str
    seed: int | None
    generator: str
    mask_sha256: str

    def as_csv(self) -> dict[str, str]:
        return {
            "id": self.id,
            "image": self.image,
            "mask": self.mask,
            "hole_ratio": f"{self.hole_ratio:.6f}",
            "bucket": self.bucket,
            "seed": "" if self.seed is None else str(self.seed),
            "generator": self.generator,
            "mask_sha256": self.mask_sha256,
        }


@dataclass
class Manifest:
    """Rows of a manifest, where it came from, and the folder its mask paths are relative to."""

    rows: list[ManifestRow]
    source: str
    mask_root: Path

    @property
    def name(self) -> str:
        name = Path(self.source[len(PACKAGE_PREFIX) :] if self.source.startswith(PACKAGE_PREFIX) else self.source).name
        for suffix in (".gz", ".csv"):
            name = name.removesuffix(suffix)
        return name

    def mask_path(self, row: ManifestRow) -> Path:
        path = Path(row.mask)
        return path if path.is_absolute() else self.mask_root / path

    def content_sha256(self) -> str:
        """A digest of what is evaluated (ids, images, checksums, buckets, seeds, generators), not of file names:
        a manifest and its written copy have the same digest."""
        digest = hashlib.sha256()
        for row in self.rows:
            values = (row.id, row.image, row.mask_sha256, row.bucket, str(row.seed), row.generator)
            digest.update(("\t".join(values) + "\n").encode())
        return digest.hexdigest()

    def buckets(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row.bucket] = counts.get(row.bucket, 0) + 1
        return counts


def manifests_dir() -> Path:
    """The folder of the shipped manifests and ``generators.json``."""
    return Path(str(resources.files("dmfn_lightning.data").joinpath("manifests")))


def shipped_manifests() -> list[str]:
    """Names of the shipped manifests, as ``pkg:<name>``."""
    names = []
    for path in sorted(manifests_dir().iterdir()):
        if path.name.endswith((".csv", ".csv.gz")):
            names.append(PACKAGE_PREFIX + path.name.removesuffix(".gz").removesuffix(".csv"))
    return names


def cache_dir() -> Path:
    """Where the masks of shipped manifests are made: ``$DMFN_CACHE/manifests`` or the user cache folder."""
    base = os.environ.get("DMFN_CACHE")
    if base:
        return Path(base).expanduser() / "manifests"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "dmfn_lightning" / "manifests"


def _resolve_source(source: str | os.PathLike) -> tuple[Path, bool]:
    """(file, shipped?) of a manifest name: ``pkg:<name>`` (suffix optional) or a path."""
    text = str(source)
    if text.startswith(PACKAGE_PREFIX):
        name = text[len(PACKAGE_PREFIX) :]
        folder = manifests_dir()
        for candidate in (name, f"{name}.csv", f"{name}.csv.gz"):
            if (folder / candidate).is_file():
                return folder / candidate, True
        raise ManifestError(f"{text}: no such shipped manifest (shipped: {', '.join(shipped_manifests())})")
    path = Path(text).expanduser()
    if not path.is_file():
        raise ManifestError(f"{path}: manifest file does not exist")
    return path, False


def _open_text(path: Path) -> io.TextIOBase:
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open("r", encoding="utf-8", newline="")


def _parse_row(raw: Mapping[str, str], where: str) -> ManifestRow:
    try:
        ratio = float(raw.get("hole_ratio") or "nan")
        seed_text = (raw.get("seed") or "").strip()
        seed = int(seed_text) if seed_text else None
    except ValueError as err:
        raise ManifestError(f"{where}: bad number ({err})") from err
    return ManifestRow(
        id=(raw.get("id") or "").strip(),
        image=(raw.get("image") or "").strip(),
        mask=(raw.get("mask") or "").strip(),
        hole_ratio=ratio,
        bucket=(raw.get("bucket") or "").strip(),
        seed=seed,
        generator=(raw.get("generator") or "").strip(),
        mask_sha256=(raw.get("mask_sha256") or "").strip().lower(),
    )


def read_manifest(source: str | os.PathLike, mask_root: str | os.PathLike | None = None) -> Manifest:
    """Read a manifest (a CSV/CSV.gz path or ``pkg:<name>``); ``mask_root`` overrides where its masks are.

    Masks of a shipped manifest live in :func:`cache_dir` ``/<name>``; those of a file beside it.
    Raises :class:`ManifestError` for a missing file, missing columns, an empty manifest or duplicate ids.
    """
    path, shipped = _resolve_source(source)
    try:
        with _open_text(path) as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c for c in _REQUIRED if c not in header]
            if missing:
                raise ManifestError(
                    f"{path}: not a manifest: missing column(s) {', '.join(missing)} (columns: {', '.join(COLUMNS)})"
                )
            rows = [_parse_row(raw, f"{path} line {n + 2}") for n, raw in enumerate(reader)]
    except (OSError, UnicodeDecodeError, csv.Error, EOFError) as err:
        raise ManifestError(f"{path}: cannot read manifest ({type(err).__name__}: {err})") from err
    if not rows:
        raise ManifestError(f"{path}: manifest has no rows")
    seen: set[str] = set()
    for row in rows:
        if not row.id or row.id in seen:
            raise ManifestError(f"{path}: row id {row.id!r} is {'empty' if not row.id else 'not unique'}")
        seen.add(row.id)
    if mask_root is not None:
        root = Path(mask_root).expanduser()
    elif shipped:
        root = cache_dir() / Manifest(rows, str(source), Path()).name
    else:
        root = path.parent
    return Manifest(rows=rows, source=str(source), mask_root=root)


def write_manifest(path: str | os.PathLike, rows: Iterable[ManifestRow]) -> Path:
    """Write rows as a manifest CSV (gzip when the name ends in ``.gz``), atomically; returns the path."""
    path = Path(path).expanduser()
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row.as_csv())
    data = text.getvalue().encode("utf-8")
    if path.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=9, mtime=0)  # mtime=0: the same rows give the same bytes
    return atomic_write_bytes(path, data)


def pixels_sha256(img: Image.Image) -> str:
    """sha256 of an image's decoded pixels: ``"<mode> <W>x<H>\\n"`` then the raw bytes (EXIF orientation applied)."""
    img = ImageOps.exif_transpose(img)
    digest = hashlib.sha256(f"{img.mode} {img.width}x{img.height}\n".encode())
    digest.update(img.tobytes())
    return digest.hexdigest()


def hole_png(hole: np.ndarray) -> Image.Image:
    """A hole map as a mask image: 8-bit greyscale, white (255) = hole."""
    return Image.fromarray(np.ascontiguousarray(hole, dtype=bool).astype(np.uint8) * 255, mode="L")


def save_png(img: Image.Image, path: Path) -> None:
    """Write a PNG atomically: a reader (another worker, an interrupted run) never sees half a mask."""
    atomic_write(path, lambda f: img.save(f, format="PNG"))


def read_mask(path: Path) -> tuple[str, np.ndarray]:
    """(pixel checksum, hole map) of a mask file, decoded once."""
    try:
        with Image.open(path) as img:
            img.load()
            return pixels_sha256(img), hole_from_image(img)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise ManifestError(f"{path}: cannot read mask image ({type(err).__name__}: {err})") from err
