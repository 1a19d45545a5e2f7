"""SSIM under the three named conventions papers use (Gaussian padded, Gaussian cropped, uniform 7x7).

SSIM (Wang et al., IEEE TIP 2004, eq. 13) of two windows ``x``, ``y``::

    SSIM = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2))

with ``C1 = (K1 L)^2``, ``C2 = (K2 L)^2``, K1 0.01, K2 0.03, L = 255, computed at every window position on RGB and
averaged over channels and positions. The conventions differ in the window, the covariance estimator and the border
(:data:`SSIM_CONVENTIONS`; why they matter is in :mod:`dmfn_lightning.metrics.suite`):

* ``full``: Gaussian window 11, sigma 1.5, population covariance, reflect-padded by 5 px, whole map averaged
  (torchmetrics' ``structural_similarity_index_measure``).
* ``cropped``: the same window, only positions where it fits inside the image (scikit-image with
  ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``).
* ``uniform7``: uniform 7x7 window, sample covariance, 3 px border cropped (scikit-image's defaults).

Images smaller than a convention's window are refused with a :class:`ValueError`, as scikit-image does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from dmfn_lightning.metrics.pixel import DATA_RANGE, metric_dtype

__all__ = ["SSIM_CONVENTIONS", "SSIMConvention", "ssim_all", "ssim_per_image"]

_K1, _K2 = 0.01, 0.03


@dataclass(frozen=True)
class SSIMConvention:
    """One way of turning the SSIM map into a number: window, covariance estimator and border handling."""

    name: str
    gaussian: bool  # Gaussian window of `sigma` (else uniform)
    size: int  # window side in pixels (odd)
    sigma: float  # Gaussian only
    sample_covariance: bool  # N / (N - 1) correction of the windowed (co)variances
    crop: bool  # True: average only where the window fits; False: reflect-pad by size // 2, average the whole map
    description: str

    @property
    def min_side(self) -> int:
        """The smallest image side this convention is defined for."""
        # torch's (and torchmetrics') reflect padding needs a side larger than the pad.
        return self.size if self.crop else self.size // 2 + 1


SSIM_CONVENTIONS: dict[str, SSIMConvention] = {
    "full": SSIMConvention(
        "full",
        gaussian=True,
        size=11,
        sigma=1.5,
        sample_covariance=False,
        crop=False,
        description="Gaussian window 11, sigma 1.5, population covariance, K1 0.01, K2 0.03, data_range=255, on "
        "RGB; image reflect-padded by 5 px and the whole HxW SSIM map averaged (torchmetrics' "
        "structural_similarity_index_measure); per image then mean over images",
    ),
    "cropped": SSIMConvention(
        "cropped",
        gaussian=True,
        size=11,
        sigma=1.5,
        sample_covariance=False,
        crop=True,
        description="Gaussian window 11, sigma 1.5, population covariance, K1 0.01, K2 0.03, data_range=255, on "
        "RGB; 5 px border cropped before averaging (scikit-image structural_similarity(gaussian_weights=True, "
        "sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=2)); per image then mean over images",
    ),
    "uniform7": SSIMConvention(
        "uniform7",
        gaussian=False,
        size=7,
        sigma=0.0,
        sample_covariance=True,
        crop=True,
        description="uniform 7x7 window, sample covariance, K1 0.01, K2 0.03, data_range=255, on RGB; 3 px border "
        "cropped (scikit-image structural_similarity defaults with data_range=255, channel_axis=2; the old "
        "compare_ssim(multichannel=True)); per image then mean over images",
    ),
}


def _window_1d(conv: SSIMConvention, dtype: torch.dtype, device: torch.device) -> Tensor:
    radius = conv.size // 2
    if conv.gaussian:
        # scipy's gaussian_filter (truncate 3.5, radius 5 for sigma 1.5) and torchmetrics' kernel: the same weights.
        x = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
        weights = torch.exp(-0.5 * (x / conv.sigma) ** 2)
    else:
        weights = torch.ones(conv.size, dtype=dtype, device=device)
    return weights / weights.sum()


def _ssim_maps(pred: Tensor, target: Tensor, conv: SSIMConvention) -> Tensor:
    """The SSIM map ``[B, C, h, w]``: ``h = H`` for the padded convention, ``H - size + 1`` for cropped ones."""
    if not conv.crop:
        pad = conv.size // 2
        pred = F.pad(pred, (pad, pad, pad, pad), mode="reflect")
        target = F.pad(target, (pad, pad, pad, pad), mode="reflect")
    b, c, h, w = pred.shape
    moments = torch.stack((pred, target, pred * pred, target * target, pred * target), dim=1)
    window = _window_1d(conv, pred.dtype, pred.device)
    # Separable window: a row pass then a column pass over every (moment, image, channel) plane at once.
    planes = moments.reshape(-1, 1, h, w)
    planes = F.conv2d(planes, window.view(1, 1, 1, -1))
    planes = F.conv2d(planes, window.view(1, 1, -1, 1))
    mu_x, mu_y, e_xx, e_yy, e_xy = planes.reshape(b, 5, c, *planes.shape[-2:]).unbind(dim=1)
    n = conv.size * conv.size
    norm = n / (n - 1) if conv.sample_covariance else 1.0
    # Windowed variances are non-negative; clamping only removes rounding noise (torchmetrics does the same).
    var_x = (norm * (e_xx - mu_x * mu_x)).clamp(min=0.0)
    var_y = (norm * (e_yy - mu_y * mu_y)).clamp(min=0.0)
    cov_xy = norm * (e_xy - mu_x * mu_y)
    c1, c2 = (_K1 * DATA_RANGE) ** 2, (_K2 * DATA_RANGE) ** 2
    return ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / ((mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2))


def ssim_per_image(pred255: Tensor, target255: Tensor, convention: str = "full") -> Tensor:
    """Per-image SSIM ``[B]`` of [0, 255] images ``[B, C, H, W]`` under one of :data:`SSIM_CONVENTIONS`.

    Batched on the images' device (conv2d with the separable window). Raises :class:`ValueError` for images
    with a side below the convention's :attr:`SSIMConvention.min_side`, as scikit-image does.
    """
    if convention not in SSIM_CONVENTIONS:
        raise ValueError(f"SSIM convention must be one of {', '.join(SSIM_CONVENTIONS)}, got {convention!r}")
    conv = SSIM_CONVENTIONS[convention]
    height, width = pred255.shape[-2:]
    if min(height, width) < conv.min_side:
        why = "its window" if conv.crop else "its reflect padding of 5 px"
        raise ValueError(
            f"SSIM convention {convention!r} needs images of at least {conv.min_side}x{conv.min_side} pixels "
            f"({why}), got {height}x{width}"
        )
    dtype = metric_dtype(pred255.device)
    return _ssim_maps(pred255.to(dtype), target255.to(dtype), conv).mean(dim=(1, 2, 3))


def ssim_all(pred255: Tensor, target255: Tensor) -> dict[str, Tensor]:
    """``ssim_<convention>`` for every convention, NaN where the images are too small for it."""
    height, width = pred255.shape[-2:]
    dtype = metric_dtype(pred255.device)
    pred, target = pred255.to(dtype), target255.to(dtype)
    nan = torch.full(pred.shape[:1], torch.nan, dtype=dtype, device=pred.device)
    out: dict[str, Tensor] = {}
    full, cropped = SSIM_CONVENTIONS["full"], SSIM_CONVENTIONS["cropped"]
    if min(height, width) >= full.min_side:
        # One pass serves both Gaussian conventions: away from the border the padded map only sees real pixels,
        # so its interior is exactly the cropped convention's map.
        ssim_map = _ssim_maps(pred, target, full)
        out["ssim_full"] = ssim_map.mean(dim=(1, 2, 3))
        if min(height, width) >= cropped.min_side:
            border = cropped.size // 2
            out["ssim_cropped"] = ssim_map[..., border:-border, border:-border].mean(dim=(1, 2, 3))
    uniform = SSIM_CONVENTIONS["uniform7"]
    if min(height, width) >= uniform.min_side:
        out["ssim_uniform7"] = _ssim_maps(pred, target, uniform).mean(dim=(1, 2, 3))
    return {f"ssim_{name}": out.get(f"ssim_{name}", nan) for name in SSIM_CONVENTIONS}
