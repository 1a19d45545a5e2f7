"""The web demo's Gradio page: the layout, the button's callback and the lazy, telemetry-free Gradio import.

:func:`build_app` lays out the ``gr.Blocks`` page (editor and mask options on the left, result, hole preview and
PNG download on the right); :func:`make_callback` is the function wired to its button: it calls
:func:`dmfn_lightning.webapp.request.inpaint_request` and turns user errors into ``gr.Error`` (a red message in the
page) and notes into ``gr.Warning``. The page's image editor hands its images over as files, undecoded
(:func:`editor_files`), so that a file that is not an image or is too large is refused from its header, in the
page's one-line error, before anything decodes it. Gradio is an optional dependency (the ``app`` extra): it is
imported only inside these functions, through :func:`import_gradio`, so the library imports without it. Nothing is
fetched from the internet at run time: Gradio's analytics and version check are switched off and its default theme
uses the fonts bundled with the package.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

from dmfn_lightning.core.devices import PRECISIONS
from dmfn_lightning.core.errors import DMFNError, InpaintError
from dmfn_lightning.inpainting.api import resolve_strategy
from dmfn_lightning.inpainting.hd import DEFAULT_CROP_MARGIN
from dmfn_lightning.webapp.request import (
    BRUSH_COLOR,
    DEFAULT_MAX_PIXELS,
    NO_MASK,
    STRATEGY_CHOICES,
    GeneratedMasks,
    check_image_file,
    inpaint_request,
    strategy_summary,
)

if TYPE_CHECKING:  # pragma: no cover
    import gradio as gr
    from torch import nn

__all__ = [
    "APP_CSS",
    "available_devices",
    "build_app",
    "check_mask_upload",
    "editor_files",
    "import_gradio",
    "make_callback",
]


def import_gradio() -> ModuleType:
    """Import Gradio with telemetry off, or raise a :class:`DMFNError` saying how to install it."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # no analytics, no version check: the app works offline
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import gradio as gr  # here, not at the top: Gradio is optional (the ``app`` extra)
    except ImportError as err:
        raise DMFNError(
            f"the web app needs Gradio, which is not installed ({err}). Install the app extra: "
            "pip install 'dmfn_lightning[app]'"
        ) from err
    return gr


def _editor_file(editor: Any, data: Any, name: str) -> str | None:
    """The path of one part of the editor's value, not decoded: an upload's own file, or a browser blob written
    as it came (into Gradio's cache, deleted with it)."""
    if data is None:
        return None
    if isinstance(data, bytes | bytearray | memoryview):
        cache = Path(getattr(editor, "GRADIO_CACHE", None) or tempfile.gettempdir())
        cache.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix="dmfn_editor_", dir=cache)) / name
        path.write_bytes(bytes(data))
        getattr(editor, "temp_files", set()).add(str(path))
        return str(path)
    path = getattr(data, "path", None)
    if path is None and isinstance(data, dict):
        path = data.get("path")
    return str(path) if path else None


def editor_files(editor: Any, payload: Any) -> dict[str, Any] | None:
    """The image editor's value as the button receives it: ``{"background", "layers", "composite"}`` as file
    paths, none of them decoded.

    Gradio's own ``ImageEditor`` opens and converts every image before the button's function runs, so a file that
    is not an image fails inside Gradio ("Could not preprocess input component", a server traceback) and a
    12000x9000 photo is decoded (gigabytes) before anything can refuse it. Handed over as files, they reach
    :func:`dmfn_lightning.webapp.request.inpaint_request`, which reads their headers first
    (:func:`~dmfn_lightning.webapp.request.check_image_file`) and refuses them in one line. ``payload`` is Gradio's
    ``EditorData`` (uploaded files, through the API) or refers by its ``id`` to the blobs the browser's canvas sent
    (the editor's ``blob_storage``).
    """
    if payload is None:
        return None
    background, layers, composite = payload.background, list(payload.layers or []), payload.composite
    storage = getattr(editor, "blob_storage", {})
    if payload.id is not None and payload.id in storage:
        cached = storage.pop(payload.id)
        background, layers, composite = cached.background, list(cached.layers or []), cached.composite
    files = [_editor_file(editor, layer, f"layer_{i}.png") for i, layer in enumerate(layers)]
    return {
        "background": _editor_file(editor, background, "background.png"),
        "layers": [f for f in files if f is not None],
        "composite": _editor_file(editor, composite, "composite.png"),
    }


