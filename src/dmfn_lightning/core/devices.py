"""Devices, precision and memory: where and how the generator runs, and whether an image fits before it runs.

:func:`resolve_device` turns ``auto``/``cpu``/``cuda:N``/``mps`` into a :class:`torch.device` (an accelerator that
is not there is refused in one line), :func:`autocast` gives the
``fp32``/``bf16``/``fp16`` context (:data:`PRECISIONS`). The memory guard estimates a forward pass's peak from
the processed size (:func:`estimate_inference_bytes`), compares it with what the device has free
(:func:`available_memory`, a container's cgroup limit included) and refuses too large an image with a hint to
use a working size (:func:`check_memory`); :func:`is_out_of_memory` recognises an allocation failure that still
happens.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import torch
from torch import nn

from dmfn_lightning.core.errors import InpaintError, InpaintMemoryError
from dmfn_lightning.core.sizes import processed_dims

__all__ = [
    "DEVICE_CHOICES",
    "PRECISIONS",
    "autocast",
    "available_memory",
    "check_memory",
    "estimate_inference_bytes",
    "is_out_of_memory",
    "prepare_generator",
    "resolve_device",
]

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


# ---------------------------------------------------------------------------------------------------------------
# devices and precision


DEVICE_CHOICES = "cpu, cuda, cuda:N, mps or auto"
# The accelerator each device type stands for, in messages.
_ACCELERATORS = {"cuda": "CUDA", "mps": "MPS (Apple silicon)", "xpu": "XPU"}


def _backend(device_type: str) -> tuple[bool, int | None] | None:
    """(available, device count or ``None``) of an accelerator type, ``None`` for a type this library cannot
    check (``meta``, ``vulkan``, ...: refused)."""
    if device_type == "mps":
        mps = getattr(torch.backends, "mps", None)
        return bool(mps is not None and mps.is_available()), 1
    module = getattr(torch, device_type, None)
    is_available = getattr(module, "is_available", None)
    if not callable(is_available):
        return None
    count = getattr(module, "device_count", None)
    available = bool(is_available())
    return available, int(count()) if available and callable(count) else None


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU. An accelerator that is not there (``cuda`` without a GPU,
    ``mps`` off Apple silicon, ``cuda:3`` on a one-GPU machine) or a device type that cannot run the generator is
    an :class:`InpaintError` naming it, before anything is moved there."""
    if isinstance(device, torch.device):
        return device
    name = str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(name)
    except RuntimeError as err:
        raise InpaintError(f"unknown device {device!r}; use {DEVICE_CHOICES}") from err
    if resolved.type == "cpu":
        return resolved
    backend = _backend(resolved.type)
    if backend is None:
        raise InpaintError(f"device {device!r} cannot run the generator; use {DEVICE_CHOICES}")
    available, count = backend
    label = _ACCELERATORS.get(resolved.type, resolved.type)
    if not available:
        raise InpaintError(f"device {device!r} requested but {label} is not available here; use cpu or auto")
    if resolved.index is not None and count is not None and resolved.index >= count:
        raise InpaintError(
            f"device {device!r} requested but this machine has {count} {label} device(s), numbered from 0; "
            f"use {resolved.type}:0 .. {resolved.type}:{count - 1}, cpu or auto"
        )
    return resolved


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The autocast context for ``precision`` in ``fp32`` (none), ``bf16`` or ``fp16``."""
    if precision not in PRECISIONS:
        raise InpaintError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def prepare_generator(generator: nn.Module, device: torch.device) -> nn.Module:
    """``generator`` on ``device`` and in eval mode."""
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
    h, w = processed_dims(height, width, working_size)
    base_channels = int(getattr(generator, "config", {}).get("base_channels", 64))
    need = estimate_inference_bytes(h, w, batch, base_channels)
    free = available_memory(device)  # a module-global look-up, so tests can patch devices.available_memory
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


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is an allocation failure (CPU or CUDA) rather than a bug."""
    if isinstance(err, MemoryError | torch.OutOfMemoryError):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and (
        "out of memory" in text or "not enough memory" in text or "can't allocate memory" in text
    )
