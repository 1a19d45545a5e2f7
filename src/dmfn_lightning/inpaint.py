"""Inpaint your own photos: ``python -m dmfn_lightning.inpaint`` (console script ``dmfn-inpaint``).

::

    python -m dmfn_lightning.inpaint --checkpoint generator.pt --image photo.jpg --mask mask.png --output out/
    python -m dmfn_lightning.inpaint --checkpoint last.ckpt --image photos/ --mask masks/ --output out/
    python -m dmfn_lightning.inpaint --checkpoint G.pth --image photos/ --mask-type free_form --seed 3 --output out/

``--checkpoint`` is an exported generator (``generator.pt`` of a training run, or ``dmfn_lightning.export``), a
Lightning checkpoint of :class:`~dmfn_lightning.module.DMFNModule`, or the authors' released generator weights.
``--image`` and ``--mask`` take a file or a folder; masks in a folder are matched to images by file stem
(``photo.jpg`` <- ``photo.png`` or ``photo_mask.png``); white = hole. Outputs are ``<output>/<stem>.png`` at the
original size, known pixels bit-identical to the input (see :mod:`dmfn_lightning.inpainting`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from dmfn_lightning.errors import exit_on_user_error
from dmfn_lightning.inpainting import MASK_KINDS, PRECISIONS, InpaintError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
MASK_SUFFIXES = ("_mask",)  # photo.jpg <- photo.png, or photo_mask.png
# Images per forward pass are limited so that B * H * W stays below this (large photos go one at a time).
MAX_BATCH_PIXELS = 4 * 512 * 512


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dmfn_lightning.inpaint",
        description="Fill holes in your own images with a trained DMFN generator (white mask pixels = hole).",
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        metavar="CKPT",
        help="exported generator (.pt), Lightning checkpoint (.ckpt) or the authors' released generator weights",
    )
    parser.add_argument("--image", required=True, metavar="PATH", help="an image file or a folder of images")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--mask", metavar="PATH", help="a mask file (used for every image) or a folder of masks matched by file stem"
    )
    source.add_argument("--mask-type", choices=MASK_KINDS, help="generate a mask of this type instead")
    parser.add_argument("--output", required=True, metavar="DIR", help="output folder (created); <stem>.png each")
    parser.add_argument(
        "--resize-mask", action="store_true", help="resize masks of another size to their image (nearest neighbour)"
    )
    parser.add_argument(
        "--working-size",
        type=int,
        default=None,
        metavar="N",
        help="process at a resolution whose longer side is N (e.g. 256, the training size), upsample the "
        "prediction and paste the known pixels back at full resolution; default: full resolution",
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
    parser.add_argument("--precision", choices=tuple(PRECISIONS), default="fp32", help="default: fp32")
    parser.add_argument("--seed", type=int, default=0, help="seed of generated masks (image i uses seed + i)")
    parser.add_argument("--batch-size", type=int, default=4, help="same-size images per forward pass (default 4)")
    parser.add_argument(
        "--no-ema", action="store_true", help="from a Lightning checkpoint, use the raw generator, not its EMA copy"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _list_folder(folder: Path, suffixes: Sequence[str]) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes
    )


def find_images(path: Path) -> list[Path]:
    """The image file, or the images directly inside the folder (sorted)."""
    if path.is_file():
        return [path]
    if not path.exists():
        raise InpaintError(f"--image {str(path)!r} does not exist")
    images = _list_folder(path, IMAGE_SUFFIXES)
    if not images:
        raise InpaintError(f"--image folder {str(path)!r} has no images ({', '.join(IMAGE_SUFFIXES)})")
    return images


def match_masks(images: Sequence[Path], mask: Path) -> list[Path]:
    """The mask of each image: ``mask`` itself if it is a file, else the file in ``mask`` with the image's stem
    (or ``<stem>_mask``). Raises :class:`InpaintError` listing every image without a mask."""
    if mask.is_file():
        return [mask] * len(images)
    if not mask.exists():
        raise InpaintError(f"--mask {str(mask)!r} does not exist")
    by_stem: dict[str, list[Path]] = {}
    for path in _list_folder(mask, IMAGE_SUFFIXES):
        by_stem.setdefault(path.stem, []).append(path)
    matched, missing = [], []
    for image in images:
        candidates = [image.stem] + [image.stem + s for s in MASK_SUFFIXES]
        found = next((by_stem[c] for c in candidates if c in by_stem), None)
        if found is None:
            missing.append(image.name)
            continue
        if len(found) > 1:
            raise InpaintError(
                f"image {image.name} matches several masks in {mask}: {', '.join(p.name for p in found)}; keep one"
            )
        matched.append(found[0])
    if missing:
        shown = ", ".join(missing[:10]) + (f", ... ({len(missing) - 10} more)" if len(missing) > 10 else "")
        raise InpaintError(
            f"{len(missing)} of {len(images)} images have no mask in {mask} (looked for <stem>.<ext> and "
            f"<stem>_mask.<ext>): {shown}"
        )
    return matched


def output_paths(images: Sequence[Path], output: Path) -> list[Path]:
    """``<output>/<stem>.png`` per image (or ``output`` itself for one image and a ``.png`` path)."""
    if len(images) == 1 and output.suffix.lower() == ".png" and not output.is_dir():
        paths = [output]
    else:
        paths = [output / f"{image.stem}.png" for image in images]
    seen: dict[Path, Path] = {}
    for image, out in zip(images, paths):
        if out in seen:
            raise InpaintError(f"{seen[out].name} and {image.name} would both be written to {out}; rename one")
        if out.exists() and out.resolve() == image.resolve():
            raise InpaintError(f"the output {out} is the input image itself; choose another --output")
        seen[out] = image
    return paths


def check_mask_sizes(images, sizes, masks, read_size) -> None:
    """Fail before any work when a mask file's size differs from its image's (headers only)."""
    wrong = []
    for image, size, mask in zip(images, sizes, masks):
        if mask is not None and (mask_size := read_size(mask)) != size:
            wrong.append(f"{mask.name} is {mask_size[0]}x{mask_size[1]} but {image.name} is {size[0]}x{size[1]}")
    if wrong:
        shown = "; ".join(wrong[:5]) + (f"; ... ({len(wrong) - 5} more)" if len(wrong) > 5 else "")
        raise InpaintError(
            f"{len(wrong)} mask(s) do not have their image's size (width x height): {shown}. "
            "Pass --resize-mask to resize masks to their images with nearest neighbour."
        )


def run(args: argparse.Namespace) -> list[Path]:
    """Inpaint every image named by ``args``; returns the written paths."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from dmfn_lightning.data.datasets import read_size
    from dmfn_lightning.inpainting import (
        batches_by_size,
        generate_mask,
        inpaint_batch,
        load_image,
        load_mask,
        resolve_device,
    )
    from dmfn_lightning.models import load_generator

    if args.batch_size < 1:
        raise InpaintError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.working_size is not None and args.working_size < 8:
        raise InpaintError(f"--working-size must be at least 8, got {args.working_size}")
    images = find_images(Path(args.image).expanduser())
    masks = match_masks(images, Path(args.mask).expanduser()) if args.mask else [None] * len(images)
    outputs = output_paths(images, Path(args.output).expanduser())
    device = resolve_device(args.device)
    generator = load_generator(args.checkpoint, map_location=device, prefer_ema=not args.no_ema)
    sizes = [read_size(p) for p in images]  # headers only: batches are formed before decoding anything
    if not args.resize_mask:
        check_mask_sizes(images, sizes, masks, read_size)

    console = Console(stderr=True)
    written: list[Path] = []
    columns = (TextColumn("inpainting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, disable=args.quiet) as progress:
        task = progress.add_task("inpaint", total=len(images))
        for group in _pixel_limited(batches_by_size(images, sizes, args.batch_size), sizes):
            pictures, holes = [], []
            for i in group:
                picture = load_image(images[i])
                if masks[i] is not None:
                    hole = load_mask(masks[i], picture.size, resize=args.resize_mask)
                else:
                    hole = generate_mask(args.mask_type, picture.width, picture.height, seed=args.seed + i)
                pictures.append(picture)
                holes.append(hole)
            results = inpaint_batch(
                generator,
                pictures,
                holes,
                working_size=args.working_size,
                device=device,
                precision=args.precision,
            )
            for i, result in zip(group, results):
                outputs[i].parent.mkdir(parents=True, exist_ok=True)
                result.save(outputs[i])
                written.append(outputs[i])
            progress.advance(task, len(group))
    if not args.quiet:
        where = outputs[0].parent if written else args.output
        console.print(f"wrote {len(written)} inpainted image(s) to {where}")
    return written


def _pixel_limited(batches, sizes):
    for batch in batches:
        width, height = sizes[batch[0]]
        step = max(1, MAX_BATCH_PIXELS // max(1, width * height))
        for start in range(0, len(batch), step):
            yield batch[start : start + step]


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``dmfn-inpaint``)."""
    args = build_parser().parse_args(argv)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
