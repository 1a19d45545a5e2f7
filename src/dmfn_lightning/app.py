"""Interactive web demo: upload a photo, paint the hole, get it filled by a trained DMFN generator.

Run ``python -m dmfn_lightning.app --checkpoint outputs/demo/generator.pt`` (or the ``dmfn-app`` console script)
and open http://127.0.0.1:7860. Needs the ``app`` extra: ``pip install 'dmfn_lightning[app]'`` (Gradio).

The page is a thin layer over the library's inpainting API (:mod:`dmfn_lightning.inpainting`): the same
padding, strategies (full resolution, resized to a working size, or a crop window around each hole:
:mod:`dmfn_lightning.hd`) and exact compositing as ``python -m dmfn_lightning.inpaint``. The hole is the union
of what you paint with the brush, an optional uploaded mask image and an optional generated mask (centre box,
random box or free-form strokes, as in training). Brush layers and mask files are read with the library's one
mask rule (:mod:`dmfn_lightning.holes`): painted pixels of a transparent layer, and white or any colour at 50 %
or more (1 in a 0/1 mask) in an opaque mask. Bad input (a file that is not an image, an empty mask, an image above
the pixel limit or the free memory, a broken generator returning NaN) is reported in the page, never as a stack
trace. Before the model is loaded, the folder for the result PNGs (``--output-dir``, default a new temporary
folder) and Gradio's own cache folder (``GRADIO_TEMP_DIR``) are checked to be writable.

The work is split so it can be tested without a browser:

* :func:`inpaint_request` - image + editor layers + mask options -> :class:`InpaintResult`; raises
  :class:`~dmfn_lightning.inpainting.InpaintError` with a message meant for the user. No Gradio.
* :func:`make_callback` - the function wired to the button: calls :func:`inpaint_request` and turns errors into
  ``gr.Error`` (a red message in the page) and notes into ``gr.Warning``.
* :func:`build_app` - the ``gr.Blocks`` page; :func:`main` - the command line.

Nothing is fetched from the internet at run time: Gradio's analytics and version check are switched off and its
default theme uses the fonts bundled with the package.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from dmfn_lightning.errors import DMFNError, exit_on_user_error
from dmfn_lightning.hd import DEFAULT_CROP_MARGIN, STRATEGIES, Window, crop_windows, training_size
from dmfn_lightning.inpainting import (
    PRECISIONS,
    InpaintError,
    InpaintMemoryError,
    generate_mask,
    inpaint,
    load_image,
    load_mask,
    resolve_strategy,
)

if TYPE_CHECKING:  # pragma: no cover
    import gradio as gr
    from torch import nn

__all__ = [
    "APP_CSS",
    "CHECKPOINT_HELP",
    "DEFAULT_MAX_PIXELS",
    "MASK_CHOICES",
    "STRATEGY_CHOICES",
    "InpaintResult",
    "available_devices",
    "brush_hole",
    "build_app",
    "build_parser",
    "check_mask_upload",
    "check_output_locations",
    "find_demo_checkpoint",
    "import_gradio",
    "inpaint_request",
    "main",
    "make_callback",
]

DEFAULT_MAX_PIXELS = 16_000_000
DEMO_OUTPUTS = Path("outputs") / "demo"

CHECKPOINT_HELP = """\
The web app needs a trained generator (--checkpoint PATH). To get one:
  * `make demo` trains a small model on the built-in demo images (a few minutes on a CPU) and writes
    outputs/demo/generator.pt; then run `python -m dmfn_lightning.app --checkpoint outputs/demo/generator.pt`.
  * or train it yourself: `python -m dmfn_lightning.train +experiment=demo` (the run directory it prints holds
    generator.pt), or a full experiment such as `+experiment=paris`.
  * or export a Lightning checkpoint with `python -m dmfn_lightning.export`; the authors' released generator
    weights and DMFNModule checkpoints (.ckpt) load directly too."""

# Radio label -> generate_mask kind (None = no generated mask).
MASK_CHOICES: dict[str, str | None] = {
    "none": None,
    "centre box": "center",
    "random box": "random_box",
    "free-form": "free_form",
}

# Radio label -> inpaint(strategy=...); "auto" is the library's default: resize with a working size, else full.
STRATEGY_CHOICES: dict[str, str | None] = {"auto": None, **{name: name for name in STRATEGIES}}

_HOLE_TINT = np.array([255, 0, 255], dtype=np.float32)  # the brush colour, also used for the mask preview
BRUSH_COLOR = "#ff00ff"


# ---------------------------------------------------------------------------------------------------------------
# the callback, without Gradio


@dataclass
class InpaintResult:
    """What one press of the button produces."""

    image: Image.Image  # the inpainted RGB image, input size
    hole: np.ndarray  # bool [H, W], True = filled
    preview: Image.Image  # the input with the hole tinted
    seconds: float
    notes: list[str] = field(default_factory=list)  # non-fatal remarks shown as warnings
    strategy: str = "full"
    windows: list[Window] = field(default_factory=list)  # the crop strategy's windows (empty for the others)

    @property
    def summary(self) -> str:
        h, w = self.hole.shape
        return f"Filled {self.hole.mean():.1%} of the {w}x{h} image in {self.seconds:.2f} s."


def _editor_parts(editor_value: Any) -> tuple[Any, list[Any]]:
    """(background, layers) from an ``ImageEditor`` value; a bare image or path counts as a background."""
    if editor_value is None:
        return None, []
    if isinstance(editor_value, dict):
        return editor_value.get("background"), list(editor_value.get("layers") or [])
    return editor_value, []


def brush_hole(layers: Sequence[Any], size: tuple[int, int]) -> np.ndarray:
    """The painted pixels of the editor's layers as a bool ``[H, W]`` hole for an image of ``size = (W, H)``.

    Each layer is read like a mask file, with the one rule of :mod:`dmfn_lightning.holes`: on a layer with
    transparency every stroke counts (alpha > 0), whatever its colour or opacity, antialiased edges included; the
    eraser clears alpha. An opaque layer's holes are its white or coloured pixels (50 % or more).
    """
    width, height = size
    hole = np.zeros((height, width), dtype=bool)
    for layer in layers:
        if layer is None:
            continue
        hole |= load_mask(layer, size, resize=True)
    return hole


def _check_image_file(path: str | os.PathLike, what: str, max_pixels: int | None = None) -> None:
    """Refuse, with a short message naming only the file, a path that is not an image or is too large.

    Reads the header only, so a huge file is refused before it is decoded.
    """
    name = Path(path).name
    if not Path(path).is_file():
        raise InpaintError(f"The {what} {name!r} does not exist (anymore); upload it again.")
    try:
        with Image.open(path) as img:
            width, height = img.size
    except Image.DecompressionBombError as err:
        raise InpaintError(f"The {what} {name!r} is too large to decode safely: {err}") from err
    except (OSError, ValueError, SyntaxError) as err:
        raise InpaintError(
            f"The {what} {name!r} is not an image this app can read (use PNG, JPEG, WebP, BMP or TIFF): "
            f"{type(err).__name__}."
        ) from err
    if max_pixels and width * height > max_pixels:
        raise InpaintError(_too_large(width, height, max_pixels))


def _too_large(width: int, height: int, max_pixels: int, what: str = "image") -> str:
    return (
        f"The {what} is {width}x{height} ({width * height / 1e6:.1f} MP), above this app's limit of "
        f"{max_pixels / 1e6:.1f} MP for full-resolution inpainting. Set a working size (e.g. 512) under "
        "'Advanced' to process it at a lower resolution (the known pixels stay untouched at full resolution), "
        + ("" if what != "image" else "choose the 'crop' strategy for small holes, ")
        + "downscale the image, or restart the app with a larger --max-pixels."
    )


def _mask_file_hole(mask_file: Any, size: tuple[int, int]) -> tuple[np.ndarray, str | None]:
    """(hole, note): the uploaded mask at the image's size; another size is resized (nearest) with a note."""
    if isinstance(mask_file, str | os.PathLike):
        _check_image_file(mask_file, "mask file")
    try:
        return load_mask(mask_file, size), None
    except InpaintError as first:
        try:
            hole = load_mask(mask_file, size, resize=True)
        except InpaintError:
            raise InpaintError(f"The mask file cannot be used: {first}") from first
        return hole, f"The mask file was resized (nearest neighbour) to the image's {size[0]}x{size[1]}."


