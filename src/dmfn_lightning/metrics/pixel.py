"""8-bit quantisation and the pixel-wise metrics of Table 1: PSNR (per image and dataset-level) and L1.

Every metric sees the pixels an 8-bit PNG would hold: :func:`quantize` maps [-1, 1] to integer levels in [0, 255].
PSNR is ``10 log10(255^2 / MSE)`` with the MSE over all pixels and channels of one image; an identical pair
(infinite PSNR) is capped at :data:`PSNR_CAP` dB and flagged. L1 is ``mean |out - gt|`` on [0, 1], over the whole
image and over the hole only. The conventions are described in :mod:`dmfn_lightning.metrics.suite`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dmfn_lightning.core.pixels import to_levels

__all__ = [
    "DATA_RANGE",
    "PSNR_CAP",
    "l1_per_image",
    "metric_dtype",
    "mse_per_image",
    "psnr_from_mse",
    "psnr_per_image",
    "quantize",
]

PSNR_CAP = 100.0
# The peak value of 8-bit images, PSNR's and SSIM's data_range.
DATA_RANGE = 255.0


def metric_dtype(device: torch.device) -> torch.dtype:
    """float64 where the device has it: variances and squared errors of 255-scale values lose digits in float32."""
    # MPS has no float64.
    return torch.float32 if device.type == "mps" else torch.float64


def quantize(x: Tensor) -> Tensor:
    """[-1, 1] images -> float tensor of integer levels in [0, 255] (what an 8-bit PNG stores)."""
    return to_levels(x)


def psnr_from_mse(mse: Tensor, cap: float = PSNR_CAP) -> tuple[Tensor, Tensor]:
    """PSNR in dB of [0, 255] images from their mean squared error; returns ``(psnr, capped)``.

    ``capped`` flags values that were infinite (zero error) or above ``cap``; their value is ``cap``.
    """
    psnr = 10.0 * torch.log10(DATA_RANGE**2 / mse)
    capped = ~torch.isfinite(psnr) | (psnr > cap)
    return torch.where(capped, torch.full_like(psnr, cap), psnr), capped


def mse_per_image(pred255: Tensor, target255: Tensor) -> Tensor:
    """Mean squared error per image of [0, 255] images ``[B, C, H, W]`` over all pixels and channels."""
    dtype = metric_dtype(pred255.device)
    return (pred255.to(dtype) - target255.to(dtype)).square().mean(dim=(1, 2, 3))


def psnr_per_image(pred255: Tensor, target255: Tensor, cap: float = PSNR_CAP) -> tuple[Tensor, Tensor]:
    """Per-image PSNR in dB of [0, 255] images ``[B, C, H, W]``; returns ``(psnr, capped)``.

    ``capped`` flags images whose PSNR was infinite (identical images) or above ``cap``; their value is ``cap``.
    """
    return psnr_from_mse(mse_per_image(pred255, target255), cap)


def l1_per_image(pred01: Tensor, target01: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """``(l1, l1_hole)`` per image for images in [0, 1] and masks ``[B, 1, H, W]`` (1 = hole).

    ``l1_hole`` is NaN for images without a hole.
    """
    diff = (pred01 - target01).abs()
    l1 = diff.mean(dim=(1, 2, 3))
    hole = (mask > 0.5).to(diff.dtype)
    hole_pixels = hole.sum(dim=(1, 2, 3)) * diff.shape[1]
    hole_sum = (diff * hole).sum(dim=(1, 2, 3))
    l1_hole = torch.where(hole_pixels > 0, hole_sum / hole_pixels.clamp(min=1), torch.full_like(hole_sum, torch.nan))
    return l1, l1_hole