def _hand_over_files(editor: Any) -> Any:
    """``editor`` (a ``gr.ImageEditor``), its value from now on handed to the button undecoded
    (:func:`editor_files`). Its own ``preprocess`` is replaced on the instance, not by a subclass: Gradio writes a
    type stub (``.pyi``) beside the module of every component class defined, which a package must not do at run
    time; the browser shows the usual ImageEditor either way."""
    editor.preprocess = types.MethodType(editor_files, editor)
    return editor


def available_devices() -> list[str]:
    """Devices offered in the page: ``cpu`` plus every CUDA device (and ``mps`` on Apple silicon)."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        devices += ["cuda"] if count == 1 else [f"cuda:{i}" for i in range(count)]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


def make_callback(
    generator: nn.Module,
    *,
    masks: GeneratedMasks | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    output_dir: str | os.PathLike | None = None,
) -> Callable[..., tuple[Image.Image, Image.Image, str, str]]:
    """The button's function: ``(editor, mask_file, mask_kind, seed, device, precision, working_size[, strategy,
    crop_margin])`` -> ``(result, hole preview, PNG path, summary)``, with the generated holes of ``masks``. User
    errors become ``gr.Error``, notes ``gr.Warning``."""
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
                masks=masks,
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
        summary = f"{res.summary} Device {device}, {precision}, {strategy_summary(res, generator, working_size)}"
        return res.image, res.preview, str(png), summary

    return run


def _whole_number(value: Any, default: int) -> Any:
    # gr.Number hands over floats (and None when the box is emptied); anything else is left for the check to name.
    if value is None or value == "":
        return default
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


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
            check_image_file(mask_file, "mask file")
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
    masks: GeneratedMasks | None = None,
) -> gr.Blocks:
    """The page: editor and mask options on the left, result, hole preview and PNG download on the right.

    ``output_dir``: where the result PNGs offered for download are written (default: a new temporary folder).
    ``strategy`` (``None`` or ``"auto"`` = auto) and ``crop_margin``: the initial values of the strategy controls
    (an unknown strategy is the API's :class:`InpaintError`). ``masks``: the generated holes offered (``python -m
    dmfn_lightning.app`` hands in the data layer's mask kinds for photos); ``None``: none.
    """
    strategy = STRATEGY_CHOICES.get(strategy, strategy) if strategy is not None else None
    if strategy is not None:
        resolve_strategy(strategy)  # the API's check and message
    gr = import_gradio()
    devices = list(devices or available_devices())
    if device not in devices:
        devices.append(device)
    callback = make_callback(generator, masks=masks, max_pixels=max_pixels, output_dir=output_dir)
    mask_choices = list(masks.choices) if masks is not None else [NO_MASK]
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
                    type="filepath",
                    image_mode="RGBA",
                    sources=("upload", "clipboard"),
                    brush=gr.Brush(colors=[BRUSH_COLOR], default_color=BRUSH_COLOR, color_mode="fixed"),
                    layers=False,
                    transforms=("crop",),
                    elem_id="editor",
                )
                _hand_over_files(editor)
                mask_file = gr.File(
                    label="Mask image (optional, white or coloured = hole; resized if its size differs)",
                    type="filepath",
                    height=120,
                    elem_id="mask-file",
                )
                with gr.Row():
                    mask_kind = gr.Radio(
                        mask_choices,
                        value=NO_MASK,
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
