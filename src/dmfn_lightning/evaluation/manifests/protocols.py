"""The shipped protocol manifests: the Table 1 centre box and the free-form buckets, built from a data group's
test split (``python -m dmfn_lightning.manifest build``), and recognising the Table 1 protocol in any manifest.

``center``: the paper's Table 1 protocol, a centred 128 x 128 hole at 256 x 256. ``free_form``: one mask of each
hole-ratio bucket 0-10 % .. 50-60 % per test image (see :func:`build_protocol`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from omegaconf import OmegaConf

from dmfn_lightning.core.config import config_dir
from dmfn_lightning.core.errors import ManifestError
from dmfn_lightning.core.file_lists import resolve_list_path
from dmfn_lightning.evaluation.buckets import BUCKETS, bucket_label, bucket_label_of
from dmfn_lightning.evaluation.manifests.files import Manifest, ManifestRow, hole_png, pixels_sha256
from dmfn_lightning.evaluation.manifests.masks import generate_mask, load_generators
from dmfn_lightning.masks import CenterMask
from dmfn_lightning.masks import generate_mask as draw_mask

__all__ = ["FULL_PRODUCT_MAX_IMAGES", "PROTOCOLS", "build_protocol", "is_table1_manifest", "protocol_generators"]

PROTOCOLS = ("center", "free_form")
_PROTOCOL_SIZE = 256
# Free-form protocol: test sets up to this size get every image in every bucket; larger ones one mask per image.
FULL_PRODUCT_MAX_IMAGES = 2000


def _test_split_images(dataset: str) -> list[str]:
    """Dataset-relative test image paths of a data group (its packaged list, or FFHQ's number range)."""
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
                bucket=spec.get("bucket") or bucket_label_of(ratio),
                seed=seed,
                generator=name,
                mask_sha256=pixels_sha256(hole_png(hole)),
            )
        )
        if progress is not None:
            progress(len(rows), len(pairs))
    return rows


def is_table1_manifest(manifest: Manifest) -> bool:
    """True when every row's mask is the exact centred 128 x 128 box on 256 x 256 (Table 1)."""
    center = draw_mask(CenterMask(), _PROTOCOL_SIZE, _PROTOCOL_SIZE)
    checksum = pixels_sha256(hole_png(center))
    return all(row.mask_sha256 == checksum for row in manifest.rows)
