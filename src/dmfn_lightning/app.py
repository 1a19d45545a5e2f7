"""Interactive web demo: upload a photo, paint the hole, get it filled by a trained DMFN generator.

Run ``python -m dmfn_lightning.app --checkpoint outputs/demo/generator.pt`` (or the ``dmfn-app`` console script)
and open http://127.0.0.1:7860. Needs the ``app`` extra: ``pip install 'dmfn_lightning[app]'`` (Gradio).

The page is a thin layer over the library's inpainting API (:mod:`dmfn_lightning.inpainting.api`): the same
padding, strategies (full resolution, resized to a working size, or a crop window around each hole:
:mod:`dmfn_lightning.inpainting.hd`) and exact compositing as ``python -m dmfn_lightning.inpaint``. The hole is
the union of what you paint with the brush, an optional uploaded mask image and an optional generated mask (the mask
kinds for photos of the data layer's registry, :func:`dmfn_lightning.masks.photo_mask_kinds`: centre box, random
box or free-form strokes, as in training; this command hands them to the page, :func:`generated_masks`). Brush
layers and mask files are read with the library's one mask rule (:mod:`dmfn_lightning.core.holes`): painted pixels
of a transparent layer, and white or any colour at 50 % or more (1 in a 0/1 mask) in an opaque mask. Bad input (a
file that is not an image, an empty mask, an image above the pixel limit or the free memory, a broken generator
returning NaN) is reported in the page, never as a stack trace. Before the model is loaded, the page's default
working size and crop margin are checked (by the inpainting API's checks), and the folder for the result PNGs
(``--output-dir``, default a new temporary folder) and Gradio's own cache folder (``GRADIO_TEMP_DIR``) are checked
to be writable.

The work is split so it can be tested without a browser:

* :mod:`dmfn_lightning.webapp.request` - :func:`inpaint_request`: image + editor layers + mask options ->
  :class:`InpaintResult`; raises :class:`~dmfn_lightning.core.errors.InpaintError` with a message meant for the user.
  No Gradio.
* :mod:`dmfn_lightning.webapp.page` - :func:`make_callback`, the function wired to the button (errors become
  ``gr.Error``, notes ``gr.Warning``), and :func:`build_app`, the ``gr.Blocks`` page.
* this module - the command line (:func:`main`), and the names of the two above, re-exported; its
  :func:`build_app`, :func:`make_callback` and :func:`inpaint_request` offer the registry's generated holes by
  default.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dmfn_lightning.cli_options import add_checkpoint, add_device, add_precision
from dmfn_lightning.core.devices import resolve_device
from dmfn_lightning.core.errors import DMFNError, exit_on_user_error
from dmfn_lightning.core.files import check_output_folder
from dmfn_lightning.core.sizes import check_working_size
from dmfn_lightning.inpainting.hd import DEFAULT_CROP_MARGIN, check_crop_margin
from dmfn_lightning.masks import generate_mask, mask_kinds
from dmfn_lightning.models import CheckpointError, load_generator
from dmfn_lightning.models.bundles import looks_like_hub_id
from dmfn_lightning.webapp import page, request
from dmfn_lightning.webapp.page import APP_CSS, available_devices, check_mask_upload, import_gradio
from dmfn_lightning.webapp.request import (
    DEFAULT_MAX_PIXELS,
    STRATEGY_CHOICES,
    GeneratedMasks,
    InpaintResult,
    brush_hole,
)

if TYPE_CHECKING:  # pragma: no cover
    import gradio as gr
    from torch import nn

__all__ = [
    "APP_CSS",
    "CHECKPOINT_HELP",
    "DEFAULT_MAX_PIXELS",
    "STRATEGY_CHOICES",
    "GeneratedMasks",
    "InpaintResult",
    "available_devices",
    "brush_hole",
    "build_app",
    "build_parser",
    "check_mask_upload",
    "check_output_locations",
    "find_demo_checkpoint",
    "generated_masks",
    "import_gradio",
    "inpaint_request",
    "main",
    "make_callback",
]

DEMO_OUTPUTS = Path("outputs") / "demo"

CHECKPOINT_HELP = """\
The web app needs a trained generator (--checkpoint PATH). To get one:
  * `make demo` trains a small model on the built-in demo images (a few minutes on a CPU) and writes
    outputs/demo/generator.pt; then run `python -m dmfn_lightning.app --checkpoint outputs/demo/generator.pt`.
  * or train it yourself: `python -m dmfn_lightning.train +experiment=demo` (the run directory it prints holds
    generator.pt), or a full experiment such as `+experiment=paris`.
  * or export a Lightning checkpoint with `python -m dmfn_lightning.export`; the authors' released generator
    weights and DMFNModule checkpoints (.ckpt) load directly too."""


def generated_masks() -> GeneratedMasks:
    """The generated holes the page offers: the data layer's mask kinds for photos, each under its class's label
    (:func:`dmfn_lightning.masks.mask_kinds`), drawn by :func:`dmfn_lightning.masks.generate_mask`."""
    return GeneratedMasks({kind: cls.label or kind for kind, cls in mask_kinds(for_photos=True).items()}, generate_mask)


def build_app(generator: nn.Module, **kwargs: Any) -> gr.Blocks:
    """:func:`dmfn_lightning.webapp.page.build_app` offering :func:`generated_masks` unless ``masks=`` is given."""
    kwargs.setdefault("masks", generated_masks())
    return page.build_app(generator, **kwargs)


def make_callback(generator: nn.Module, **kwargs: Any) -> Callable[..., tuple[Any, ...]]:
    """:func:`dmfn_lightning.webapp.page.make_callback` offering :func:`generated_masks` unless ``masks=`` is given."""
    kwargs.setdefault("masks", generated_masks())
    return page.make_callback(generator, **kwargs)


def inpaint_request(generator: nn.Module, editor_value: Any, *args: Any, **kwargs: Any) -> InpaintResult:
    """:func:`dmfn_lightning.webapp.request.inpaint_request` offering :func:`generated_masks` unless ``masks=`` is
    given."""
    kwargs.setdefault("masks", generated_masks())
    return request.inpaint_request(generator, editor_value, *args, **kwargs)


def find_demo_checkpoint(root: str | os.PathLike = ".") -> Path | None:
    """The newest ``generator.pt`` under ``<root>/outputs/demo`` (where ``make demo`` writes it), if any."""
    base = Path(root) / DEMO_OUTPUTS
    if not base.is_dir():
        return None
    found = [p for p in base.rglob("generator.pt") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dmfn_lightning.app",
        description="Web demo: upload a photo, paint the hole, get it filled by a DMFN generator (Gradio).",
        epilog=CHECKPOINT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_checkpoint(
        parser, required=False, default_note="; default: the newest outputs/demo/**/generator.pt (from `make demo`)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, loopback)")
    parser.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    add_device(parser, "the page's default device")
    add_precision(parser)
    parser.add_argument(
        "--working-size",
        type=int,
        default=0,
        help="default working resolution (longer side, px, at least 8); 0 = full resolution",
    )
    parser.add_argument(
        "--strategy",
        default="auto",
        choices=list(STRATEGY_CHOICES),
        help="default strategy in the page: full, resize, crop (a window around each hole), or auto (resize with "
        "a working size, else full; the default)",
    )
    parser.add_argument(
        "--crop-margin",
        type=int,
        default=DEFAULT_CROP_MARGIN,
        help=f"default context around each hole for the crop strategy, px (default {DEFAULT_CROP_MARGIN})",
    )
    parser.add_argument(
        "--output-dir",
        metavar="DIR",
        help="folder for the result PNGs offered for download (created; default: a new temporary folder)",
    )
    parser.add_argument(
        "--max-pixels",
        type=_positive_int,
        default=DEFAULT_MAX_PIXELS,
        help=f"largest image processed at full resolution (default {DEFAULT_MAX_PIXELS}; 0 = no limit)",
    )
    return parser


def _load_generator(checkpoint: str | None) -> tuple[Path, nn.Module]:
    if checkpoint is None:
        found = find_demo_checkpoint()
        if found is None:
            raise DMFNError("no --checkpoint given and no outputs/demo/**/generator.pt here.\n" + CHECKPOINT_HELP)
        print(f"using {found} (the newest demo generator; pass --checkpoint to choose another)")
        checkpoint = str(found)
    path = Path(checkpoint).expanduser()
    if not path.exists() and not looks_like_hub_id(checkpoint):
        raise DMFNError(f"checkpoint {str(path)!r} does not exist.\n" + CHECKPOINT_HELP)
    try:
        return path, load_generator(path, map_location="cpu")
    except CheckpointError as err:
        raise DMFNError(f"{err}\n{CHECKPOINT_HELP}") from err


def check_output_locations(output_dir: str | os.PathLike | None) -> None:
    """Before any work: ``output_dir`` (if given) and Gradio's cache folder must be writable folders; raises
    :class:`~dmfn_lightning.core.errors.OutputPathError` with a one-line reason."""
    if output_dir:
        check_output_folder(output_dir, "--output-dir")
    # Gradio copies every result into its cache (GRADIO_TEMP_DIR, default <temp>/gradio) before serving it.
    cache = os.environ.get("GRADIO_TEMP_DIR") or str(Path(tempfile.gettempdir()) / "gradio")
    check_output_folder(cache, "Gradio's cache folder (GRADIO_TEMP_DIR)")


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> None:
    """``python -m dmfn_lightning.app`` / ``dmfn-app``: check the output folders, load the generator, serve the page."""
    args = build_parser().parse_args(argv)
    # The page's defaults, checked by the inpainting API's checks now rather than on the first press of the button.
    check_working_size(args.working_size or None, "--working-size")
    check_crop_margin(args.crop_margin, "--crop-margin")
    check_output_locations(args.output_dir)  # before Gradio is imported and the model loaded
    import_gradio()  # fail fast, before loading the model
    device = str(resolve_device(args.device))
    path, generator = _load_generator(args.checkpoint)
    demo = build_app(
        generator,
        checkpoint=path,
        device=device,
        precision=args.precision,
        working_size=args.working_size or None,
        max_pixels=args.max_pixels or None,
        output_dir=args.output_dir,
        strategy=STRATEGY_CHOICES[args.strategy],
        crop_margin=args.crop_margin,
        masks=generated_masks(),
    )
    demo.queue(default_concurrency_limit=1).launch(
        server_name=args.host,
        server_port=args.port,
        share=False,
        ssr_mode=False,
        css=APP_CSS,
        show_error=True,
        inbrowser=False,
    )


if __name__ == "__main__":
    main()
