"""Evaluation manifests: fixed (image, mask) pairs, checksummed, that any generator or framework is evaluated on.

A manifest is a CSV file (optionally gzip-compressed, ``.csv.gz``) with one row per evaluated pair:

================  ==============================================================================================
``id``            unique name of the row; inpainted outputs are saved and looked up as ``<id>.png``
``image``         the image, relative to the dataset root (``data.root``; ``--data-root``), or an absolute path
``mask``          the mask PNG, relative to the manifest's mask folder (by default the CSV's folder)
``hole_ratio``    fraction of hole pixels
``bucket``        hole-ratio bucket, ``(low, high]`` in percent: ``0-10%`` .. ``50-60%`` (``60-100%`` above)
``seed``          the seed the mask was drawn with: ``numpy.random.default_rng(seed)`` for the row's
                  ``generator``; for manifests written by ``evaluate manifest_out=...``, the data seed
``generator``     the name of the mask generator in ``generators.json`` that makes the mask from ``seed``;
                  empty when the mask file itself is the definition (manifests written by ``evaluate``)
``mask_sha256``   sha256 of the mask's decoded pixels (:func:`pixels_sha256`)
================  ==============================================================================================

Masks are 8-bit greyscale PNGs, white (255) = hole, read with the library's one mask rule
(:mod:`dmfn_lightning.holes`). The checksum covers the decoded pixels (``"<mode> <W>x<H>\\n"`` followed by the raw
pixel bytes, EXIF orientation applied), not the PNG bytes, so a file re-encoded by another zlib still matches while
any edited pixel does not. Every evaluation through a manifest verifies every mask first and stops with a one-line
:class:`ManifestError` naming the file when one differs.

Images are prepared as the data groups prepare test images: centred square crop of side ``min(H, W)``, bicubic
resize to the masks' size, ``[-1, 1]``. Metrics follow :mod:`dmfn_lightning.metrics` (composited output, uint8).

Shipped manifests (``pkg:<name>``, in ``dmfn_lightning/data/manifests/``): the Table 1 centre protocol and a
free-form protocol (every test image with one mask of each bucket 0-10 % .. 50-60 %; FFHQ's 10,000 test images one
mask each, the buckets taking turns) for Paris StreetView, Places2, CelebA-HQ and FFHQ. They cannot ship the
images, nor (to stay small) the masks: each row names its generator and seed, and the masks are made on first use
into a cache folder (``$DMFN_CACHE/manifests/<name>``, default ``~/.cache/dmfn_lightning/manifests/<name>``), each
checked against its checksum, so a changed mask generator is detected instead of silently changing every number.

Command line (``python -m dmfn_lightning.manifest``):

* ``score MANIFEST OUTPUTS --data-root DIR``: score a folder of someone else's inpainted outputs (``<id>.png``)
  against a manifest with our conventions (:func:`score_outputs`);
* ``materialise MANIFEST [--masks DIR] [--out COPY.csv]``: make and verify the mask files (optionally a standalone
  copy: CSV plus mask PNGs, for other frameworks);
* ``build DATASET PROTOCOL -o FILE``: write a protocol manifest from the data group's test list (maintainers);
* ``list``: the shipped manifests.

Evaluating a generator: ``python -m dmfn_lightning.evaluate ckpt=... data=paris manifest=pkg:paris_free_form``;
writing one from any evaluation: ``... manifest_out=eval.csv``.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset

from dmfn_lightning.errors import DMFNError, ManifestError, exit_on_user_error
from dmfn_lightning.holes import hole_from_image

__all__ = [
    "COLUMNS",
    "FULL_PRODUCT_MAX_IMAGES",
    "PACKAGE_PREFIX",
    "PROTOCOLS",
    "Manifest",
    "ManifestDataset",
    "ManifestError",
    "ManifestRow",
    "ManifestWriter",
    "build_protocol",
    "cache_dir",
    "generate_mask",
    "load_generators",
    "main",
    "materialise",
    "pixels_sha256",
    "read_manifest",
    "score_outputs",
    "shipped_manifests",
    "write_manifest",
]

COLUMNS = ("id", "image", "mask", "hole_ratio", "bucket", "seed", "generator", "mask_sha256")
_REQUIRED = ("id", "image", "mask", "mask_sha256")
PACKAGE_PREFIX = "pkg:"
PROTOCOLS = ("center", "free_form")
OUTPUT_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
_MASK_CLASSES = ("CenterMask", "RandomBoxMask", "FreeFormMask")  # generators.json may name only these
_PROTOCOL_SIZE = 256
# Free-form protocol: test sets up to this size get every image in every bucket; larger ones one mask per image.
FULL_PRODUCT_MAX_IMAGES = 2000


# ----------------------------------------------------------------------------------------------------------------
# rows and files


@dataclass(frozen=True)
class ManifestRow:
    """One evaluated pair (see the module docstring for the columns)."""

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
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(data)
        _publish(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


# ----------------------------------------------------------------------------------------------------------------
# masks: checksums, files, generators


def pixels_sha256(img: Image.Image) -> str:
    """sha256 of an image's decoded pixels: ``"<mode> <W>x<H>\\n"`` then the raw bytes (EXIF orientation applied)."""
    img = ImageOps.exif_transpose(img)
    digest = hashlib.sha256(f"{img.mode} {img.width}x{img.height}\n".encode())
    digest.update(img.tobytes())
    return digest.hexdigest()


