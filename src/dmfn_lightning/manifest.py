"""Evaluation manifests: fixed (image, mask) pairs, checksummed, that any generator or framework is evaluated on.

A manifest is a CSV file (optionally gzip-compressed, ``.csv.gz``) with one row per evaluated pair:

================  ==============================================================================================
``id``            unique name of the row; inpainted outputs are saved and looked up as ``<id>.png``, so a
                  plain file name (no ``/`` or ``\\``; not ``.`` or ``..``)
``image``         the image, relative to the dataset root (``data.root``; ``--data-root``), or an absolute path
``mask``          the mask PNG, relative to the manifest's mask folder (by default the CSV's folder) and inside
                  it (not absolute, no ``..``)
``hole_ratio``    fraction of hole pixels
``bucket``        hole-ratio bucket, ``(low, high]`` in percent: ``0-10%`` .. ``50-60%`` (``60-100%`` above)
``seed``          the seed the mask was drawn with: ``numpy.random.default_rng(seed)`` for the row's
                  ``generator``; for manifests written by ``evaluate manifest_out=...``, the data seed
``generator``     the name of the mask generator in ``generators.json`` that makes the mask from ``seed``;
                  empty when the mask file itself is the definition (manifests written by ``evaluate``)
``mask_sha256``   sha256 of the mask's decoded pixels (:func:`pixels_sha256`)
================  ==============================================================================================

Masks are 8-bit greyscale PNGs, white (255) = hole, read with the library's one mask rule
(:mod:`dmfn_lightning.core.holes`). The checksum covers the decoded pixels (``"<mode> <W>x<H>\\n"`` followed by the raw
pixel bytes, EXIF orientation applied), not the PNG bytes, so a file re-encoded by another zlib still matches while
any edited pixel does not. Every evaluation through a manifest verifies every mask first and stops with a one-line
:class:`ManifestError` naming the file when one differs. Reading a manifest checks every line first (as many fields
as the header, numbers, checksums, ids, mask paths): a file cut off mid-line or an id such as ``../x`` is one
:class:`ManifestError` naming the file, the line and the value, and no mask is ever made outside the mask folder.

Images are prepared as the data groups prepare test images: centred square crop of side ``min(H, W)``, bicubic
resize to the masks' size, ``[-1, 1]``. Metrics follow :mod:`dmfn_lightning.metrics.suite` (composited output, uint8).

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

The format lives in :mod:`dmfn_lightning.evaluation.manifests`, split by concept: ``files`` (rows, CSV files,
checksums), ``masks`` (mask generators, materialising, :class:`ManifestWriter`), ``dataset`` (images and evaluation
samples), ``protocols`` (the shipped protocols) and ``scoring`` (other frameworks' outputs). This module re-exports
their public names and is the command line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from dmfn_lightning.core.errors import ManifestError, exit_on_user_error
from dmfn_lightning.core.file_lists import PACKAGE_PREFIX as PACKAGE_PREFIX
from dmfn_lightning.evaluation.manifests.dataset import ManifestDataset as ManifestDataset
from dmfn_lightning.evaluation.manifests.dataset import mask_size as mask_size
from dmfn_lightning.evaluation.manifests.dataset import resolve_images as resolve_images
from dmfn_lightning.evaluation.manifests.files import COLUMNS as COLUMNS
from dmfn_lightning.evaluation.manifests.files import Manifest as Manifest
from dmfn_lightning.evaluation.manifests.files import ManifestRow as ManifestRow
from dmfn_lightning.evaluation.manifests.files import cache_dir as cache_dir
from dmfn_lightning.evaluation.manifests.files import manifests_dir as manifests_dir
from dmfn_lightning.evaluation.manifests.files import pixels_sha256 as pixels_sha256
from dmfn_lightning.evaluation.manifests.files import read_manifest, read_mask, shipped_manifests, write_manifest
from dmfn_lightning.evaluation.manifests.masks import ManifestWriter, materialise
from dmfn_lightning.evaluation.manifests.masks import generate_mask as generate_mask
from dmfn_lightning.evaluation.manifests.masks import load_generators as load_generators
from dmfn_lightning.evaluation.manifests.protocols import FULL_PRODUCT_MAX_IMAGES as FULL_PRODUCT_MAX_IMAGES
from dmfn_lightning.evaluation.manifests.protocols import PROTOCOLS, build_protocol
from dmfn_lightning.evaluation.manifests.protocols import _test_split_images as _test_split_images
from dmfn_lightning.evaluation.manifests.protocols import is_table1_manifest as is_table1_manifest
from dmfn_lightning.evaluation.manifests.protocols import protocol_generators as protocol_generators
from dmfn_lightning.evaluation.manifests.scoring import score_outputs
from dmfn_lightning.metrics import LPIPS_NETS, SSIM_CONVENTIONS, MetricOptions

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
    score.add_argument("--lpips-net", default="alex", choices=LPIPS_NETS)
    score.add_argument("--lpips-weights", default="imagenet", help="imagenet | random | /path/to/trunk.pth")
    score.add_argument("--ssim", default="full", choices=tuple(SSIM_CONVENTIONS))
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


def _metric_options(args: argparse.Namespace) -> MetricOptions:
    """The metric settings of ``score``'s flags; errors about missing weights name the flags."""
    return MetricOptions(
        lpips=not args.no_lpips,
        lpips_net=args.lpips_net,
        lpips_backbone_weights=args.lpips_weights,
        ssim=args.ssim,
        fid=args.fid,
        kid=args.kid,
        inception_weights=args.inception_weights,
        lpips_override="--lpips-weights",
        inception_override="--inception-weights",
    )


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
                _checksum, hole = read_mask(manifest.mask_path(row))
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
        options=_metric_options(args),
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
