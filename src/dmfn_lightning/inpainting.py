"""Inpainting your own photos: the library API behind ``python -m dmfn_lightning.inpaint`` and the web app.

Any image size works: the generator (Hui et al., "Image Fine-grained Inpainting", arXiv:2002.02609) needs sides
divisible by 4, so the 4-channel input is padded (reflect; replicate when the image is too small to reflect), run
and cropped back. Three strategies decide what the generator sees (``strategy=``, :mod:`dmfn_lightning.hd`):
``full`` runs on the whole image at its resolution; ``resize`` processes it at the resolution whose longer side is
``working_size`` and upsamples the prediction; ``crop`` inpaints a window around each connected hole at the image's
resolution (windows larger than ``working_size``, when given, at ``working_size``). The known pixels always come
from the original file, so they are returned bit-identical whatever the strategy, precision or resolution
(composited in 8-bit, eq. 1's ``I_out``).

Masks: which pixels are holes is decided by one rule, in :mod:`dmfn_lightning.holes` (white or any colour at
50 % of full scale or more, 1 in 0/1 masks, painted pixels of a transparent layer); files, PIL images, arrays
and tensors given to :func:`load_mask` or :func:`inpaint` all go through it.

Before the network runs, the memory it needs is estimated from the processed size and compared with what the
device has free (:func:`check_memory`): too large an image is refused with a hint to use ``working_size``
instead of failing inside an allocation, and an out-of-memory error that still happens becomes an
:class:`InpaintMemoryError`. A prediction with NaN or infinite values in the hole (a broken checkpoint) raises
:class:`NonFiniteOutputError` instead of being saved as black.

Example::

    from dmfn_lightning.inpainting import inpaint, load_image, load_mask
    from dmfn_lightning.models import load_generator

    generator = load_generator("generator.pt")
    image = load_image("photo.jpg")
    result = inpaint(generator, image, load_mask("mask.png", image.size))
    result.save("photo_inpainted.png")
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor, nn

from dmfn_lightning.errors import InpaintError, InpaintMemoryError, NonFiniteOutputError, OutputPathError
from dmfn_lightning.hd import DEFAULT_CROP_MARGIN, STRATEGIES, Window, crop_windows, training_size
from dmfn_lightning.holes import HOLE_THRESHOLD, hole_from_array, hole_from_image

__all__ = [
    "DEFAULT_CROP_MARGIN",
    "HOLE_THRESHOLD",
    "MASK_KINDS",
    "PRECISIONS",
    "STRATEGIES",
    "InpaintError",
    "InpaintMemoryError",
    "NonFiniteOutputError",
    "OutputPathError",
    "autocast",
    "available_memory",
    "check_memory",
    "check_output_folder",
    "estimate_inference_bytes",
    "generate_mask",
    "inpaint",
    "inpaint_batch",
    "inpaint_tensor",
    "inpaint_windows",
    "load_image",
    "load_mask",
    "resolve_device",
    "resolve_strategy",
    "run_generator",
    "save_png",
]

ImageInput = str | os.PathLike | Image.Image | np.ndarray | Tensor
MaskInput = str | os.PathLike | Image.Image | np.ndarray | Tensor

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
MASK_KINDS = ("center", "random_box", "free_form")
_MULTIPLE = 4  # two stride-2 convolutions in the encoder
_MIN_SIDE = 8  # InstanceNorm needs more than one spatial element at H/4 x W/4
_DECODE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError)


# ---------------------------------------------------------------------------------------------------------------
# devices and precision


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` without a GPU is an :class:`InpaintError`."""
    if isinstance(device, torch.device):
        return device
    name = str(device).lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(name)
    except RuntimeError as err:
        raise InpaintError(f"unknown device {device!r}; use cpu, cuda, cuda:N or auto") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InpaintError(f"device {device!r} requested but CUDA is not available here; use --device cpu or auto")
    return resolved


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The autocast context for ``precision`` in ``fp32`` (none), ``bf16`` or ``fp16``."""
    if precision not in PRECISIONS:
        raise InpaintError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _prepare_generator(generator: nn.Module, device: torch.device) -> nn.Module:
    # Moved (in place) only when needed: callers that already placed it pay nothing.
    param = next(generator.parameters(), None)
    if param is not None and param.device != device:
        generator.to(device)
    return generator.eval()


# ---------------------------------------------------------------------------------------------------------------
# memory


def estimate_inference_bytes(height: int, width: int, batch: int = 1, base_channels: int = 64) -> int:
    """Estimated peak memory (bytes) of one generator forward on ``batch`` inputs of ``height x width``.

    Measured on CPU with torch 2.14 (fp32, inference mode), the peak grows by ~17 * ``base_channels`` bytes per
    processed pixel (1.05 KiB at the paper's 64 channels, from the full-resolution decoder stages); the estimate
    is 20 * ``base_channels`` + 256 bytes per pixel, which also covers the wrapper's own image, mask and output
    tensors. bf16/fp16 need less; the same estimate is kept so that the guard never lets a run through that
    fp32 could not finish.
    """
    per_pixel = 20 * max(1, int(base_channels)) + 256
    return int(batch) * int(height) * int(width) * per_pixel


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _available_ram() -> int | None:
    available = None
    try:
        import psutil  # optional: more portable than /proc

        available = int(psutil.virtual_memory().available)
    except ImportError:
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
        except (OSError, ValueError, IndexError):
            pass
    # A container's cgroup limit is what the kernel enforces, whatever the host has free.
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < 1 << 60:
            left = max(0, limit - usage)
            available = left if available is None else min(available, left)
            break
    return available


def available_memory(device: str | torch.device) -> int | None:
    """Bytes free for inference on ``device`` (``None`` when unknown, e.g. MPS: then nothing is refused)."""
    device = torch.device(device)
    try:
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            # Memory PyTorch has cached but not handed out is free for this run too.
            return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
        if device.type == "cpu":
            return _available_ram()
    except (RuntimeError, OSError, ValueError):
        return None
    return None


def _gib(n: float) -> str:
    return f"{n / 2**40:.1f} TiB" if n >= 2**40 else f"{n / 2**30:.1f} GiB"


def _processed_dims(height: int, width: int, working_size: int | None) -> tuple[int, int]:
    if working_size is None:
        ph, pw = _pad_amounts(height, width)
        return height + ph, width + pw
    return _working_dims(height, width, int(working_size))


def check_memory(
    generator: nn.Module,
    height: int,
    width: int,
    *,
    batch: int = 1,
    working_size: int | None = None,
    device: str | torch.device = "cpu",
) -> None:
    """Raise :class:`InpaintMemoryError` when inpainting ``batch`` images of ``width x height`` would need more
    memory than ``device`` has free (:func:`estimate_inference_bytes` vs :func:`available_memory`).

    The message says how much is needed and suggests a ``working_size`` (``--working-size``) that fits.
    """
    h, w = _processed_dims(height, width, working_size)
    base_channels = int(getattr(generator, "config", {}).get("base_channels", 64))
    need = estimate_inference_bytes(h, w, batch, base_channels)
    free = available_memory(device)
    if free is None or need <= free:
        return
    # The largest longer side (multiple of 64, at most 2048) whose processed size fits, aspect ratio kept.
    per_pixel = need / (batch * h * w)
    fit_pixels = free / per_pixel / batch
    longest = math.sqrt(fit_pixels * max(height, width) / max(1, min(height, width)))
    suggestion = min(2048, int(longest // 64) * 64)
    where = f"{_gib(free)} is free on {torch.device(device)}"
    images = f"{batch} images of {width}x{height}" if batch > 1 else f"a {width}x{height} image"
    if working_size is None:
        what = f"Inpainting {images} at full resolution needs about {_gib(need)} of memory, but only {where}."
    else:
        what = (
            f"--working-size {working_size} processes {images} at {w}x{h}, which needs about {_gib(need)} of "
            f"memory, but only {where}."
        )
    longest_side = max(height, width)
    if suggestion >= 64 and working_size is not None and suggestion < working_size:
        hint = f" Use a smaller --working-size (working_size= in Python), at most {suggestion}" + (
            f"; the image's own longer side is {longest_side} px." if longest_side < suggestion else "."
        )
    elif suggestion >= 64 and working_size is None:
        hint = (
            f" Process it at a lower resolution with --working-size {suggestion} (working_size={suggestion} in "
            "Python; the known pixels stay untouched at full resolution), or downscale the image."
        )
    elif batch > 1:
        hint = " Inpaint fewer images at a time (--batch-size 1)."
    else:
        hint = " Free some memory, or use a device with more."
    raise InpaintMemoryError(what + hint)


def _is_out_of_memory(err: BaseException) -> bool:
    if isinstance(err, MemoryError | torch.OutOfMemoryError):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and (
        "out of memory" in text or "not enough memory" in text or "can't allocate memory" in text
    )


# ---------------------------------------------------------------------------------------------------------------
# running the generator on tensors


def _pad_amounts(height: int, width: int) -> tuple[int, int]:
    ph = max(_MIN_SIDE, -(-height // _MULTIPLE) * _MULTIPLE) - height
    pw = max(_MIN_SIDE, -(-width // _MULTIPLE) * _MULTIPLE) - width
    return ph, pw


def run_generator(generator: nn.Module, image: Tensor, mask: Tensor, precision: str = "fp32") -> Tensor:
    """Composited output ``mask * G(x) + (1 - mask) * image`` (float32, [-1, 1]) for any H and W.

    ``image`` ``[B, 3, H, W]`` in [-1, 1], ``mask`` ``[B, 1, H, W]`` (1 = hole), both on the generator's device.
    The 4-channel input is padded at the bottom/right to a multiple of 4 (at least 8) with reflection, or
    replication when a side is too short to reflect, and the prediction is cropped back.
    """
    height, width = image.shape[-2:]
    x = torch.cat([image * (1 - mask), mask], dim=1)
    ph, pw = _pad_amounts(height, width)
    if ph or pw:
        mode = "reflect" if ph < height and pw < width else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    with autocast(image.device, precision):
        prediction = generator(x)
    prediction = prediction[..., :height, :width].float()
    return mask * prediction + (1 - mask) * image


def _working_dims(height: int, width: int, working_size: int) -> tuple[int, int]:
    """(h, w) with the longer side ~``working_size``, both multiples of 4, aspect ratio kept."""
    if working_size < _MIN_SIDE:
        raise InpaintError(f"working_size must be at least {_MIN_SIDE}, got {working_size}")
    scale = working_size / max(height, width)
    h = max(_MULTIPLE, round(height * scale / _MULTIPLE) * _MULTIPLE)
    w = max(_MULTIPLE, round(width * scale / _MULTIPLE) * _MULTIPLE)
    return h, w


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
    image = image_u8.float().div_(127.5).sub_(1.0)
    mask = hole.float()
    height, width = image.shape[-2:]
    if working_size is None:
        output = run_generator(generator, image, mask, precision)
    else:
        h, w = _working_dims(height, width, int(working_size))
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
    predicted = ((output.clamp(-1, 1) + 1) * 127.5).round_().to(torch.uint8)
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
    from :func:`~dmfn_lightning.hd.crop_windows` (disjoint, each holding its holes whole). A window whose longer
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
# images and masks


def _to_rgb(img: Image.Image) -> Image.Image:
    # The data layer's conversion (alpha on white, 16-bit rescaled, CMYK, palette, grayscale), so a photo is
    # decoded identically for training, evaluation and inpainting.
    from dmfn_lightning.data.datasets import to_rgb as data_to_rgb

    return data_to_rgb(img)


def _describe(source: Any) -> str:
    if isinstance(source, str | os.PathLike):
        return repr(str(source))
    if isinstance(source, Image.Image):
        return f"<{source.mode} image {source.width}x{source.height}>"
    shape = tuple(getattr(source, "shape", ()))
    return f"<{type(source).__name__} {shape}>"


def _image_array(source: np.ndarray | Tensor) -> np.ndarray:
    """uint8 ``[H, W]`` or ``[H, W, C]`` from an image array or tensor; :class:`InpaintError` when unusable."""
    is_tensor = isinstance(source, Tensor)
    if is_tensor:
        source = source.detach().cpu()
        if source.dtype in (torch.bfloat16, torch.float16):
            source = source.float()
        source = source.numpy()
    arr, shape = np.asarray(source), np.asarray(source).shape
    what = f"{'a tensor' if is_tensor else 'an array'} of shape {tuple(shape)} and dtype {arr.dtype}"
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3:
        first, last = arr.shape[0] in (1, 3, 4), arr.shape[-1] in (1, 3, 4)
        # Tensors are channels-first by convention (torchvision), arrays channels-last (PIL, OpenCV).
        if first and (is_tensor or not last):
            arr = np.moveaxis(arr, 0, -1)
        elif not last:
            arr = None
        if arr is not None and arr.shape[-1] == 1:
            arr = arr[..., 0]
    if arr is None or arr.ndim not in (2, 3):
        raise InpaintError(f"cannot use {what} as an image: expected [H, W], [H, W, C] or [C, H, W], C = 1, 3, 4")
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise InpaintError(f"cannot use {what} as an image: it has NaN or infinite values")
        low, high = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        if low < 0 or high > 255:
            raise InpaintError(
                f"cannot use {what} as an image: float values must lie in [0, 1] (or [0, 255]), got "
                f"{low:g} .. {high:g}" + (" (for an image in [-1, 1], pass (x + 1) / 2)" if low >= -1 else "")
            )
        scale = 255.0 if high <= 1.0 else 1.0
        return np.clip(np.round(arr.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        low, high = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if low < 0 or high > 65535:
            raise InpaintError(f"cannot use {what} as an image: integer values must lie in 0 .. 255 or 0 .. 65535")
        if high > 255:  # 16-bit data, rescaled (not clipped) like 16-bit files
            return np.round(arr.astype(np.float64) * (255.0 / 65535.0)).astype(np.uint8)
        return arr.astype(np.uint8)
    raise InpaintError(f"cannot use {what} as an image")


def load_image(source: ImageInput) -> Image.Image:
    """Decode ``source`` (path, PIL image, array or tensor) to an 8-bit RGB PIL image.

    RGBA/LA/transparent palette images are composited on white; CMYK, palette, grayscale and 16/32-bit images are
    converted (16-bit rescaled, not clipped); the EXIF orientation is applied. Arrays are ``[H, W]`` or
    ``[H, W, C]``, tensors ``[C, H, W]`` (or ``[1, C, H, W]``, or ``[H, W, C]`` when that is unambiguous), with
    C = 1, 3 or 4 and values uint8, 16-bit, bool, or float in [0, 1] (torchvision's convention). Raises
    :class:`InpaintError` naming the file when it cannot be read.
    """
    if isinstance(source, np.ndarray | Tensor):
        arr = _image_array(source)
        try:
            source = Image.fromarray(np.ascontiguousarray(arr))
        except (TypeError, ValueError) as err:
            raise InpaintError(f"cannot use an array of shape {arr.shape} as an image: {err}") from err
    if isinstance(source, Image.Image):
        img = ImageOps.exif_transpose(source)
        rgb = _to_rgb(img)
        return rgb.copy() if rgb is source else rgb
    if not isinstance(source, str | os.PathLike):
        raise InpaintError(
            f"cannot use a {type(source).__name__} as an image: give a path, a PIL image, a numpy array or a "
            "torch.Tensor"
        )
    path = Path(source).expanduser()
    if not path.is_file():
        raise InpaintError(f"image {str(path)!r} does not exist" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        with Image.open(path) as img:
            img.load()
            return _to_rgb(ImageOps.exif_transpose(img))
    except _DECODE_ERRORS as err:
        raise InpaintError(f"{path}: cannot decode image ({type(err).__name__}: {err})") from err


def load_mask(source: MaskInput, size: tuple[int, int], resize: bool = False) -> np.ndarray:
    """Read a hole mask as a bool array ``[H, W]`` (True = hole) for an image of ``size = (width, height)``.

    ``source`` is a path, a PIL image, an array or a tensor (bool, 0/1, 8/16-bit, float in [0, 1]; ``[H, W]``,
    ``[H, W, C]``, ``[C, H, W]``, ``[1, C, H, W]``). Which pixels are holes is :mod:`dmfn_lightning.holes`'s rule:
    a pixel whose brightest colour channel is at least 50 % of full scale (:data:`HOLE_THRESHOLD`; 1 in a 0/1
    mask) is a hole, so white and coloured strokes on black both work and soft masks are cut at 0.5; on a
    layer with transparency the painted (non-zero alpha) pixels are. A mask of another size raises
    :class:`InpaintError` naming both sizes, unless ``resize`` is true: then it is resized with nearest neighbour
    (no new grey values, no grown holes).
    """
    width, height = (int(v) for v in size)
    try:
        if isinstance(source, np.ndarray | Tensor):
            hole = hole_from_array(source)
        elif isinstance(source, Image.Image):
            hole = hole_from_image(source)
        elif isinstance(source, str | os.PathLike):
            path = Path(source).expanduser()
            if not path.is_file():
                raise InpaintError(
                    f"mask {str(path)!r} does not exist" + (" (it is a folder)" if path.is_dir() else "")
                )
            try:
                with Image.open(path) as img:
                    img.load()
                    hole = hole_from_image(img)
            except _DECODE_ERRORS as err:
                raise InpaintError(f"{path}: cannot decode mask image ({type(err).__name__}: {err})") from err
        else:
            raise InpaintError(
                f"cannot use a {type(source).__name__} as a mask: give a path, a PIL image, a numpy array or a "
                "torch.Tensor"
            )
    except ValueError as err:
        if isinstance(err, InpaintError):
            raise
        raise InpaintError(f"mask {_describe(source)}: {err}") from err
    if hole.shape != (height, width):
        if not resize:
            raise InpaintError(
                f"mask {_describe(source)} is {hole.shape[1]}x{hole.shape[0]} but its image is {width}x{height} "
                "(width x height). Give a mask of the image's size, or pass --resize-mask (resize=True) to resize "
                "it with nearest neighbour."
            )
        resized = Image.fromarray(hole.astype(np.uint8) * 255).resize((width, height), Image.NEAREST)
        hole = np.asarray(resized) >= 128
    return np.ascontiguousarray(hole, dtype=bool)


def generate_mask(kind: str, width: int, height: int, seed: int = 0) -> np.ndarray:
    """A hole of type ``kind`` (``center``, ``random_box`` or ``free_form``) for a ``width x height`` image.

    Built from ``conf/mask/<kind>.yaml`` with the data layer's generators (the same parameters as training and
    evaluation: Table 1's centred half-size box, the released random box, DeepFill v2 free-form strokes), drawn
    from ``numpy.random.default_rng(seed)``. Returns a bool array ``[H, W]``.
    """
    if kind not in MASK_KINDS:
        raise InpaintError(f"unknown mask type {kind!r}; choose one of {', '.join(MASK_KINDS)}")
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from dmfn_lightning.config import config_dir

    generator = instantiate(OmegaConf.load(config_dir() / "mask" / f"{kind}.yaml"))
    try:
        mask, _ = generator(int(height), int(width), np.random.default_rng(int(seed)))
    except (RuntimeError, ValueError) as err:
        raise InpaintError(f"cannot generate a {kind} mask for a {width}x{height} image: {err}") from err
    hole = mask[0].numpy() > 0.5
    if not hole.any():
        # e.g. random_box on a 3-pixel-high image: its random shrink removes the whole 1-pixel box.
        raise InpaintError(
            f"the generated {kind} mask is empty for a {width}x{height} image (the image is too small or too "
            "thin for it); use another --mask-type (center, free_form) or give a mask file"
        )
    return hole


# ---------------------------------------------------------------------------------------------------------------
# public entry points


def _as_rgb_array(image: ImageInput) -> np.ndarray:
    # Always through load_image: a PIL image straight from Image.open still carries its EXIF orientation, and
    # the mask is drawn on the image as displayed.
    return np.asarray(load_image(image), dtype=np.uint8)


def resolve_strategy(strategy: str | None, working_size: int | None = None) -> str:
    """The strategy to use: ``strategy`` checked against :data:`STRATEGIES`, or, for ``None``, today's default
    (``resize`` with a ``working_size``, else ``full``). ``full`` with a ``working_size`` is an
    :class:`InpaintError` (one of them is not what the caller meant)."""
    if strategy is None:
        return "full" if working_size is None else "resize"
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise InpaintError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if strategy == "full" and working_size is not None:
        raise InpaintError(
            f"strategy 'full' processes the image at its own resolution, but a working size ({working_size}) was "
            "given too; use strategy 'resize' or 'crop' with it, or drop the working size"
        )
    return strategy


def _check_crop_margin(crop_margin: Any) -> int:
    # bool is an int; numpy integers are fine (e.g. from a slider or an array of settings).
    if isinstance(crop_margin, bool) or not isinstance(crop_margin, int | np.integer) or crop_margin < 0:
        raise InpaintError(f"crop_margin must be a whole number of pixels >= 0, got {crop_margin!r}")
    return int(crop_margin)


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
    window, size = max(sized, key=lambda ws: math.prod(_processed_dims(ws[0].height, ws[0].width, ws[1])))
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
    crop_margin: int = DEFAULT_CROP_MARGIN,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    memory_check: bool = True,
) -> list[Image.Image]:
    """Inpaint several images of the same size in one forward pass (one per window for ``crop``); see
    :func:`inpaint`."""
    strategy = resolve_strategy(strategy, working_size)
    crop_margin = _check_crop_margin(crop_margin)
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
    if working_size is not None and int(working_size) < _MIN_SIDE:
        raise InpaintError(f"working_size must be at least {_MIN_SIDE}, got {working_size}")
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
        generator = _prepare_generator(generator, target)
        image_u8 = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).to(target)
        hole_t = torch.from_numpy(np.stack(holes))[:, None].to(target)
        with torch.inference_mode():
            if strategy == "crop":
                result = inpaint_windows(generator, image_u8, hole_t, windows, working_size, precision)
            else:
                result = inpaint_tensor(generator, image_u8, hole_t, working_size, precision)
    except (RuntimeError, MemoryError) as err:
        if not _is_out_of_memory(err):
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
    crop_margin: int = DEFAULT_CROP_MARGIN,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    memory_check: bool = True,
) -> Image.Image:
    """Fill the holes of ``image`` (any size) and return an RGB PIL image of the same size.

    Args:
        generator: a :class:`~dmfn_lightning.models.DMFNGenerator` (or a module with the same 4-channel
            interface, e.g. a TorchScript export); moved to ``device`` and put in eval mode.
        image: PIL image, path, uint8/float array or tensor (converted with :func:`load_image`).
        mask: the holes, of the image's size: a bool array ``[H, W]`` (True = hole; see :func:`load_mask`,
            :func:`generate_mask`), or anything :func:`load_mask` reads (path, PIL image, 0/1, 8-bit or float
            array or tensor), with the same rule: a soft mask is a hole where it is at least 0.5.
        strategy: what the generator sees (:mod:`dmfn_lightning.hd`): ``"full"`` the whole image at its
            resolution (padded to a multiple of 4, cropped back); ``"resize"`` the whole image at the
            resolution whose longer side is ``working_size`` (sides multiples of 4, aspect kept; default the
            model's training size, :func:`~dmfn_lightning.hd.training_size`), the prediction upsampled
            (bicubic) into the hole; ``"crop"`` a window around each connected hole (``crop_margin`` pixels of
            context, at least the training size per side, overlapping windows merged) at the image's
            resolution, a window larger than ``working_size`` (when given) processed at ``working_size``.
            ``None``: ``"resize"`` when ``working_size`` is given, else ``"full"``.
        working_size: the longer side of the processing resolution for ``"resize"``, the largest window
            processed at the image's resolution for ``"crop"``; not allowed with ``"full"``.
        crop_margin: pixels of context added around each hole's bounding box by ``"crop"`` (default 128).
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
        precision: ``fp32``, ``bf16`` or ``fp16`` (autocast; the compositing stays exact).
        memory_check: refuse, with :class:`InpaintMemoryError`, an image whose estimated memory need exceeds
            what the device has free (:func:`check_memory`).

    Known pixels are returned bit-identical; an all-zero mask returns the input without running the network.
    An unknown ``strategy``, ``"full"`` with a ``working_size``, or a negative ``crop_margin`` raise
    :class:`InpaintError`. Raises :class:`InpaintMemoryError` when the image is too large for the device and
    :class:`NonFiniteOutputError` when the generator returns NaN or infinite values in the hole.
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


# ---------------------------------------------------------------------------------------------------------------
# output locations


def _probe_folder(folder: Path, option: str) -> None:
    # os.access() is not enough: it says yes to root on a read-only mount, and to anyone on some network file
    # systems; creating (and removing) a file is the real test.
    try:
        fd, probe = tempfile.mkstemp(prefix=".dmfn_write_test_", dir=folder)
    except OSError as err:
        raise OutputPathError(f"{option} {str(folder)!r} is not writable ({err.strerror or err})") from err
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def check_output_folder(folder: str | os.PathLike, option: str = "--output") -> Path:
    """Check, before any work, that ``folder`` is (or can be created as) a writable folder; returns it.

    Raises :class:`OutputPathError` with a one-line reason when ``folder`` (or one of its parents) is an existing
    file, or when the folder, or the nearest existing parent it would be created in, is not writable. Nothing is
    created.
    """
    path = Path(folder).expanduser()
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{option} {str(path)!r} is an existing file; expected a folder")
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise OutputPathError(f"{option} {str(path)!r} cannot be created: {str(existing)!r} is a file, not a folder")
    _probe_folder(existing, option if existing == path else f"{option} {str(path)!r}: its parent")
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_png(image: Image.Image, path: str | os.PathLike) -> Path:
    """Save ``image`` as PNG at ``path`` through a temporary file and a rename, so an interrupted run never
    leaves a truncated PNG; raises :class:`OutputPathError` naming the file when it cannot be written."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                image.save(f, format="PNG")
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the PNG the usual permissions
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as err:
        raise OutputPathError(f"cannot write {path}: {err.strerror or err}") from err
    return path