def _publish(tmp: str, path: Path) -> None:
    """Move a finished temporary file into place with the permissions a plain ``open()`` would have given it."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600 files
    os.replace(tmp, path)


def _hole_png(hole: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(hole, dtype=bool).astype(np.uint8) * 255, mode="L")


def _save_png(img: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(handle)
    try:
        img.save(tmp, format="PNG")
        _publish(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _read_mask(path: Path) -> tuple[str, np.ndarray]:
    """(pixel checksum, hole map) of a mask file, decoded once."""
    try:
        with Image.open(path) as img:
            img.load()
            return pixels_sha256(img), hole_from_image(img)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise ManifestError(f"{path}: cannot read mask image ({type(err).__name__}: {err})") from err


def load_generators(extra: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """The named mask generators of ``generators.json`` (shipped), updated by ``extra`` (a JSON file) if given."""
    specs = json.loads((manifests_dir() / "generators.json").read_text(encoding="utf-8"))
    if extra is not None and Path(extra).is_file():
        specs.update(json.loads(Path(extra).read_text(encoding="utf-8")))
    return {k: v for k, v in specs.items() if not k.startswith("_")}


def _bucket_bounds(label: str) -> tuple[float, float]:
    low, high = label.rstrip("%").split("-")
    return float(low) / 100, float(high) / 100


def generate_mask(spec: Mapping[str, Any], seed: int) -> np.ndarray:
    """The hole map ``[H, W]`` (bool) that generator ``spec`` (an entry of ``generators.json``) makes from ``seed``.

    ``rng = numpy.random.default_rng(seed)``; the mask class (one of :mod:`dmfn_lightning.data.masks`) is called
    with ``(H, W, rng)`` until the hole ratio falls in ``spec["bucket"]`` (``(low, high]``), at most
    ``spec["max_tries"]`` times.
    """
    from dmfn_lightning.data import masks
    from dmfn_lightning.evaluate import bucket_index

    params = dict(spec["mask"])
    target = str(params.pop("_target_"))
    module, _, name = target.rpartition(".")
    if module != "dmfn_lightning.data.masks" or name not in _MASK_CLASSES:
        raise ManifestError(f"mask generator {target!r} is not one of dmfn_lightning.data.masks.{_MASK_CLASSES}")
    generator = getattr(masks, name)(**params)
    height, width = (int(v) for v in spec["size"])
    wanted = bucket_index(float(np.mean(_bucket_bounds(spec["bucket"])))) if spec.get("bucket") else None
    rng = np.random.default_rng(int(seed))
    for _ in range(int(spec.get("max_tries", 1))):
        mask, _bbox = generator(height, width, rng)
        hole = mask[0].numpy() > 0.5
        if wanted is None or bucket_index(float(hole.mean())) == wanted:
            return hole
    raise ManifestError(f"mask generator {spec} found no mask in bucket {spec['bucket']} from seed {seed}")


def materialise(
    manifest: Manifest,
    generators: Mapping[str, Mapping[str, Any]] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Make the missing mask files of rows that name a generator, and verify every mask file's checksum.

    Returns the number of distinct mask files verified. Raises :class:`ManifestError` naming the file for a missing
    mask without a generator, an edited mask, or a
    generated mask that differs from the manifest (the generator changed).
    """
    generators = load_generators(manifest.mask_root / "generators.json") if generators is None else generators
    verified: set[str] = set()
    total = len(manifest.rows)
    for n, row in enumerate(manifest.rows):
        path = manifest.mask_path(row)
        key = str(path)
        if key not in verified:
            if not path.is_file():
                if not row.generator:
                    raise ManifestError(
                        f"{path}: mask file of row {row.id!r} of {manifest.source} does not exist (it has no "
                        "generator to make it from); copy the manifest's mask folder along with it"
                    )
                if row.generator not in generators:
                    raise ManifestError(
                        f"row {row.id!r} of {manifest.source} names mask generator {row.generator!r}, which is not in "
                        f"generators.json (known: {', '.join(sorted(generators)) or 'none'})"
                    )
                hole = generate_mask(generators[row.generator], int(row.seed or 0))
                image = _hole_png(hole)
                if pixels_sha256(image) != row.mask_sha256:
                    raise ManifestError(
                        f"row {row.id!r} of {manifest.source}: the mask that generator {row.generator!r} makes from "
                        f"seed {row.seed} does not match the manifest's mask_sha256: the mask generator changed since "
                        "the manifest was made, so numbers on it would not be comparable"
                    )
                try:
                    _save_png(image, path)
                except OSError as err:
                    raise ManifestError(
                        f"cannot write mask {path} ({err.strerror or err}); choose a writable mask folder "
                        "(manifest_masks=... / --masks)"
                    ) from err
            checksum, hole = _read_mask(path)
            if checksum != row.mask_sha256:
                raise ManifestError(
                    f"{path}: mask does not match its checksum in {manifest.source} (row {row.id!r}): it was changed "
                    "after the manifest was written; restore it"
                    + (" (or delete it to have it made again)" if row.generator else "")
                    + " or write a new manifest"
                )
            if not np.isnan(row.hole_ratio) and abs(float(hole.mean()) - row.hole_ratio) > 5e-6:
                raise ManifestError(
                    f"{path}: hole ratio {hole.mean():.6f} differs from the manifest's {row.hole_ratio:.6f} "
                    f"(row {row.id!r} of {manifest.source})"
                )
            verified.add(key)
        if progress is not None:
            progress(n + 1, total)
    return len(verified)


