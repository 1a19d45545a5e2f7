"""Manifest masks: the named generators that make them from a seed, materialising and verifying the mask files,
and writing the evaluated pairs of a run as a new manifest (:class:`ManifestWriter`).

A mask generator (an entry of ``generators.json``) is a mask kind for photos of :mod:`dmfn_lightning.masks`
(one of :func:`~dmfn_lightning.masks.photo_mask_kinds`, the registry the inpainting command line and the web app
offer too) with its parameters and, for the free-form protocol, the hole-ratio bucket its masks must fall in; its
masks are drawn by the data layer's :func:`~dmfn_lightning.masks.generate_mask`. A manifest row names the
generator and the seed, and its ``mask_sha256`` detects a changed generator instead of silently changing every number.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dmfn_lightning.core.errors import DataError, ManifestError
from dmfn_lightning.core.files import probe_writable
from dmfn_lightning.evaluation.buckets import bucket_index, bucket_label_of
from dmfn_lightning.evaluation.manifests.files import (
    Manifest,
    ManifestRow,
    hole_png,
    manifests_dir,
    pixels_sha256,
    read_mask,
    save_png,
    write_manifest,
)
from dmfn_lightning.evaluation.outputs import is_inside
from dmfn_lightning.masks import generate_mask as draw_mask
from dmfn_lightning.masks import mask_from_config, mask_kinds

__all__ = ["ManifestWriter", "generate_mask", "load_generators", "materialise"]


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

    The mask class must be a kind for photos (:func:`~dmfn_lightning.masks.photo_mask_kinds`); the hole is drawn
    by :func:`dmfn_lightning.masks.generate_mask` from ``numpy.random.default_rng(seed)`` at ``spec["size"]``,
    again until the hole ratio falls in ``spec["bucket"]`` (``(low, high]``), at most ``spec["max_tries"]`` times.
    Raises :class:`ManifestError`.
    """
    try:
        generator = mask_from_config(spec["mask"], mask_kinds(for_photos=True))
    except DataError as err:
        raise ManifestError(f"generators.json: {err}") from err
    height, width = (int(v) for v in spec["size"])
    wanted = bucket_index(float(np.mean(_bucket_bounds(spec["bucket"])))) if spec.get("bucket") else None

    def in_bucket(hole: np.ndarray) -> bool:
        return wanted is None or bucket_index(float(hole.mean())) == wanted

    try:
        return draw_mask(generator, width, height, seed, accept=in_bucket, max_tries=int(spec.get("max_tries", 1)))
    except DataError as err:
        raise ManifestError(
            f"mask generator {spec} found no mask in bucket {spec.get('bucket')} from seed {seed} ({err})"
        ) from err


def materialise(
    manifest: Manifest,
    generators: Mapping[str, Mapping[str, Any]] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Make the missing mask files of rows that name a generator, and verify every mask file's checksum.

    Returns the number of distinct mask files verified. Raises :class:`ManifestError` naming the file for a missing
    mask without a generator, an edited mask, a generated mask that differs from the manifest (the generator
    changed), or a missing mask whose path leaves the mask folder (nothing is made outside it).
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
                if not is_inside(path, manifest.mask_root, resolve=False):
                    raise ManifestError(
                        f"mask {row.mask!r} of row {row.id!r} of {manifest.source} would be made outside the mask "
                        f"folder {manifest.mask_root}; mask paths are relative to it and stay inside it"
                    )
                if row.generator not in generators:
                    raise ManifestError(
                        f"row {row.id!r} of {manifest.source} names mask generator {row.generator!r}, which is not in "
                        f"generators.json (known: {', '.join(sorted(generators)) or 'none'})"
                    )
                hole = generate_mask(generators[row.generator], int(row.seed or 0))
                image = hole_png(hole)
                if pixels_sha256(image) != row.mask_sha256:
                    raise ManifestError(
                        f"row {row.id!r} of {manifest.source}: the mask that generator {row.generator!r} makes from "
                        f"seed {row.seed} does not match the manifest's mask_sha256: the mask generator changed since "
                        "the manifest was made, so numbers on it would not be comparable"
                    )
                try:
                    save_png(image, path)
                except OSError as err:
                    raise ManifestError(
                        f"cannot write mask {path} ({err.strerror or err}); choose a writable mask folder "
                        "(manifest_masks=... / --masks)"
                    ) from err
            checksum, hole = read_mask(path)
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
            probe_writable(self.mask_dir)
        except OSError as err:
            raise ManifestError(
                f"cannot write the manifest's masks into {self.mask_dir} ({err.strerror or err}); choose another "
                "manifest_out"
            ) from err

    def add(
        self, row_id: str, image: str, hole: np.ndarray, seed: int | None = None, generator: str = "", bucket: str = ""
    ) -> ManifestRow:
        png = hole_png(hole)
        checksum = pixels_sha256(png)
        name = self._files.get(checksum)
        if name is None:
            name = f"{self.mask_dir_name}/{len(self._files):06d}.png"
            save_png(png, self.path.parent / name)
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
