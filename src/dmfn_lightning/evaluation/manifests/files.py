"""Manifest rows and files: the CSV format, reading and writing it, and the pixel checksum of mask images.

The columns are described in :mod:`dmfn_lightning.manifest`. A manifest names its source (a path or
``pkg:<name>``, a shipped one) and the folder its mask paths are relative to (beside the CSV, or the cache folder
for shipped manifests). Checksums cover the decoded pixels, not the PNG bytes, so a re-encoded file still matches
while any edited pixel does not.

Nothing a manifest says is taken on trust: :func:`read_manifest` checks every line (as many fields as the header, so
a file cut off mid-line is named as such; numbers; 64-hex-digit checksums), that every id is a plain file name (the
saved outputs are ``<id>.png`` inside the output folder) and that every mask path is relative and stays inside the
mask folder, and stops at the first bad line with one :class:`ManifestError` naming the file, the line and the value.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
import re
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
from dmfn_lightning.evaluation.outputs import plain_name_problem, relative_path_problem

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
_SHA256 = re.compile(r"[0-9a-f]{64}")


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
    """One CSV row as a :class:`ManifestRow`; :class:`ManifestError` naming ``where`` (file and line) and the value
    for a bad number, an id that is not a plain file name, a mask path leaving the mask folder or a bad checksum."""
    values = {key: (raw.get(key) or "").strip() for key in COLUMNS}
    try:
        ratio = float(values["hole_ratio"] or "nan")
    except ValueError:
        raise ManifestError(f"{where}: hole_ratio {values['hole_ratio']!r} is not a number") from None
    try:
        seed = int(values["seed"]) if values["seed"] else None
    except ValueError:
        raise ManifestError(f"{where}: seed {values['seed']!r} is not a whole number") from None
    problem = plain_name_problem(values["id"])
    if problem is not None:
        raise ManifestError(
            f"{where}: row id {values['id']!r} {problem}; outputs are saved as <id>.png inside the output folder, so "
            "an id must be a plain file name"
        )
    if not values["image"]:
        raise ManifestError(f"{where}: empty image (the image column names the image file of the row)")
    problem = relative_path_problem(values["mask"])
    if problem is not None:
        raise ManifestError(
            f"{where}: mask {values['mask']!r} {problem}; mask paths are relative to the manifest's mask folder "
            "and stay inside it"
        )
    checksum = values["mask_sha256"].lower()
    if not _SHA256.fullmatch(checksum):
        raise ManifestError(
            f"{where}: mask_sha256 {values['mask_sha256']!r} is not a sha256 (64 hex digits): the file is cut off or "
            "malformed; restore it or write it again"
        )
    return ManifestRow(
        id=values["id"],
        image=values["image"],
        mask=values["mask"],
        hole_ratio=ratio,
        bucket=values["bucket"],
        seed=seed,
        generator=values["generator"],
        mask_sha256=checksum,
    )


def _read_rows(f: io.TextIOBase, path: Path) -> list[ManifestRow]:
    """The rows of an open manifest CSV; a line with another number of fields than the header (a file cut off
    mid-line, a stray comma) is a :class:`ManifestError` naming the file and the line."""
    reader = csv.reader(f)
    header = [name.strip() for name in next(reader, None) or []]
    missing = [c for c in _REQUIRED if c not in header]
    if missing:
        raise ManifestError(
            f"{path}: not a manifest: missing column(s) {', '.join(missing)} (columns: {', '.join(COLUMNS)})"
        )
    rows = []
    for fields in reader:
        if not fields:  # a blank line
            continue
        where = f"{path} line {reader.line_num}"
        if len(fields) != len(header):
            raise ManifestError(
                f"{where}: {len(fields)} fields where the header has {len(header)}: the file is cut off or malformed; "
                "restore it or write it again"
            )
        rows.append(_parse_row(dict(zip(header, fields)), where))
    return rows


def read_manifest(source: str | os.PathLike, mask_root: str | os.PathLike | None = None) -> Manifest:
    """Read a manifest (a CSV/CSV.gz path or ``pkg:<name>``); ``mask_root`` overrides where its masks are.

    Masks of a shipped manifest live in :func:`cache_dir` ``/<name>``; those of a file beside it.
    Raises :class:`ManifestError` naming the file (and the line) for a missing file, missing columns, a line cut off
    or malformed (another number of fields than the header, a bad number or checksum), an id that is not a plain file
    name, a mask path leaving the mask folder, an empty manifest or duplicate ids.
    """
    path, shipped = _resolve_source(source)
    try:
        with _open_text(path) as f:
            rows = _read_rows(f, path)
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