def _preview(image: Image.Image, hole: np.ndarray) -> Image.Image:
    arr = np.asarray(image, dtype=np.float32).copy()
    arr[hole] = 0.45 * arr[hole] + 0.55 * _HOLE_TINT
    return Image.fromarray(arr.round().astype(np.uint8), "RGB")


def inpaint_request(
    generator: nn.Module,
    editor_value: Any,
    mask_file: str | os.PathLike | Image.Image | np.ndarray | None = None,
    mask_kind: str | None = None,
    seed: int = 0,
    *,
    device: str = "cpu",
    precision: str = "fp32",
    working_size: int | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    strategy: str | None = None,
    crop_margin: int = DEFAULT_CROP_MARGIN,
) -> InpaintResult:
    """Inpaint the image of ``editor_value`` where the user asked; raise :class:`InpaintError` for bad input.

    Args:
        generator: a loaded :class:`~dmfn_lightning.models.DMFNGenerator`.
        editor_value: the ``gr.ImageEditor`` value ``{"background", "layers", "composite"}`` (PIL images,
            arrays or paths), or just an image / path.
        mask_file: an optional mask image (white or coloured = hole, :mod:`dmfn_lightning.holes`); resized
            (nearest) when its size differs.
        mask_kind: ``None``/``"none"`` or one of :data:`~dmfn_lightning.inpainting.MASK_KINDS` (or a label of
            :data:`MASK_CHOICES`): a generated hole added to the others.
        seed: seed of the generated mask.
        working_size: longer side of the processing resolution, ``None``/0 = full resolution; with the
            ``crop`` strategy, the largest window processed at full resolution. Ignored (with a note) by ``full``.
        max_pixels: refuse full-resolution processing of more than this many pixels (``None`` = no limit): the
            image for ``full``, the largest window for ``crop`` without a working size; a working size lifts it.
        strategy: ``full``, ``resize`` or ``crop`` (:mod:`dmfn_lightning.hd`); ``None``: ``resize`` with a
            working size, else ``full``.
        crop_margin: pixels of context around each hole for ``crop``.
    """
    background, layers = _editor_parts(editor_value)
    if background is None:
        raise InpaintError(
            "No image: upload a photo (PNG, JPEG, WebP, ...) into the editor first. If you did and the editor "
            "stayed empty, your browser could not read the file as an image."
        )
    working = int(working_size) if working_size else None
    notes: list[str] = []
    if strategy == "full" and working is not None:
        notes.append(f"The working size ({working}) is not used by the 'full' strategy: full resolution it is.")
        working = None
    strategy = resolve_strategy(strategy or None, working)
    # A working size bounds the processed size whatever the image; a crop window's size is known with the hole.
    limit = max_pixels if working is None else None
    if isinstance(background, str | os.PathLike):
        _check_image_file(background, "image", limit if strategy == "full" else None)
    image = load_image(background)
    width, height = image.size
    if limit and strategy == "full" and width * height > limit:
        raise InpaintError(_too_large(width, height, limit))

    hole = brush_hole(layers, image.size)
    if mask_file is not None:
        file_hole, note = _mask_file_hole(mask_file, image.size)
        hole |= file_hole
        if note:
            notes.append(note)
    kind = MASK_CHOICES.get(mask_kind, mask_kind) if mask_kind else None
    if kind and kind != "none":
        hole |= generate_mask(kind, width, height, int(seed or 0))
    if not hole.any():
        raise InpaintError(
            "The mask is empty: paint over the region to fill with the brush, upload a mask image "
            "(white or coloured = hole), or pick a generated mask type."
        )
    if hole.all():
        notes.append("The whole image is masked: there is no known context, the result is the model's guess.")
    windows: list[Window] = []
    margin = DEFAULT_CROP_MARGIN  # only the crop strategy reads it
    if strategy == "crop":
        if isinstance(crop_margin, bool) or not isinstance(crop_margin, int | np.integer) or crop_margin < 0:
            raise InpaintError(f"The crop margin must be a whole number of pixels >= 0, got {crop_margin!r}.")
        margin = int(crop_margin)
        windows = crop_windows(hole, margin, training_size(generator))
        largest = max(windows, key=lambda w: w.height * w.width)
        if limit and largest.height * largest.width > limit:
            raise InpaintError(_too_large(largest.width, largest.height, limit, "largest crop window"))

    start = time.perf_counter()
    try:
        result = inpaint(
            generator,
            image,
            hole,
            strategy=strategy,
            working_size=working,
            crop_margin=margin,
            device=device,
            precision=precision,
        )
    except InpaintMemoryError as err:  # the library's memory guard, or an allocation that failed
        raise InpaintMemoryError(f"{err} In this app, set the working size under 'Advanced'.") from err
    except RuntimeError as err:  # e.g. an operator not implemented for fp16 on this device
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InpaintError(
            f"Inpainting failed on {device} with {precision}: {first}. Try fp32 or another device."
        ) from err
    seconds = time.perf_counter() - start
    return InpaintResult(result, hole, _preview(image, hole), seconds, notes, strategy, windows)