class ManifestWriter:
    """Collects evaluated pairs and writes them as a manifest: ``<name>.csv`` plus ``<stem>_masks/NNNNNN.png``.

    Identical masks (e.g. the centre box of every row) share one file. The CSV is written by :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path).expanduser()
        stem = self.path.name.removesuffix(".gz").removesuffix(".csv")
        self.mask_dir_name = f"{stem}_masks"
        self.rows: list[ManifestRow] = []
        self._files: dict[str, str] = {}

    @property
    def mask_dir(self) -> Path:
        return self.path.parent / self.mask_dir_name

    def check_writable(self) -> None:
        """Create the folders and prove them writable before any work (raises :class:`ManifestError`)."""
        if self.path.is_dir():
            raise ManifestError(f"manifest_out {self.path} is a folder; give a file name such as eval.csv")
        try:
            self.mask_dir.mkdir(parents=True, exist_ok=True)
            handle, probe = tempfile.mkstemp(prefix=".write-test-", dir=self.mask_dir)
            os.close(handle)
            os.unlink(probe)
        except OSError as err:
            raise ManifestError(
                f"cannot write the manifest's masks into {self.mask_dir} ({err.strerror or err}); choose another "
                "manifest_out"
            ) from err

    def add(
        self, row_id: str, image: str, hole: np.ndarray, seed: int | None = None, generator: str = "", bucket: str = ""
    ) -> ManifestRow:
        from dmfn_lightning.evaluate import bucket_label_of

        png = _hole_png(hole)
        checksum = pixels_sha256(png)
        name = self._files.get(checksum)
        if name is None:
            name = f"{self.mask_dir_name}/{len(self._files):06d}.png"
            _save_png(png, self.path.parent / name)
            self._files[checksum] = name
        ratio = round(float(np.asarray(hole, dtype=bool).mean()), 6)  # as written in the CSV
        row = ManifestRow(
            id=row_id,
            image=image,
            mask=name,
            hole_ratio=ratio,
            bucket=bucket or bucket_label_of(ratio),
            seed=seed,
            generator=generator,
            mask_sha256=checksum,
        )
        self.rows.append(row)
        return row

    def close(self) -> Path:
        return write_manifest(self.path, self.rows)


# ----------------------------------------------------------------------------------------------------------------
# images


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
        from dmfn_lightning.data.datasets import ImageDataset, ImageSource

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
        _checksum, hole = _read_mask(path)
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


def is_table1_manifest(manifest: Manifest) -> bool:
    """True when every row's mask is the exact centred 128 x 128 box on 256 x 256 (Table 1)."""
    from dmfn_lightning.data.masks import CenterMask

    center = CenterMask()(_PROTOCOL_SIZE, _PROTOCOL_SIZE, np.random.default_rng(0))[0][0].numpy() > 0.5
    checksum = pixels_sha256(_hole_png(center))
    return all(row.mask_sha256 == checksum for row in manifest.rows)


