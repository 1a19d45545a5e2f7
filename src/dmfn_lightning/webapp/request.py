"""The web demo's request logic without Gradio: editor value + mask options -> inpainted image, or a user message.

One press of the page's **Inpaint** button is :func:`inpaint_request`: the hole is the union of the brush layers
(:func:`brush_hole`), an optional uploaded mask file and an optional generated mask, all read with the library's
one mask rule (:mod:`dmfn_lightning.core.holes`); the image is then filled by the library's inpainting API
(:func:`dmfn_lightning.inpainting.api.inpaint`: padding, the ``full`` / ``resize`` / ``crop`` strategies of
:mod:`dmfn_lightning.inpainting.hd`, and the exact composite that returns the known pixels unchanged). Bad input raises
:class:`~dmfn_lightning.core.errors.InpaintError` with a message meant for the user; :mod:`dmfn_lightning.webapp.page`
shows it in the page. Files (the page hands the editor's uploads over undecoded) are checked from their headers
before anything decodes them (:func:`check_image_file`: not an image, or above the pixel limit), and a generated
hole's seed is checked (:func:`check_seed`). The strategy, working size and crop margin are checked by the API
(:func:`~dmfn_lightning.inpainting.api.resolve_settings`), under the page's names for them. Nothing here imports
Gradio, so the tests drive it without a browser.

The generated holes are the data layer's mask kinds for photos (:mod:`dmfn_lightning.masks.registry`), which
this layer may not import: ``python -m dmfn_lightning.app`` hands them in as a :class:`GeneratedMasks` (their labels
and the function that draws one); without it the page offers no generated hole.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from dmfn_lightning.core.errors import DMFNError, InpaintError, InpaintMemoryError
from dmfn_lightning.inpainting.api import SettingNames, inpaint, resolve_settings
from dmfn_lightning.inpainting.hd import DEFAULT_CROP_MARGIN, STRATEGIES, Window, crop_windows, training_size
from dmfn_lightning.inpainting.image_io import load_image, load_mask

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

__all__ = [
    "BRUSH_COLOR",
    "DEFAULT_MAX_PIXELS",
    "FIELD_NAMES",
    "NO_MASK",
    "STRATEGY_CHOICES",
    "GeneratedMasks",
    "InpaintResult",
    "brush_hole",
    "check_image_file",
    "check_seed",
    "inpaint_request",
    "strategy_summary",
]

DEFAULT_MAX_PIXELS = 16_000_000

# Radio label -> inpaint(strategy=...); "auto" is the library's default: resize with a working size, else full.
STRATEGY_CHOICES: dict[str, str | None] = {"auto": None, **{name: name for name in STRATEGIES}}
# The page's names for the settings, in the API's messages (resolve_settings).
FIELD_NAMES = SettingNames(strategy="The strategy", working_size="The working size", crop_margin="The crop margin")
# The generated-hole choice that adds none.
NO_MASK = "none"


@dataclass(frozen=True)
class GeneratedMasks:
    """The generated holes the page offers: the mask kinds for photos with their labels, and how to draw one.

    Built by ``python -m dmfn_lightning.app`` from the data layer's registry
    (:func:`dmfn_lightning.masks.photo_mask_kinds`, each class's ``label``) with
    :func:`dmfn_lightning.masks.generate_mask` as ``draw``.
    """

    labels: Mapping[str, str]  # kind -> the label shown in the page, in the order offered
    draw: Callable[[str, int, int, int], np.ndarray]  # (kind, width, height, seed) -> bool [H, W] hole

    @property
    def choices(self) -> dict[str, str | None]:
        """The page's radio: label -> kind, :data:`NO_MASK` (no generated hole) first."""
        return {NO_MASK: None, **{label: kind for kind, label in self.labels.items()}}

    def kind(self, choice: str | None) -> str | None:
        """The kind a radio label (or a kind's own name) stands for; ``None`` for no generated hole."""
        if not choice or choice == NO_MASK:
            return None
        kind = self.choices.get(choice, choice)
        if kind not in self.labels:
            offered = ", ".join(repr(label) for label in self.choices)
            raise InpaintError(f"Unknown generated hole {choice!r}; choose one of {offered}.")
        return kind

    def hole(self, choice: str | None, width: int, height: int, seed: int) -> np.ndarray | None:
        """The generated hole for ``choice`` on a ``width x height`` image, or ``None`` for :data:`NO_MASK`; a seed
        that is not a whole number >= 0 is an :class:`InpaintError` naming it."""
        kind = self.kind(choice)
        if kind is None:
            return None
        check_seed(seed)
        try:
            return self.draw(kind, width, height, seed)
        except DMFNError as err:
            raise InpaintError(
                f"The generated hole cannot be used: {err}. Pick another generated hole or paint one."
            ) from err


def check_seed(seed: Any) -> int:
    """The generated hole's seed as an int, or an :class:`InpaintError` naming it when it is not a whole number
    >= 0 (a float that is one, as ``gr.Number`` hands over, passes)."""
    if isinstance(seed, float) and seed.is_integer():
        seed = int(seed)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InpaintError(f"The seed must be a whole number >= 0, got {seed!r}.")
    return int(seed)


_HOLE_TINT = np.array([255, 0, 255], dtype=np.float32)  # the brush colour, also used for the mask preview
BRUSH_COLOR = "#ff00ff"


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

    Each layer is read like a mask file, with the one rule of :mod:`dmfn_lightning.core.holes`: on a layer with
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


def check_image_file(path: str | os.PathLike, what: str, max_pixels: int | None = None) -> tuple[int, int]:
    """Refuse, with a short message naming only the file, a path that is not an image or is too large; returns
    its (width, height).

    Reads the header only (PIL opens lazily), so a huge file is refused before it is decoded: a 12000x9000 photo in
    a 337 KB PNG costs a few bytes here, not the 4 GB its decoding would.
    """
    name = Path(path).name
    if not Path(path).is_file():
        raise InpaintError(f"The {what} {name!r} does not exist (anymore); upload it again.")
    try:
        with warnings.catch_warnings():
            # Past PIL's warning size the header is still only read; this app's own limit decides below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
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
        if what == "image":
            raise InpaintError(_too_large(width, height, max_pixels))
        raise InpaintError(
            f"The {what} {name!r} is {width}x{height} ({width * height / 1e6:.1f} MP), larger than the image and "
            f"this app's limit of {max_pixels / 1e6:.1f} MP; give one of the image's size."
        )
    return width, height


def _too_large(width: int, height: int, max_pixels: int, what: str = "image") -> str:
    return (
        f"The {what} is {width}x{height} ({width * height / 1e6:.1f} MP), above this app's limit of "
        f"{max_pixels / 1e6:.1f} MP for full-resolution inpainting. Set a working size (e.g. 512) under "
        "'Advanced' to process it at a lower resolution (the known pixels stay untouched at full resolution), "
        + ("" if what != "image" else "choose the 'crop' strategy for small holes, ")
        + "downscale the image, or restart the app with a larger --max-pixels."
    )


def _mask_file_hole(
    mask_file: Any, size: tuple[int, int], max_pixels: int | None = None
) -> tuple[np.ndarray, str | None]:
    """(hole, note): the uploaded mask at the image's size; another size is resized (nearest) with a note."""
    if isinstance(mask_file, str | os.PathLike):
        check_image_file(mask_file, "mask file", max_pixels)
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
    masks: GeneratedMasks | None = None,
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
        mask_file: an optional mask image (white or coloured = hole, :mod:`dmfn_lightning.core.holes`); resized
            (nearest) when its size differs.
        mask_kind: ``None``/``"none"`` or a label (or kind) of ``masks``: a generated hole added to the others.
        seed: seed of the generated mask.
        masks: the generated holes on offer (:class:`GeneratedMasks`); ``None``: none.
        working_size: longer side of the processing resolution, ``None``/0 = full resolution; with the
            ``crop`` strategy, the largest window processed at full resolution. Ignored (with a note) by ``full``.
        max_pixels: refuse full-resolution processing of more than this many pixels (``None`` = no limit): the
            image for ``full``, the largest window for ``crop`` without a working size; a working size lifts it.
        strategy: ``full``, ``resize`` or ``crop`` (:mod:`dmfn_lightning.inpainting.hd`); ``None``: ``resize`` with a
            working size, else ``full``.
        crop_margin: pixels of context around each hole for ``crop`` (ignored by the other strategies).

    The strategy, working size and crop margin are checked by
    :func:`~dmfn_lightning.inpainting.api.resolve_settings` (messages name them as the page does,
    :data:`FIELD_NAMES`); a working size with ``full`` is dropped with a note instead of refused.
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
    # The crop margin is the crop strategy's field: the others leave it alone, whatever it holds.
    margin = crop_margin if strategy == "crop" else None
    strategy, working, margin = resolve_settings(strategy or None, working, margin, FIELD_NAMES)
    # A working size bounds the processed size whatever the image; a crop window's size is known with the hole.
    limit = max_pixels if working is None else None
    # Files (the page hands over the editor's uploads undecoded) are refused from their headers, before decoding.
    if isinstance(background, str | os.PathLike):
        check_image_file(background, "image", limit if strategy == "full" else None)
    image = load_image(background)
    width, height = image.size
    if limit and strategy == "full" and width * height > limit:
        raise InpaintError(_too_large(width, height, limit))
    # A layer or mask file is resized to the image: one larger than both the image and the limit is refused.
    layer_limit = max(max_pixels, width * height) if max_pixels else None
    for layer in layers:
        if isinstance(layer, str | os.PathLike):
            check_image_file(layer, "brush layer", layer_limit)

    hole = brush_hole(layers, image.size)
    if mask_file is not None:
        file_hole, note = _mask_file_hole(mask_file, image.size, layer_limit)
        hole |= file_hole
        if note:
            notes.append(note)
    if mask_kind and mask_kind != NO_MASK:
        if masks is None:
            raise InpaintError(f"No generated holes are offered here, so {mask_kind!r} cannot be added.")
        hole |= masks.hole(mask_kind, width, height, check_seed(seed or 0))
    if not hole.any():
        raise InpaintError(
            "The mask is empty: paint over the region to fill with the brush, upload a mask image "
            "(white or coloured = hole), or pick a generated mask type."
        )
    if hole.all():
        notes.append("The whole image is masked: there is no known context, the result is the model's guess.")
    windows: list[Window] = []
    if strategy == "crop":
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
            crop_margin=margin if strategy == "crop" else None,
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


def strategy_summary(res: InpaintResult, generator: nn.Module, working_size: Any) -> str:
    """How ``res`` was processed, for the status line: full resolution, the working size, or the crop windows."""
    working = int(working_size) if working_size else None
    if res.strategy == "full":
        return "full resolution."
    if res.strategy == "resize":
        return f"resize strategy, working size {working or training_size(generator)}."
    cap = f"; windows over {working} px processed at {working}" if working else " at full resolution"
    sizes = ", ".join(f"{w.width}x{w.height}" for w in res.windows[:4]) + (", ..." if len(res.windows) > 4 else "")
    return f"crop strategy, {len(res.windows)} window(s) ({sizes}){cap}."