# ---------------------------------------------------------------------------------------------------------------
# Gradio


def import_gradio():
    """Import Gradio with telemetry off, or raise a :class:`DMFNError` saying how to install it."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # no analytics, no version check: the app works offline
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import gradio as gr
    except ImportError as err:
        raise DMFNError(
            f"the web app needs Gradio, which is not installed ({err}). Install the app extra: "
            "pip install 'dmfn_lightning[app]'"
        ) from err
    return gr


def available_devices() -> list[str]:
    """Devices offered in the page: ``cpu`` plus every CUDA device (and ``mps`` on Apple silicon)."""
    import torch

    devices = ["cpu"]
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        devices += ["cuda"] if count == 1 else [f"cuda:{i}" for i in range(count)]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


def make_callback(
    generator: nn.Module, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, output_dir: str | os.PathLike | None = None
) -> Callable[..., tuple[Image.Image, Image.Image, str, str]]:
    """The button's function: ``(editor, mask_file, mask_kind, seed, device, precision, working_size[, strategy,
    crop_margin])`` -> ``(result, hole preview, PNG path, summary)``. User errors become ``gr.Error``, notes
    ``gr.Warning``."""
    gr = import_gradio()
    out_root = Path(output_dir).expanduser() if output_dir else Path(tempfile.mkdtemp(prefix="dmfn_app_"))

    def run(editor_value, mask_file, mask_kind, seed, device, precision, working_size, strategy=None, margin=None):
        try:
            res = inpaint_request(
                generator,
                editor_value,
                mask_file,
                mask_kind,
                int(seed or 0),
                device=device or "cpu",
                precision=precision or "fp32",
                working_size=int(working_size) if working_size else None,
                max_pixels=max_pixels,
                strategy=STRATEGY_CHOICES.get(strategy, strategy) if strategy else None,
                crop_margin=_whole_number(margin, DEFAULT_CROP_MARGIN),
            )
        except InpaintError as err:
            raise gr.Error(str(err), print_exception=False) from None
        for note in res.notes:
            gr.Warning(note)
        try:
            out_root.mkdir(parents=True, exist_ok=True)
            _prune(out_root)
            png = Path(tempfile.mkdtemp(dir=out_root)) / "inpainted.png"
            res.image.save(png)
        except OSError as err:
            raise gr.Error(
                f"Cannot save the result in {out_root}: {err.strerror or err}.", print_exception=False
            ) from None
        summary = f"{res.summary} Device {device}, {precision}, {_strategy_summary(res, generator, working_size)}"
        return res.image, res.preview, str(png), summary

    return run


def _whole_number(value: Any, default: int) -> Any:
    # gr.Number hands over floats (and None when the box is emptied); anything else is left for the check to name.
    if value is None or value == "":
        return default
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _strategy_summary(res: InpaintResult, generator: nn.Module, working_size: Any) -> str:
    working = int(working_size) if working_size else None
    if res.strategy == "full":
        return "full resolution."
    if res.strategy == "resize":
        return f"resize strategy, working size {working or training_size(generator)}."
    cap = f"; windows over {working} px processed at {working}" if working else " at full resolution"
    sizes = ", ".join(f"{w.width}x{w.height}" for w in res.windows[:4]) + (", ..." if len(res.windows) > 4 else "")
    return f"crop strategy, {len(res.windows)} window(s) ({sizes}){cap}."


def _prune(root: Path, max_age: float = 3600.0) -> None:
    """Delete the downloads older than ``max_age`` seconds (Gradio serves its own copy of each)."""
    now = time.time()
    for entry in root.iterdir():
        with contextlib.suppress(OSError):
            if entry.is_dir() and now - entry.stat().st_mtime > max_age:
                shutil.rmtree(entry, ignore_errors=True)


def check_mask_upload(mask_file: str | None) -> None:
    """Warn as soon as a mask file that is not an image is uploaded (the button would refuse it anyway)."""
    gr = import_gradio()
    if mask_file:
        try:
            _check_image_file(mask_file, "mask file")
        except InpaintError as err:
            gr.Warning(str(err))


# Show small results as large as the box (Gradio keeps images at their natural size otherwise).
APP_CSS = """
#result img, #preview img { width: 100%; height: 100%; object-fit: contain; }
"""

_INTRO = """\
# DMFN inpainting
Upload a photo, paint over what should disappear (the magenta brush), then press **Inpaint**.
You can also upload a mask image (white or coloured = hole) or add a generated hole; all of them are combined.
Known pixels are returned unchanged; only the hole is filled by the generator.
"""


def build_app(
    generator: nn.Module,
    *,
    checkpoint: str | os.PathLike | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    working_size: int | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    devices: Sequence[str] | None = None,
    output_dir: str | os.PathLike | None = None,
    strategy: str | None = None,
    crop_margin: int = DEFAULT_CROP_MARGIN,
) -> gr.Blocks:
    """The page: editor and mask options on the left, result, hole preview and PNG download on the right.

    ``output_dir``: where the result PNGs offered for download are written (default: a new temporary folder).
    ``strategy`` (``None`` = auto) and ``crop_margin``: the initial values of the strategy controls.
    """
    if strategy is not None and strategy not in STRATEGY_CHOICES:
        raise InpaintError(f"strategy must be one of {', '.join(STRATEGY_CHOICES)}, got {strategy!r}")
    gr = import_gradio()
    devices = list(devices or available_devices())
    if device not in devices:
        devices.append(device)
    callback = make_callback(generator, max_pixels=max_pixels, output_dir=output_dir)
    config = getattr(generator, "config", {})
    model_line = f"Model: `{Path(checkpoint).name if checkpoint else 'generator'}`" + (
        f" ({config.get('block')} blocks x {config.get('num_blocks')}, {config.get('base_channels')} channels)"
        if config
        else ""
    )
    limit = f"{max_pixels / 1e6:.0f} MP" if max_pixels else "none"

    with gr.Blocks(title="DMFN inpainting", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(_INTRO + f"\n{model_line}. Full-resolution limit: {limit}.")
        with gr.Row(equal_height=False):
            with gr.Column():
                editor = gr.ImageEditor(
                    label="Image (paint the hole)",
                    type="pil",
                    image_mode="RGBA",
                    sources=("upload", "clipboard"),
                    brush=gr.Brush(colors=[BRUSH_COLOR], default_color=BRUSH_COLOR, color_mode="fixed"),
                    layers=False,
                    transforms=("crop",),
                    elem_id="editor",
                )
                mask_file = gr.File(
                    label="Mask image (optional, white or coloured = hole; resized if its size differs)",
                    type="filepath",
                    height=120,
                    elem_id="mask-file",
                )
                with gr.Row():
                    mask_kind = gr.Radio(
                        list(MASK_CHOICES),
                        value=next(iter(MASK_CHOICES)),
                        label="Generated hole (added to the brush and the mask file)",
                        scale=3,
                        elem_id="mask-kind",
                    )
                    seed = gr.Number(value=0, precision=0, label="Seed", minimum=0, scale=1, elem_id="seed")
                with gr.Row():
                    strategy_box = gr.Radio(
                        list(STRATEGY_CHOICES),
                        value=strategy or "auto",
                        label="Strategy",
                        info="full: whole image at its resolution; resize: whole image at the working size; crop: a "
                        "window around each hole at full resolution (best for small holes in large photos); auto: "
                        "resize with a working size, else full",
                        scale=3,
                        elem_id="strategy",
                    )
                    margin_box = gr.Number(
                        value=crop_margin,
                        precision=0,
                        minimum=0,
                        label="Crop margin (px)",
                        info="context around each hole (crop)",
                        scale=1,
                        elem_id="crop-margin",
                    )
                with gr.Accordion("Advanced", open=False), gr.Row():
                    device_box = gr.Dropdown(devices, value=device, label="Device", elem_id="device")
                    precision_box = gr.Dropdown(
                        list(PRECISIONS), value=precision, label="Precision", elem_id="precision"
                    )
                    working_box = gr.Number(
                        value=working_size or 0,
                        precision=0,
                        minimum=0,
                        label="Working size (px)",
                        info="Longer side to process at; 0 = full resolution. The model was trained on 256x256 "
                        "crops: for large photos 256-512 is faster; with crop, only larger windows are resized.",
                        elem_id="working-size",
                    )
                run_button = gr.Button("Inpaint", variant="primary", elem_id="run")
            with gr.Column():
                result = gr.Image(
                    label="Result",
                    type="pil",
                    format="png",
                    interactive=False,
                    buttons=["download", "fullscreen"],
                    height=400,
                    elem_id="result",
                )
                status = gr.Markdown(elem_id="status")
                download = gr.File(label="Download PNG", interactive=False, height=90, elem_id="download")
                preview = gr.Image(
                    label="Hole used (tinted)",
                    type="pil",
                    format="png",
                    interactive=False,
                    buttons=["fullscreen"],
                    height=240,
                    elem_id="preview",
                )
        mask_file.upload(check_mask_upload, inputs=mask_file, outputs=None)
        run_button.click(
            callback,
            # The strategy controls come last, so that callers of the 7-argument API keep working.
            inputs=[
                editor,
                mask_file,
                mask_kind,
                seed,
                device_box,
                precision_box,
                working_box,
                strategy_box,
                margin_box,
            ],
            outputs=[result, preview, download, status],
            api_name="inpaint",
        )
    return demo


# ---------------------------------------------------------------------------------------------------------------
# command line


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
    parser.add_argument(
        "--checkpoint",
        help="generator file (generator.pt from training or dmfn_lightning.export), a DMFNModule .ckpt or the "
        "authors' released weights; default: the newest outputs/demo/**/generator.pt (from `make demo`)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, loopback)")
    parser.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    parser.add_argument("--device", default="auto", help="default device in the page: auto, cpu, cuda, cuda:N, mps")
    parser.add_argument("--precision", default="fp32", choices=list(PRECISIONS), help="default precision")
    parser.add_argument(
        "--working-size",
        type=_positive_int,
        default=0,
        help="default working resolution (longer side, px); 0 = full resolution",
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
        type=_positive_int,
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


def _load_generator(checkpoint: str | None):
    from dmfn_lightning.models import CheckpointError, load_generator

    if checkpoint is None:
        found = find_demo_checkpoint()
        if found is None:
            raise DMFNError("no --checkpoint given and no outputs/demo/**/generator.pt here.\n" + CHECKPOINT_HELP)
        print(f"using {found} (the newest demo generator; pass --checkpoint to choose another)")
        checkpoint = str(found)
    path = Path(checkpoint).expanduser()
    if not path.exists():
        raise DMFNError(f"checkpoint {str(path)!r} does not exist.\n" + CHECKPOINT_HELP)
    try:
        return path, load_generator(path, map_location="cpu")
    except CheckpointError as err:
        raise DMFNError(f"{err}\n{CHECKPOINT_HELP}") from err


def check_output_locations(output_dir: str | os.PathLike | None) -> None:
    """Before any work: ``output_dir`` (if given) and Gradio's cache folder must be writable folders; raises
    :class:`~dmfn_lightning.inpainting.OutputPathError` with a one-line reason."""
    from dmfn_lightning.inpainting import check_output_folder

    if output_dir:
        check_output_folder(output_dir, "--output-dir")
    # Gradio copies every result into its cache (GRADIO_TEMP_DIR, default <temp>/gradio) before serving it.
    cache = os.environ.get("GRADIO_TEMP_DIR") or str(Path(tempfile.gettempdir()) / "gradio")
    check_output_folder(cache, "Gradio's cache folder (GRADIO_TEMP_DIR)")


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    check_output_locations(args.output_dir)  # before Gradio is imported and the model loaded
    import_gradio()  # fail fast, before loading the model
    from dmfn_lightning.inpainting import resolve_device

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
