"""Inpainting your own photos: the library API behind ``python -m dmfn_lightning.inpaint`` and the web app.

Any image size works: the generator (Hui et al., "Image Fine-grained Inpainting", arXiv:2002.02609) needs sides
divisible by 4, so the 4-channel input is padded (reflect; replicate when the image is too small to reflect), run
and cropped back. With ``working_size`` the image is processed at a smaller (or larger) resolution whose longer side
is ``working_size`` and the prediction is upsampled; the known pixels always come from the original file, so they
are returned bit-identical whatever the precision or resolution (composited in 8-bit, eq. 1's ``I_out``).

Masks: white (or any non-zero value of a 0/1 mask) = hole, as in the training data (DESIGN.md section 2).

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
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor, nn

from dmfn_lightning.errors import DMFNError

__all__ = [
    "MASK_KINDS",
    "PRECISIONS",
    "InpaintError",
    "autocast",
    "generate_mask",
    "inpaint",
    "inpaint_batch",
    "inpaint_tensor",
    "load_image",
    "load_mask",
    "resolve_device",
    "run_generator",
]

ImageInput = str | os.PathLike | Image.Image | np.ndarray
MaskInput = str | os.PathLike | Image.Image | np.ndarray | Tensor

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
MASK_KINDS = ("center", "random_box", "free_form")
_MULTIPLE = 4  # two stride-2 convolutions in the encoder
_MIN_SIDE = 8  # InstanceNorm needs more than one spatial element at H/4 x W/4
_DECODE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError)


class InpaintError(DMFNError, ValueError):
    """Bad input for inpainting (unreadable file, mask of the wrong size, unknown option); says which and why."""


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
    predicted = ((output.clamp(-1, 1) + 1) * 127.5).round_().to(torch.uint8)
    return torch.where(hole, predicted, image_u8)


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


def load_image(source: ImageInput) -> Image.Image:
    """Decode ``source`` (path, PIL image or uint8 array) to an 8-bit RGB PIL image.

    RGBA/LA/transparent palette images are composited on white; CMYK, palette, grayscale and 16/32-bit images are
    converted (16-bit rescaled, not clipped); the EXIF orientation is applied. Raises :class:`InpaintError` naming
    the file when it cannot be read.
    """
    if isinstance(source, np.ndarray):
        try:
            source = Image.fromarray(source)
        except (TypeError, ValueError) as err:
            raise InpaintError(
                f"cannot use an array of shape {source.shape} and dtype {source.dtype} as an image"
            ) from err
    if isinstance(source, Image.Image):
        img = ImageOps.exif_transpose(source)
        rgb = _to_rgb(img)
        return rgb.copy() if rgb is source else rgb
    path = Path(source).expanduser()
    if not path.is_file():
        raise InpaintError(f"image {str(path)!r} does not exist" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        with Image.open(path) as img:
            img.load()
            return _to_rgb(ImageOps.exif_transpose(img))
    except _DECODE_ERRORS as err:
        raise InpaintError(f"{path}: cannot decode image ({type(err).__name__}: {err})") from err


def _gray_to_hole(gray: np.ndarray) -> np.ndarray:
    # 0/1-valued masks (saved straight from numpy) mark holes with 1; 8-bit masks with white (>= 128, which
    # also ignores JPEG ringing around black/white edges).
    if gray.size and int(gray.max()) <= 1:
        return gray >= 1
    return gray >= 128


def _image_to_hole(img: Image.Image) -> np.ndarray:
    img = ImageOps.exif_transpose(img)
    if img.mode == "1":
        return np.asarray(img, dtype=bool)
    has_alpha = img.mode in ("RGBA", "LA", "La", "RGBa", "PA") or "transparency" in img.info
    if not has_alpha:
        if img.mode not in ("L", "RGB"):
            img = _to_rgb(img)
        return _gray_to_hole(np.asarray(img.convert("L")))
    rgba = np.asarray(img.convert("RGBA"))
    gray = np.asarray(Image.fromarray(rgba[..., :3]).convert("L"))
    alpha = rgba[..., 3]
    if alpha.min() == 255:
        return _gray_to_hole(gray)
    painted = alpha >= 128
    colours = rgba[..., :3][painted]
    if colours.size == 0 or (colours == colours[0]).all():
        # A single-colour brush on a transparent layer (what image editors and sketch widgets export): the
        # painted pixels are the hole whatever the brush colour.
        return painted
    return painted & _gray_to_hole(gray)


def _array_to_hole(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[0] == 1:  # [1, H, W], the data layer's mask layout
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise InpaintError(f"a mask array must be [H, W], [H, W, 1|3|4] or [1, H, W]; got shape {arr.shape}")
    if arr.dtype == bool:
        return arr if arr.ndim == 2 else arr[..., :3].any(axis=-1)
    if np.issubdtype(arr.dtype, np.floating):
        arr = np.nan_to_num(arr)
        top = 1.0 if arr.size == 0 or float(arr.max()) <= 1.0 else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        top = int(arr.max()) if arr.size else 0
        if top > 255:
            arr = (arr.astype(np.float64) / 65535.0 * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
        else:
            arr = arr.clip(0, 255).astype(np.uint8)
    return _image_to_hole(Image.fromarray(np.ascontiguousarray(arr)))


def load_mask(source: MaskInput, size: tuple[int, int], resize: bool = False) -> np.ndarray:
    """Read a hole mask as a bool array ``[H, W]`` (True = hole) for an image of ``size = (width, height)``.

    ``source`` is a path, a PIL image or an array (bool, 0/1, 8-bit, float in [0, 1], ``[H, W]``/``[H, W, C]``/
    ``[1, H, W]``). White (>= 128) is a hole; in 0/1 masks 1 is a hole. A mask with transparency is read as a
    painted layer: if all painted (opaque) pixels have one colour, they are the hole, otherwise the opaque white
    pixels are. A mask of another size raises :class:`InpaintError` naming both sizes, unless ``resize`` is true:
    then it is resized with nearest neighbour (no new grey values, no grown holes).
    """
    width, height = (int(v) for v in size)
    if isinstance(source, Tensor):
        source = source.detach().cpu().numpy()
    if isinstance(source, np.ndarray):
        hole = _array_to_hole(source)
    elif isinstance(source, Image.Image):
        hole = _image_to_hole(source)
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise InpaintError(f"mask {str(path)!r} does not exist" + (" (it is a folder)" if path.is_dir() else ""))
        try:
            with Image.open(path) as img:
                img.load()
                hole = _image_to_hole(img)
        except _DECODE_ERRORS as err:
            raise InpaintError(f"{path}: cannot decode mask image ({type(err).__name__}: {err})") from err
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
    return mask[0].numpy() > 0.5


# ---------------------------------------------------------------------------------------------------------------
# public entry points


def _as_rgb_array(image: ImageInput) -> np.ndarray:
    # Always through load_image: a PIL image straight from Image.open still carries its EXIF orientation, and
    # the mask is drawn on the image as displayed.
    return np.asarray(load_image(image), dtype=np.uint8)


def inpaint_batch(
    generator: nn.Module,
    images: Sequence[ImageInput],
    masks: Sequence[np.ndarray],
    *,
    working_size: int | None = None,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
) -> list[Image.Image]:
    """Inpaint several images of the same size in one forward pass; see :func:`inpaint`."""
    if len(images) != len(masks):
        raise InpaintError(f"got {len(images)} images but {len(masks)} masks")
    if not images:
        return []
    arrays = [_as_rgb_array(img) for img in images]
    holes = [np.asarray(m, dtype=bool) for m in masks]
    shape = arrays[0].shape[:2]
    for i, (arr, hole) in enumerate(zip(arrays, holes)):
        if arr.shape[:2] != shape:
            raise InpaintError(
                f"inpaint_batch needs images of one size: image {i} is {arr.shape[1]}x{arr.shape[0]}, "
                f"image 0 is {shape[1]}x{shape[0]}"
            )
        if hole.ndim != 2:
            raise InpaintError(f"mask {i} must be a bool array [H, W], got shape {hole.shape} (see load_mask)")
        if hole.shape != arr.shape[:2]:
            raise InpaintError(
                f"mask {i} is {hole.shape[1]}x{hole.shape[0]} but its image is {arr.shape[1]}x{arr.shape[0]} "
                "(width x height); resize it with load_mask(..., resize=True) or --resize-mask"
            )
    if precision not in PRECISIONS:
        raise InpaintError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if not any(h.any() for h in holes):
        return [Image.fromarray(arr.copy(), "RGB") for arr in arrays]  # nothing to fill: skip the network
    target = resolve_device(device)
    generator = _prepare_generator(generator, target)
    image_u8 = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).to(target)
    hole_t = torch.from_numpy(np.stack(holes))[:, None].to(target)
    with torch.inference_mode():
        result = inpaint_tensor(generator, image_u8, hole_t, working_size, precision)
    out = result.permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(np.ascontiguousarray(a), "RGB") for a in out]


def inpaint(
    generator: nn.Module,
    image: ImageInput,
    mask: np.ndarray,
    *,
    working_size: int | None = None,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
) -> Image.Image:
    """Fill the holes of ``image`` (any size) and return an RGB PIL image of the same size.

    Args:
        generator: a :class:`~dmfn_lightning.models.DMFNGenerator` (or a module with the same 4-channel
            interface, e.g. a TorchScript export); moved to ``device`` and put in eval mode.
        image: PIL image, path or uint8 array (converted with :func:`load_image`).
        mask: bool ``[H, W]``, True = hole (see :func:`load_mask`, :func:`generate_mask`).
        working_size: process at the resolution whose longer side is ``working_size`` (sides multiples of 4,
            aspect kept), upsample the prediction (bicubic) and paste the known region back at full resolution.
            ``None`` processes at full resolution (padded to a multiple of 4, cropped back).
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
        precision: ``fp32``, ``bf16`` or ``fp16`` (autocast; the compositing stays exact).

    Known pixels are returned bit-identical; an all-zero mask returns the input without running the network.
    """
    return inpaint_batch(generator, [image], [mask], working_size=working_size, device=device, precision=precision)[0]


def batches_by_size(items: Sequence[Any], sizes: Sequence[tuple[int, int]], batch_size: int) -> Iterator[list[int]]:
    """Indices of ``items`` grouped into batches of at most ``batch_size`` with equal ``sizes`` (input order kept
    within a size)."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, size in enumerate(sizes):
        groups.setdefault(tuple(size), []).append(i)
    for indices in groups.values():
        for start in range(0, len(indices), max(1, batch_size)):
            yield indices[start : start + batch_size]