# ----------------------------------------------------------------------------------------------------------------
# protocols (the shipped manifests)


def _test_split_images(dataset: str) -> list[str]:
    """Dataset-relative test image paths of a data group (its packaged list, or FFHQ's number range)."""
    from omegaconf import OmegaConf

    from dmfn_lightning.config import config_dir
    from dmfn_lightning.data.datasets import resolve_list_path

    path = Path(config_dir()) / "data" / f"{dataset}.yaml"
    if not path.is_file():
        raise ManifestError(f"no data group {dataset!r} (conf/data/{dataset}.yaml)")
    cfg = OmegaConf.load(path)
    split = cfg.get("test") or cfg.get("val")
    if split is None:
        raise ManifestError(f"data group {dataset!r} has no test split")
    if split.get("list"):
        lines = resolve_list_path(str(split.list)).read_text(encoding="utf-8").splitlines()
        images = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
        if split.get("root"):
            images = [f"{split.root}/{p}" for p in images]
    elif split.get("number_range") and split.get("root"):
        low, high = (int(v) for v in split.number_range)
        # The official FFHQ tree: images1024x1024/NN000/NNNNN.png (a flat folder is matched by file name).
        images = [f"{split.root}/{n // 1000 * 1000:05d}/{n:05d}.png" for n in range(low, high + 1)]
    else:
        raise ManifestError(f"data group {dataset!r}: its test split has neither a list nor a number range")
    if split.get("limit"):
        images = images[: int(split.limit)]
    return images


def protocol_generators(protocol: str, size: int = _PROTOCOL_SIZE) -> list[str]:
    """Names (in ``generators.json``) of the generators a protocol uses, one per bucket."""
    from dmfn_lightning.evaluate import BUCKETS, bucket_label

    if protocol == "center":
        return [f"center_{size}"]
    if protocol == "free_form":
        return [f"free_form_{size}_{bucket_label(low, high).rstrip('%')}" for low, high in BUCKETS[:6]]
    raise ManifestError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")


