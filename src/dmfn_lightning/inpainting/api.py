"""Inpainting your own photos: the library API behind ``python -m dmfn_lightning.inpaint`` and the web app.

Any image size works: the generator (Hui et al., "Image Fine-grained Inpainting", arXiv:2002.02609) needs sides
divisible by 4, so the 4-channel input is padded (reflect; replicate when the image is too small to reflect), run
and cropped back. Three strategies decide what the generator sees (``strategy=``, :mod:`dmfn_lightning.inpainting.hd`):
``full`` runs on the whole image at its resolution; ``resize`` processes it at the resolution whose longer side is
``working_size`` and upsamples the prediction; ``crop`` inpaints a window around each connected hole at the image's
resolution (windows larger than ``working_size``, when given, at ``working_size``). The known pixels always come
from the original file, so they are returned bit-identical whatever the strategy, precision or resolution
(composited in 8-bit, eq. 1's ``I_out``).

Masks: which pixels are holes is decided by one rule, in :mod:`dmfn_lightning.core.holes` (white or any colour at
50 % of full scale or more, 1 in 0/1 masks, painted pixels of a transparent layer); files, PIL images, arrays
and tensors given to :func:`load_mask` or :func:`inpaint` all go through it.

Before the network runs, the memory it needs is estimated from the processed size and compared with what the
device has free (:func:`check_memory`): too large an image is refused with a hint to use ``working_size``
instead of failing inside an allocation, and an out-of-memory error that still happens becomes an
:class:`InpaintMemoryError`. A prediction with NaN or infinite values in the hole (a broken checkpoint) raises
:class:`NonFiniteOutputError` instead of being saved as black.

The pieces live in their own modules: devices, precision and the memory guard in :mod:`dmfn_lightning.core.devices`,
processed sizes in :mod:`dmfn_lightning.core.sizes`, reading images and masks and writing results in
:mod:`dmfn_lightning.inpainting.image_io`, padding, precision and compositing in the inference path
(:mod:`dmfn_lightning.models.inference`); this module chooses what the generator sees.

Example::

    from dmfn_lightning.inpainting.api import inpaint, load_image, load_mask
    from dmfn_lightning.models import load_generator

    generator = load_generator("generator.pt")
    image = load_image("photo.jpg")
    result = inpaint(generator, image, load_mask("mask.png", image.size))
    result.save("photo_inpainted.png")
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from dmfn_lightning.core.devices import (
    PRECISIONS,
    check_memory,
    is_out_of_memory,
    prepare_generator,
    resolve_device,
)
from dmfn_lightning.core.errors import InpaintError, InpaintMemoryError, NonFiniteOutputError
from dmfn_lightning.core.pixels import from_levels, to_uint8
from dmfn_lightning.core.sizes import check_working_size, processed_dims, working_dims
from dmfn_lightning.inpainting.hd import (
    DEFAULT_CROP_MARGIN,
    STRATEGIES,
    Window,
    check_crop_margin,
    crop_windows,
    training_size,
)
from dmfn_lightning.inpainting.image_io import (
    ImageInput,
    MaskInput,
    load_image,
    load_mask,
)
from dmfn_lightning.models.inference import run_generator

__all__ = [
    "API_NAMES",
    "SettingNames",
    "Settings",
    "batches_by_size",
    "inpaint",
    "inpaint_batch",
    "inpaint_tensor",
    "inpaint_windows",
    "resolve_settings",
    "resolve_strategy",
]


# ---------------------------------------------------------------------------------------------------------------
# running the generator on tensors (through the inference engine)


def inpaint_tensor(
    generator: nn.Module,
    image_u8: Tensor,
    hole: Tensor,
    working_size: int | None = None,
    precision: str = "fp32",
) -> Tensor:
    """Batched core: ``image_u8`` uint8 ``[B, 3, H, W]``, ``hole`` bool ``[B, 1, H, W]`` on the generator's device.

    Returns uint8 ``[B, 3, H, W]``: the prediction inside the holes, the input bytes everywhere else.
    """
    image = from_levels(image_u8)
    mask = hole.float()
    height, width = image.shape[-2:]
    if working_size is None:
        output = run_generator(generator, image, mask, precision)
    else:
        h, w = working_dims(height, width, int(working_size))
        # Box-filter (area) resampling for both, over the same pixel footprints: a low-resolution pixel that
        # touches the hole is a hole, and every other one averages known pixels only, so nothing of what is
        # being removed leaks into the context (a bicubic kernel's tails would smear it a few pixels out).
        small = F.interpolate(image, size=(h, w), mode="area")
        small_mask = (F.interpolate(mask, size=(h, w), mode="area") > 0).float()
        small_out = run_generator(generator, small, small_mask, precision)
        output = F.interpolate(small_out, size=(height, width), mode="bicubic", align_corners=False).clamp_(-1, 1)
    # NaN survives clamp() and becomes 0 (black) in the uint8 cast: a broken generator must be reported instead.
    bad = int(((~torch.isfinite(output)).any(dim=1, keepdim=True) & hole).sum())
    if bad:
        raise NonFiniteOutputError(
            f"the generator returned NaN or infinite values for {bad} hole pixel(s); "
            "nothing was written. Its weights are probably broken (a diverged training run or a damaged file)"
            + (f"; with {precision}, also try --precision fp32" if precision != "fp32" else "")
            + "."
        )
    predicted = to_uint8(output)
    return torch.where(hole, predicted, image_u8)


def _window_working_size(window: Window, working_size: int | None) -> int | None:
    # A window is only rescaled when it is larger than the cap: small windows keep the image's own resolution.
    if working_size is None or max(window.height, window.width) <= working_size:
        return None
    return int(working_size)


def inpaint_windows(
    generator: nn.Module,
    image_u8: Tensor,
    hole: Tensor,
    windows: Sequence[Sequence[Window]],
    working_size: int | None = None,
    precision: str = "fp32",
) -> Tensor:
    """The ``crop`` strategy on tensors: inpaint each window of ``windows[b]`` of image ``b`` on its own.

    ``image_u8`` uint8 ``[B, 3, H, W]`` and ``hole`` bool ``[B, 1, H, W]`` on the generator's device; ``windows``
    from :func:`~.hd.crop_windows` (disjoint, each holding its holes whole). A window whose longer
    side exceeds ``working_size`` is processed at ``working_size`` (:func:`inpaint_tensor`), any other at its own
    resolution. Returns uint8 ``[B, 3, H, W]``: predictions in the holes, the input bytes everywhere else.
    """
    result = image_u8.clone()
    for b, image_windows in enumerate(windows):
        for window in image_windows:
            rows, cols = window.slices
            result[b : b + 1, :, rows, cols] = inpaint_tensor(
                generator,
                image_u8[b : b + 1, :, rows, cols],
                hole[b : b + 1, :, rows, cols],
                _window_working_size(window, working_size),
                precision,
            )
    return result


# ---------------------------------------------------------------------------------------------------------------
# public entry points


def _as_rgb_array(image: ImageInput) -> np.ndarray:
    # Always through load_image: a PIL image straight from Image.open still carries its EXIF orientation, and
    # the mask is drawn on the image as displayed.
    return np.asarray(load_image(image), dtype=np.uint8)


class SettingNames(NamedTuple):
    """What the caller calls the three settings in its error messages: the API's argument names by default, the
    command line's flags (``--strategy``, ...) or the web page's fields, so every caller shows the API's messages."""

    strategy: str = "strategy"
    working_size: str = "working_size"
    crop_margin: str = "crop_margin"


