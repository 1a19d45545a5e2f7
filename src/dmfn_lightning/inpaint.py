"""Inpaint your own photos: ``python -m dmfn_lightning.inpaint`` (console script ``dmfn-inpaint``).

::

    python -m dmfn_lightning.inpaint --checkpoint generator.pt --image photo.jpg --mask mask.png --output out/
    python -m dmfn_lightning.inpaint --checkpoint last.ckpt --image photos/ --mask masks/ --output out/
    python -m dmfn_lightning.inpaint --checkpoint G.pth --image photos/ --mask-type free_form --seed 3 --output out/

``--checkpoint`` is an exported generator (``generator.pt`` of a training run, or ``dmfn_lightning.export``), a
Lightning checkpoint of :class:`~dmfn_lightning.module.DMFNModule`, or the authors' released generator weights.
``--image`` and ``--mask`` take a file or a folder; masks in a folder are matched to images by file name
(:mod:`dmfn_lightning.inpainting.photo_files`: ``photo.jpg`` <- ``photo.png`` in another folder, or ``photo_mask.png``,
``photo-mask.png``, ``photo.mask.png``, ``mask_photo.png``, ``mask-photo.png``; "mask" in any letter case).
Images and masks may share one folder (``--image photos/ --mask photos/``): a file named like the mask of another
image in its folder is a mask and never an input, in that case and whenever an image folder holds masks; a file
is never its own mask, and an image with two masks, or two files that differ only in their extension in a shared
folder, are errors that name the files. Which mask pixels are holes is the rule of :mod:`dmfn_lightning.core.holes`
(white or any colour at 50 % or more, 1 in 0/1 masks, painted pixels of a transparent layer).

``--strategy`` decides what the generator sees (:mod:`~dmfn_lightning.inpainting.hd`): ``full`` the whole image at its
own resolution (the default), ``resize`` the whole image at ``--working-size`` (the default when ``--working-size`` is
given; without it, the model's training size), ``crop`` a window around each connected hole (``--crop-margin``
pixels of context, at least the training size, overlapping windows merged) at the image's own resolution, so a
small hole in a large photo is filled at full detail; with ``--working-size``, crop windows larger than it are
processed at it.

Outputs are ``<output>/<stem>.png`` at the original size, known pixels bit-identical to the input (see
:mod:`dmfn_lightning.inpainting.api`). Before any work the output folder is checked (an existing file or a read-only
folder is an error, and so is an output that would overwrite an input: an image or a mask file, by path, link or
hard link), and before the network runs the memory it needs is checked against what the device has free (too
large an image is refused with a ``--working-size`` that fits). Only the images directly inside an ``--image``
folder are inpainted; its subfolders are skipped with a warning line. Bad input exits with status 2 and a one-line
``error:`` message (``HYDRA_FULL_ERROR=1`` shows the traceback instead).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from dmfn_lightning.cli_options import add_checkpoint, add_device, add_no_ema, add_precision
from dmfn_lightning.core.decode import read_size
from dmfn_lightning.core.devices import available_memory, check_memory, estimate_inference_bytes, resolve_device
from dmfn_lightning.core.errors import DataError, InpaintError, exit_on_user_error
from dmfn_lightning.core.sizes import processed_dims
from dmfn_lightning.inpainting.api import SettingNames, batches_by_size, inpaint_batch, resolve_settings
from dmfn_lightning.inpainting.hd import DEFAULT_CROP_MARGIN, STRATEGIES, other_size_note, training_size
from dmfn_lightning.inpainting.image_io import load_image, load_mask, save_png
from dmfn_lightning.inpainting.photo_files import (
    check_inputs_kept,
    check_mask_sizes,
    find_images,
    match_masks,
    output_paths,
    skipped_masks,
    skipped_subfolders,
)
from dmfn_lightning.masks import generate_mask, photo_mask_kinds
from dmfn_lightning.models import load_generator

# Images per forward pass are limited so that B * H * W stays below this (large photos go one at a time).
MAX_BATCH_PIXELS = 4 * 512 * 512
# The API checks --strategy, --working-size and --crop-margin (resolve_settings); its messages name these flags.
OPTION_NAMES = SettingNames(strategy="--strategy", working_size="--working-size", crop_margin="--crop-margin")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dmfn_lightning.inpaint",
        description="Fill holes in your own images with a trained DMFN generator. Mask pixels that are white or "
        "any colour at 50% or more of full scale are holes (1 in 0/1 masks; on a transparent layer, the painted "
        "pixels).",
    )
    add_checkpoint(parser)
    parser.add_argument("--image", required=True, metavar="PATH", help="an image file or a folder of images")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--mask",
        metavar="PATH",
        help="a mask file (used for every image) or a folder of masks matched by name: <stem>.<ext> (another "
        "folder only), <stem>_mask, <stem>-mask, <stem>.mask, mask_<stem>, mask-<stem>; may be the --image folder",
    )
    source.add_argument(
        "--mask-type",
        choices=photo_mask_kinds(),
        help="generate a mask of this type instead (conf/mask/<type>.yaml, as in training)",
    )
    parser.add_argument("--output", required=True, metavar="DIR", help="output folder (created); <stem>.png each")
    parser.add_argument(
        "--resize-mask", action="store_true", help="resize masks of another size to their image (nearest neighbour)"
    )
    parser.add_argument(
        "--strategy",
        default=None,
        metavar="{" + ",".join(STRATEGIES) + "}",
        help="full: the whole image at its resolution; resize: the whole image at --working-size (default: the "
        "model's training size); crop: a window around each hole at the image's resolution (for small holes in "
        "large photos). Default: resize with --working-size, else full",
    )
    parser.add_argument(
        "--working-size",
        type=int,
        default=None,
        metavar="N",
        help="process at a resolution whose longer side is N (e.g. 256, the training size), upsample the "
        "prediction and paste the known pixels back at full resolution; with --strategy crop, only windows "
        "larger than N are processed at N; default: full resolution",
    )
    parser.add_argument(
        "--crop-margin",
        type=int,
        default=None,
        metavar="PX",
        help=f"--strategy crop: pixels of context around each hole (default {DEFAULT_CROP_MARGIN})",
    )
    add_device(parser)
    add_precision(parser)
    parser.add_argument(
        "--seed", type=seed_value, default=0, help="seed of generated masks, >= 0 (image i uses seed + i)"
    )
    parser.add_argument("--batch-size", type=int, default=4, help="same-size images per forward pass (default 4)")
    add_no_ema(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def seed_value(text: str) -> int:
    """``--seed``: a whole number >= 0 (numpy's generators take no negative seed); argparse names the flag."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}")
    return value


def generated_hole(kind: str, width: int, height: int, seed: int) -> np.ndarray:
    """``--mask-type``'s hole for one image (:func:`dmfn_lightning.masks.generate_mask`); its error says
    what to do on the command line."""
    try:
        return generate_mask(kind, width, height, seed)
    except DataError as err:
        raise InpaintError(f"{err}; use another --mask-type or give mask files with --mask") from err


def run(args: argparse.Namespace) -> list[Path]:
    """Inpaint every image named by ``args``; returns the written paths."""
    if args.batch_size < 1:
        raise InpaintError(f"--batch-size must be at least 1, got {args.batch_size}")
    strategy = resolve_settings(args.strategy, args.working_size, args.crop_margin, OPTION_NAMES).strategy
    if args.seed < 0:  # argparse refuses it on the command line; a Namespace built in Python is checked here
        raise InpaintError(f"--seed must be a whole number >= 0, got {args.seed}")
    console = Console(stderr=True)
    image_arg = Path(args.image).expanduser()
    images = find_images(image_arg)
    outputs = output_paths(images, Path(args.output).expanduser())  # before any work: fail fast on a bad --output
    masks = match_masks(images, Path(args.mask).expanduser()) if args.mask else [None] * len(images)
    check_inputs_kept(outputs, images, masks)  # no output may be an input image or a mask file
    device = resolve_device(args.device)
    generator = load_generator(args.checkpoint, map_location=device, prefer_ema=not args.no_ema)
    sizes = [read_size(p) for p in images]  # headers only: batches are formed before decoding anything
    if not args.resize_mask:
        check_mask_sizes(images, sizes, masks, read_size)
    working_size = args.working_size
    if strategy == "crop" or (strategy == "resize" and working_size is None):
        # Said here, in one line, when the file does not record it; the library then stays silent about it.
        trained = training_size(generator, warn=lambda text: _warn(console, text))
        if strategy == "resize" and working_size is None:
            working_size = trained
    note = other_size_note(generator, strategy, working_size, sizes)
    if note is not None:
        _warn(console, note)
    # crop: the windows depend on the masks, which are not read yet; without a cap on their size each batch is
    # checked when its windows are known (inpaint_batch), with one the cap bounds every window.
    if strategy != "crop" or working_size is not None:
        for width, height in sorted(set(sizes), key=lambda s: s[0] * s[1], reverse=True):
            # One image of every size must fit before anything runs (batches are then cut to what fits).
            check_memory(generator, height, width, working_size=working_size, device=device)

    skipped = skipped_masks(image_arg)
    if skipped and not args.quiet:
        names = ", ".join(p.name for p in skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        console.print(f"not inpainting {len(skipped)} mask file(s) found among the images: {names}", markup=False)
    subfolders = skipped_subfolders(image_arg)
    if subfolders:
        names = ", ".join(p.name for p in subfolders[:5]) + (", ..." if len(subfolders) > 5 else "")
        _warn(
            console,
            f"skipping {len(subfolders)} subfolder(s) of --image {str(image_arg)!r} ({names}): only the images "
            "directly inside it are inpainted; give a subfolder as --image to inpaint its images",
        )
    written: list[Path] = []
    columns = (TextColumn("inpainting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, disable=args.quiet) as progress:
        task = progress.add_task("inpaint", total=len(images))
        batches = batches_by_size(images, sizes, args.batch_size)
        for group in _pixel_limited(batches, sizes, generator, working_size, device):
            pictures, holes = [], []
            for i in group:
                picture = load_image(images[i])
                if masks[i] is not None:
                    hole = load_mask(masks[i], picture.size, resize=args.resize_mask)
                else:
                    hole = generated_hole(args.mask_type, picture.width, picture.height, args.seed + i)
                pictures.append(picture)
                holes.append(hole)
            results = inpaint_batch(
                generator,
                pictures,
                holes,
                strategy=strategy,
                working_size=args.working_size,
                crop_margin=args.crop_margin,
                device=device,
                precision=args.precision,
            )
            for i, result in zip(group, results):
                written.append(save_png(result, outputs[i]))
            progress.advance(task, len(group))
    if not args.quiet:
        where = outputs[0].parent if written else args.output
        console.print(f"wrote {len(written)} inpainted image(s) to {where}")
    return written


def _warn(console: Console, text: str) -> None:
    """One ``warning:`` line on stderr (shown with --quiet too), the text as is (no Rich markup)."""
    console.print(f"warning: {text}", markup=False, highlight=False, soft_wrap=True)


def _pixel_limited(batches, sizes, generator, working_size, device):
    free = available_memory(device)
    base_channels = int(getattr(generator, "config", {}).get("base_channels", 64))
    for batch in batches:
        width, height = sizes[batch[0]]
        step = max(1, MAX_BATCH_PIXELS // max(1, width * height))
        if free is not None:
            # crop windows are at most the image (or the working size), so these bounds hold for crop too.
            if working_size is None:
                h, w = processed_dims(height, width, None)
            else:
                h = w = working_size  # an upper bound of the working resolution
            step = min(step, max(1, free // max(1, estimate_inference_bytes(h, w, 1, base_channels))))
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