def build_protocol(
    dataset: str, protocol: str, progress: Callable[[int, int], None] | None = None
) -> list[ManifestRow]:
    """The rows of a protocol manifest for a data group, from its test split.

    ``center``: the centred box for every test image (one shared mask file). ``free_form``: every test image with
    one mask of each bucket 0-10 % .. 50-60 % when the test set has at most :data:`FULL_PRODUCT_MAX_IMAGES` images
    (Paris StreetView, Places2, CelebA-HQ); a larger set (FFHQ's 10,000) gives each image one mask, the buckets
    taking turns (image ``i`` in bucket ``i mod 6``), which keeps both the file and the evaluation a sixth of the
    size with still over 1,600 images per bucket. Row ``n`` is drawn with seed ``n``. Masks are generated to compute
    their checksums, not written.
    """
    images = _test_split_images(dataset)
    generators = load_generators()
    names = protocol_generators(protocol)
    if len(names) == 1 or len(images) <= FULL_PRODUCT_MAX_IMAGES:
        pairs = [(name, image) for name in names for image in images]
    else:
        pairs = [(names[i % len(names)], image) for i, image in enumerate(images)]
    shared = protocol == "center"  # one box for every row: one mask file, seed 0
    rows: list[ManifestRow] = []
    for name, image in pairs:
        spec = generators[name]
        seed = 0 if shared else len(rows)
        hole = generate_mask(spec, seed)
        stem = Path(image).stem
        row_id = stem if shared else f"{stem}_{name.rsplit('_', 1)[-1]}"
        ratio = round(float(hole.mean()), 6)  # as written in the CSV
        rows.append(
            ManifestRow(
                id=row_id,
                image=image,
                mask=f"masks/{name if shared else row_id}.png",
                hole_ratio=ratio,
                bucket=spec.get("bucket") or _bucket_label_of(ratio),
                seed=seed,
                generator=name,
                mask_sha256=pixels_sha256(_hole_png(hole)),
            )
        )
        if progress is not None:
            progress(len(rows), len(pairs))
    return rows


def _bucket_label_of(ratio: float) -> str:
    from dmfn_lightning.evaluate import bucket_label_of

    return bucket_label_of(ratio)


# ----------------------------------------------------------------------------------------------------------------
# scoring someone else's outputs


def _find_output(folder: Path, row_id: str) -> Path | None:
    for ext in OUTPUT_EXTENSIONS:
        path = folder / f"{row_id}{ext}"
        if path.is_file():
            return path
    return None


class _OutputsDataset(Dataset):
    """Ground truths and masks of a manifest plus the outputs ``<id>.<ext>`` of another framework."""

    def __init__(self, pairs: ManifestDataset, outputs: Sequence[Path]) -> None:
        self.pairs = pairs
        self.outputs = list(outputs)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from dmfn_lightning.data.datasets import DataError, load_rgb

        sample = self.pairs[index]
        path = self.outputs[index]
        try:
            img = load_rgb(path)
        except DataError as err:
            raise ManifestError(str(err)) from err
        size = self.pairs.image_size
        if img.size != (size, size):
            raise ManifestError(
                f"{path}: output is {img.width}x{img.height}, the manifest's pairs are {size}x{size} (outputs are "
                "compared pixel for pixel; nothing is resized)"
            )
        arr = torch.from_numpy(np.array(img, dtype=np.uint8, copy=True)).permute(2, 0, 1)
        sample["output"] = arr.float().div_(127.5).sub_(1.0)
        return sample