API_NAMES = SettingNames()  # the names of inpaint()'s arguments


class Settings(NamedTuple):
    """Checked settings: what :func:`resolve_settings` returns."""

    strategy: str  # one of STRATEGIES
    working_size: int | None  # None: no working size
    crop_margin: int  # the crop strategy's context (DEFAULT_CROP_MARGIN unless given)


def resolve_strategy(strategy: str | None, working_size: int | None = None, names: SettingNames = API_NAMES) -> str:
    """The strategy to use: ``strategy`` checked against :data:`STRATEGIES`, or, for ``None``, today's default
    (``resize`` with a ``working_size``, else ``full``). ``full`` with a ``working_size`` is an
    :class:`InpaintError` (one of them is not what the caller meant); messages call the settings ``names``."""
    if strategy is None:
        return "full" if working_size is None else "resize"
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise InpaintError(f"{names.strategy} must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if strategy == "full" and working_size is not None:
        raise InpaintError(
            f"{names.strategy} full processes the image at its own resolution; {names.working_size} {working_size} "
            f"needs {names.strategy} resize or crop (or drop {names.working_size})"
        )
    return strategy


def resolve_settings(
    strategy: str | None = None,
    working_size: Any = None,
    crop_margin: Any = None,
    names: SettingNames = API_NAMES,
) -> Settings:
    """The one check of the strategy, the working size and the crop margin, for the API, the command line and the
    web app alike: raises :class:`InpaintError` with a one-line message that names the bad value by ``names`` and
    says what to do.

    ``strategy``: :func:`resolve_strategy`. ``working_size``: ``None``, or a whole number of pixels of at least
    :data:`~dmfn_lightning.core.sizes.MIN_SIDE` (:func:`~dmfn_lightning.core.sizes.check_working_size`).
    ``crop_margin``: ``None`` (:data:`~.hd.DEFAULT_CROP_MARGIN`), or a whole number of pixels >= 0
    (:func:`~.hd.check_crop_margin`) given with the ``crop`` strategy only.
    """
    working = check_working_size(working_size, names.working_size)
    strategy = resolve_strategy(strategy, working, names)
    if crop_margin is None:
        return Settings(strategy, working, DEFAULT_CROP_MARGIN)
    margin = check_crop_margin(crop_margin, names.crop_margin)
    if strategy != "crop":
        raise InpaintError(f"{names.crop_margin} {margin} applies to {names.strategy} crop only, not {strategy}")
    return Settings(strategy, working, margin)


def _check_crop_memory(
    generator: nn.Module,
    windows: Sequence[Sequence[Window]],
    working_size: int | None,
    device: torch.device,
) -> None:
    """:func:`check_memory` for the window that needs the most memory (windows run one at a time)."""
    sized = [
        (w, _window_working_size(w, working_size))
        for image_windows in windows
        for w in image_windows  # all windows of all images
    ]
    if not sized:
        return
    window, size = max(sized, key=lambda ws: math.prod(processed_dims(ws[0].height, ws[0].width, ws[1])))
    try:
        check_memory(generator, window.height, window.width, working_size=size, device=device)
    except InpaintMemoryError as err:
        raise InpaintMemoryError(f"crop window {window.width}x{window.height}: {err}") from err


def inpaint_batch(
    generator: nn.Module,
    images: Sequence[ImageInput],
    masks: Sequence[MaskInput],
    *,
    strategy: str | None = None,
    working_size: int | None = None,
    crop_margin: int | None = None,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    memory_check: bool = True,
) -> list[Image.Image]:
    """Inpaint several images of the same size in one forward pass (one per window for ``crop``); see
    :func:`inpaint`."""
    strategy, working_size, crop_margin = resolve_settings(strategy, working_size, crop_margin)
    if len(images) != len(masks):
        raise InpaintError(f"got {len(images)} images but {len(masks)} masks")
    if not images:
        return []
    arrays = [_as_rgb_array(img) for img in images]
    shape = arrays[0].shape[:2]
    holes = []
    for i, (arr, mask) in enumerate(zip(arrays, masks)):
        if arr.shape[:2] != shape:
            raise InpaintError(
                f"inpaint_batch needs images of one size: image {i} is {arr.shape[1]}x{arr.shape[0]}, "
                f"image 0 is {shape[1]}x{shape[0]}"
            )
        # Every mask, whatever its type, goes through the one hole rule (a soft float mask is cut at 0.5 here
        # exactly as in a mask file).
        holes.append(load_mask(mask, (arr.shape[1], arr.shape[0])))
    if precision not in PRECISIONS:
        raise InpaintError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if not any(h.any() for h in holes):
        return [Image.fromarray(arr.copy(), "RGB") for arr in arrays]  # nothing to fill: skip the network
    if strategy == "resize" and working_size is None:
        working_size = training_size(generator)  # the resolution the model knows best
    target = resolve_device(device)
    windows: list[list[Window]] = []
    if strategy == "crop":
        min_size = training_size(generator)
        windows = [crop_windows(hole, crop_margin, min_size) for hole in holes]
        if memory_check:
            _check_crop_memory(generator, windows, working_size, target)
    elif memory_check:
        check_memory(generator, *shape, batch=len(arrays), working_size=working_size, device=target)
    try:
        generator = prepare_generator(generator, target)
        image_u8 = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).to(target)
        hole_t = torch.from_numpy(np.stack(holes))[:, None].to(target)
        with torch.inference_mode():
            if strategy == "crop":
                result = inpaint_windows(generator, image_u8, hole_t, windows, working_size, precision)
            else:
                result = inpaint_tensor(generator, image_u8, hole_t, working_size, precision)
    except (RuntimeError, MemoryError) as err:
        if not is_out_of_memory(err):
            raise
        if target.type == "cuda":
            torch.cuda.empty_cache()
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InpaintMemoryError(
            f"out of memory on {target} while inpainting {len(arrays)} image(s) of {shape[1]}x{shape[0]} "
            f"({first}). Use a smaller --working-size (working_size= in Python), e.g. 1024 or 512: the known "
            "pixels stay untouched at full resolution."
        ) from err
    out = result.permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(np.ascontiguousarray(a), "RGB") for a in out]