def score_outputs(
    manifest: str | os.PathLike | Manifest,
    outputs_dir: str | os.PathLike,
    data_root: str | os.PathLike | None = None,
    *,
    mask_root: str | os.PathLike | None = None,
    output_dir: str | os.PathLike | None = None,
    allow_upscale: bool = True,
    composite: bool = True,
    lpips: bool | str = True,
    lpips_net: str = "alex",
    lpips_backbone_weights: str = "imagenet",
    ssim: str = "full",
    fid: bool = False,
    kid: bool = False,
    inception_weights: str = "auto",
    feature_extractor: torch.nn.Module | None = None,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
    device: str = "cpu",
    batch_size: int = 16,
    name: str | None = None,
) -> dict[str, Any]:
    """Score a folder of inpainted outputs (any framework's) against a manifest with our metric conventions.

    Args:
        manifest: a manifest path, ``pkg:<name>``, or a :class:`Manifest`.
        outputs_dir: one image per row, named ``<id>.png`` (or ``.jpg``, ...), at the masks' size.
        data_root: the dataset root the manifest's image paths are relative to (the ground truths are prepared
            from the images as our evaluation prepares them: centred square crop, bicubic resize).
        mask_root: where the masks are (default: beside the CSV; the cache for shipped manifests).
        output_dir: if given, ``per_image.csv``, ``summary.json`` and ``table1.md`` are written there.
        allow_upscale: accept images smaller than the masks (Paris StreetView's 227 px test images), as the data
            groups do for such sets.
        composite: paste the known pixels of the ground truth back (``mask * out + (1 - mask) * gt``) before
            scoring, as every number of ours is computed; a no-op for outputs that are composited already.
        lpips, lpips_net, lpips_backbone_weights, ssim: see :class:`dmfn_lightning.metrics.InpaintingMetrics`.
        fid, kid, inception_weights, feature_extractor, kid_subsets, kid_subset_size, seed: FID/KID, see
            :class:`dmfn_lightning.metrics.DistributionMetrics`; when the Inception weights are missing a note is
            printed and recorded, and the other metrics are still computed.

    Returns the summary (as ``summary.json``): ``metrics`` (means), ``n_images``, ``by_hole_ratio`` and the
    conventions. Raises :class:`ManifestError` for a missing/mis-sized output or a mask that fails its checksum.
    """
    from torch.utils.data import DataLoader

    from dmfn_lightning.data.datasets import collate_samples
    from dmfn_lightning.evaluate import EvaluationRun

    if not isinstance(manifest, Manifest):
        manifest = read_manifest(manifest, mask_root)
    materialise(manifest)
    folder = Path(outputs_dir).expanduser()
    if not folder.is_dir():
        raise ManifestError(f"{folder}: outputs folder does not exist")
    outputs = [_find_output(folder, row.id) for row in manifest.rows]
    missing = [row.id for row, path in zip(manifest.rows, outputs) if path is None]
    if missing:
        raise ManifestError(
            f"{folder}: {len(missing)} of {len(outputs)} outputs are missing (expected <id>.png for each manifest "
            f"row), e.g. {', '.join(m + '.png' for m in missing[:3])}"
        )
    pairs = ManifestDataset(manifest, resolve_images(manifest, data_root), mask_size(manifest), allow_upscale)
    loader = DataLoader(
        _OutputsDataset(pairs, outputs), batch_size=int(batch_size), shuffle=False, collate_fn=collate_samples
    )
    run = EvaluationRun(
        device=device,
        lpips=lpips,
        lpips_net=lpips_net,
        lpips_backbone_weights=lpips_backbone_weights,
        lpips_override="--lpips-weights",
        ssim=ssim,
        fid=fid,
        kid=kid,
        inception_weights=inception_weights,
        inception_override="--inception-weights",
        feature_extractor=feature_extractor,
        kid_subsets=kid_subsets,
        kid_subset_size=kid_subset_size,
        seed=seed,
        manifest=manifest,
    )
    for batch in loader:
        output = batch["output"].to(run.device)
        if composite:
            image, mask = batch["image"].to(run.device), batch["mask"].to(run.device)
            output = mask * output + (1 - mask) * image
        run.add_batch(batch, output)
    summary = run.summary(
        dataset=None,
        dataset_name=name or f"outputs in {folder.name}",
        checkpoint=str(folder),
        checkpoint_name=name or folder.name,
        protocol={"image_size": pairs.image_size, "composite": bool(composite)},
    )
    if output_dir is not None:
        run.write_reports(Path(output_dir).expanduser(), summary)
    return summary


# ----------------------------------------------------------------------------------------------------------------
# command line