def inpaint(
    generator: nn.Module,
    image: ImageInput,
    mask: MaskInput,
    *,
    strategy: str | None = None,
    working_size: int | None = None,
    crop_margin: int | None = None,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    memory_check: bool = True,
) -> Image.Image:
    """Fill the holes of ``image`` (any size) and return an RGB PIL image of the same size.

    Args:
        generator: a :class:`~dmfn_lightning.models.DMFNGenerator` (or a module with the same 4-channel
            interface, e.g. a TorchScript export); moved to ``device`` and put in eval mode.
        image: PIL image, path, uint8/float array or tensor (converted with :func:`load_image`).
        mask: the holes, of the image's size: a bool array ``[H, W]`` (True = hole; see :func:`load_mask`, or
            :func:`dmfn_lightning.masks.generate_mask` for a generated one), or anything :func:`load_mask`
            reads (path, PIL image, 0/1, 8-bit or float array or tensor), with the same rule: a soft mask is a hole
            where it is at least 0.5.
        strategy: what the generator sees (:mod:`dmfn_lightning.inpainting.hd`): ``"full"`` the whole image at its
            resolution (padded to a multiple of 4, cropped back); ``"resize"`` the whole image at the
            resolution whose longer side is ``working_size`` (sides multiples of 4, aspect kept; default the
            model's training size, :func:`~dmfn_lightning.inpainting.hd.training_size`), the prediction upsampled
            (bicubic) into the hole; ``"crop"`` a window around each connected hole (``crop_margin`` pixels of
            context, at least the training size per side, overlapping windows merged) at the image's
            resolution, a window larger than ``working_size`` (when given) processed at ``working_size``.
            ``None``: ``"resize"`` when ``working_size`` is given, else ``"full"``.
        working_size: the longer side of the processing resolution for ``"resize"``, the largest window
            processed at the image's resolution for ``"crop"`` (at least 8); not allowed with ``"full"``.
        crop_margin: pixels of context added around each hole's bounding box by ``"crop"`` (default 128); only
            with ``"crop"``.
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
        precision: ``fp32``, ``bf16`` or ``fp16`` (autocast; the compositing stays exact).
        memory_check: refuse, with :class:`InpaintMemoryError`, an image whose estimated memory need exceeds
            what the device has free (:func:`check_memory`).

    Known pixels are returned bit-identical; an all-zero mask returns the input without running the network.
    An unknown ``strategy``, ``"full"`` with a ``working_size``, a ``working_size`` below 8, a negative
    ``crop_margin`` or one given without ``"crop"`` raise :class:`InpaintError` (:func:`resolve_settings`).
    Raises :class:`InpaintMemoryError` when the image is too large for the device and :class:`NonFiniteOutputError`
    when the generator returns NaN or infinite values in the hole.
    """
    return inpaint_batch(
        generator,
        [image],
        [mask],
        strategy=strategy,
        working_size=working_size,
        crop_margin=crop_margin,
        device=device,
        precision=precision,
        memory_check=memory_check,
    )[0]


def batches_by_size(items: Sequence[Any], sizes: Sequence[tuple[int, int]], batch_size: int) -> Iterator[list[int]]:
    """Indices of ``items`` grouped into batches of at most ``batch_size`` with equal ``sizes`` (input order kept
    within a size)."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, size in enumerate(sizes):
        groups.setdefault(tuple(size), []).append(i)
    for indices in groups.values():
        for start in range(0, len(indices), max(1, batch_size)):
            yield indices[start : start + batch_size]