def _progress_printer(what: str) -> Callable[[int, int], None]:
    step = {"last": -1}

    def show(done: int, total: int) -> None:
        percent = done * 100 // max(total, 1)
        if percent != step["last"] and (percent % 10 == 0 or done == total):
            step["last"] = percent
            print(f"{what}: {done}/{total}", file=sys.stderr)

    return show


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dmfn_lightning.manifest",
        description="Evaluation manifests: score outputs, make mask files, build protocol manifests.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    score = sub.add_parser("score", help="score a folder of inpainted outputs (<id>.png) against a manifest")
    score.add_argument("manifest", help="manifest CSV (or .csv.gz) or pkg:<name>")
    score.add_argument("outputs", help="folder with one output per row, named <id>.png")
    score.add_argument("--data-root", required=True, help="dataset root the manifest's image paths are relative to")
    score.add_argument("--masks", help="mask folder (default: beside the CSV; the cache for pkg: manifests)")
    score.add_argument("--out", help="write per_image.csv, summary.json and table1.md here")
    score.add_argument("--name", help="name of the method in the report")
    score.add_argument("--no-composite", action="store_true", help="score the outputs as they are")
    score.add_argument("--no-lpips", action="store_true")
    score.add_argument("--lpips-net", default="alex", choices=("alex", "vgg"))
    score.add_argument("--lpips-weights", default="imagenet", help="imagenet | random | /path/to/trunk.pth")
    score.add_argument("--ssim", default="full", choices=("full", "cropped", "uniform7"))
    score.add_argument("--fid", action="store_true")
    score.add_argument("--kid", action="store_true")
    score.add_argument("--inception-weights", default="auto")
    score.add_argument("--device", default="cpu")
    score.add_argument("--batch-size", type=int, default=16)

    mat = sub.add_parser("materialise", help="make and verify a manifest's mask files")
    mat.add_argument("manifest")
    mat.add_argument("--masks", help="mask folder (default: beside the CSV; the cache for pkg: manifests)")
    mat.add_argument("--out", help="also write a standalone copy here (CSV plus <stem>_masks/ PNGs)")

    build = sub.add_parser("build", help="write a protocol manifest from a data group's test split")
    build.add_argument("dataset", help="data group: paris, places2, celeba_hq, ffhq")
    build.add_argument("protocol", choices=PROTOCOLS)
    build.add_argument("-o", "--output", required=True, help="CSV file (.csv.gz to compress)")

    sub.add_parser("list", help="list the shipped manifests")
    return parser


def _cli(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        for name in shipped_manifests():
            print(name)
        return 0
    if args.command == "build":
        rows = build_protocol(args.dataset, args.protocol, _progress_printer("masks"))
        print(write_manifest(args.output, rows))
        return 0
    if args.command == "materialise":
        manifest = read_manifest(args.manifest, args.masks)
        materialise(manifest, progress=_progress_printer("masks"))
        print(f"{len(manifest.rows)} rows verified; masks in {manifest.mask_root}")
        if args.out:
            writer = ManifestWriter(args.out)
            writer.check_writable()
            for row in manifest.rows:
                _checksum, hole = _read_mask(manifest.mask_path(row))
                writer.add(row.id, row.image, hole, row.seed, row.generator, row.bucket)
            print(writer.close())
        return 0
    if args.batch_size < 1:
        raise ManifestError(f"--batch-size must be at least 1, got {args.batch_size}")
    summary = score_outputs(
        args.manifest,
        args.outputs,
        args.data_root,
        mask_root=args.masks,
        output_dir=args.out,
        composite=not args.no_composite,
        lpips=not args.no_lpips,
        lpips_net=args.lpips_net,
        lpips_backbone_weights=args.lpips_weights,
        ssim=args.ssim,
        fid=args.fid,
        kid=args.kid,
        inception_weights=args.inception_weights,
        device=args.device,
        batch_size=args.batch_size,
        name=args.name,
    )
    print(json.dumps(summary["metrics"], indent=2))
    return 0


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point: ``python -m dmfn_lightning.manifest {score,materialise,build,list} ...``."""
    sys.exit(_cli(argv))


if __name__ == "__main__":
    main()
