"""Image-quality metrics of the paper's Table 1 (LPIPS, PSNR, SSIM) plus L1, each under named conventions.

Papers report SSIM and PSNR under different conventions, and the choice moves SSIM by more than the differences
the paper's tables are about (about 0.02 on a 256 px image with a 128 px hole). So every report carries each
convention under its own name, and :data:`CONVENTIONS` describes them:

* Metrics are computed on the **composited** output (``mask * G(x) + (1 - mask) * image``) against the ground
  truth, both first quantised to 8 bit (``round((x + 1) * 127.5)``), i.e. exactly the pixels a saved PNG holds.
* ``psnr``: per image over all pixels and channels, ``10 log10(255^2 / MSE)``, then averaged over images.
  Identical images (infinite PSNR) are capped at :data:`PSNR_CAP` dB and flagged.
  ``psnr_dataset``: the MSE averaged over all images first, then one PSNR (``mse`` is kept per image for it).
* SSIM (K1 0.01, K2 0.03, data_range 255, on RGB: the mean over channels and positions of the SSIM map), three
  conventions (:data:`SSIM_CONVENTIONS`):

  - ``ssim_full``: Gaussian window 11, sigma 1.5, population covariance; the image is reflect-padded by 5 pixels
    and the whole H x W map is averaged. This is torchmetrics' ``structural_similarity_index_measure``.
  - ``ssim_cropped``: the same window, but only the positions where it fits inside the image are averaged (a
    5-pixel border is cropped). This is scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=255, channel_axis=2)``.
  - ``ssim_uniform7``: uniform 7 x 7 window, sample covariance (``N / (N - 1)``), 3-pixel border cropped:
    scikit-image's defaults (and the old ``compare_ssim(..., multichannel=True)``) with ``data_range=255``.

  ``ssim`` is the headline column, one of the three (``full`` unless chosen otherwise).
  For inpainting the border matters: a centred hole leaves the border known, its SSIM is 1, and averaging it in
  (``full``) raises SSIM against the cropped conventions.
  Images smaller than a convention's window: scikit-image refuses them, and so does :func:`ssim_per_image` (a
  :class:`ValueError` naming the sizes); ``full`` needs a side of at least 6 (torchmetrics' reflect padding of 5),
  ``cropped`` 11, ``uniform7`` 7. :func:`per_image_metrics` reports NaN for a convention whose window does not fit.
* LPIPS (Zhang et al., CVPR 2018): the ``lpips`` package, AlexNet trunk, v0.1 linear calibration, inputs in
  [-1, 1]; lower is better. ``net="vgg"`` selects the VGG16 trunk. Reports name the trunk and the package version.
* L1: ``mean |out - gt|`` on [0, 1], over the whole image and over the hole only (images without a hole do not
  count towards ``l1_hole``).
* FID and KID (optional, :class:`DistributionMetrics`): torchmetrics' ``FrechetInceptionDistance`` and
  ``KernelInceptionDistance`` over the whole test set, composited outputs (fake) against ground truths (real), both
  uint8; one Inception v3 pass per image feeds both. The Inception weights are torch-fidelity's file in torch.hub's
  cache (:data:`INCEPTION_WEIGHTS_FILE`); when it is missing, :func:`inception_feature_extractor` says in one line
  where to put it. KID's random subsets are drawn from a seeded generator, so two evaluations agree.

Backbone weights follow the offline policy of :mod:`dmfn_lightning.weights`: the ImageNet trunk comes from
torchvision's cache or an explicit file, or ``backbone_weights="random"`` (loud warning); a missing file stops
with :class:`~dmfn_lightning.weights.WeightsUnavailableError` naming it. The ``lpips`` package's calibrated linear
layers ship inside the package and are always loaded.

Keeping metric weights out of checkpoints: :class:`LPIPSMetric` holds its network outside the module tree (in a
tuple, so it is not a registered submodule) and forwards ``.to()``/``.cuda()`` to it by overriding ``_apply``;
its ``state_dict()`` is therefore empty wherever the metric is attached, and :class:`InpaintingMetrics`' own states
are torchmetrics states (``persistent=False`` by default). A LightningModule may even register the metric as an
attribute without growing its checkpoints.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import Metric

from dmfn_lightning.errors import FeatureExtractorUnavailableError
from dmfn_lightning.weights import WeightsUnavailableError, resolve_pretrained, warn_random

__all__ = [
    "CONVENTIONS",
    "CONVENTION_NAMES",
    "INCEPTION_WEIGHTS_FILE",
    "INCEPTION_WEIGHTS_URL",
    "LPIPS_NETS",
    "METRIC_NAMES",
    "PSNR_CAP",
    "SSIM_CONVENTIONS",
    "DistributionMetrics",
    "FeatureExtractorUnavailableError",
    "InpaintingMetrics",
    "LPIPSMetric",
    "SSIMConvention",
    "conventions",
    "inception_feature_extractor",
    "inception_weights_path",
    "l1_per_image",
    "lpips_package_version",
    "mse_per_image",
    "per_image_metrics",
    "psnr_from_mse",
    "psnr_per_image",
    "quantize",
    "ssim_per_image",
]

PSNR_CAP = 100.0
# What InpaintingMetrics.compute() returns by default (the Table 1 columns, headline conventions only).
METRIC_NAMES = ("psnr", "ssim", "lpips", "l1", "l1_hole")
# The extra names compute() adds with all_conventions=True (and per_image_metrics always returns).
CONVENTION_NAMES = ("psnr_dataset", "ssim_full", "ssim_cropped", "ssim_uniform7")
_K1, _K2, _DATA_RANGE = 0.01, 0.03, 255.0


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


def conventions(ssim: str = "full") -> dict[str, str]:
    """How each reported number is computed, for reports; ``ssim`` names the headline SSIM convention."""
    if ssim not in SSIM_CONVENTIONS:
        raise ValueError(f"SSIM convention must be one of {', '.join(SSIM_CONVENTIONS)}, got {ssim!r}")
    return {
        "images": "composited output mask*G(x)+(1-mask)*gt vs ground truth, both quantised to uint8 [0, 255] first",
        "psnr": f"per image over all pixels and RGB channels, 10*log10(255^2/MSE), then mean over images; identical "
        f"images capped at {PSNR_CAP:g} dB and flagged (psnr_capped)",
        "psnr_dataset": "MSE per image over all pixels and RGB channels, averaged over all images, then "
        f"10*log10(255^2/mean MSE) (capped at {PSNR_CAP:g} dB)",
        "ssim": f"the headline SSIM: ssim_{ssim} (metrics.ssim={ssim})",
        **{f"ssim_{name}": conv.description for name, conv in SSIM_CONVENTIONS.items()},
        "lpips": "lpips package v0.1 (calibrated linear layers), AlexNet trunk unless stated, inputs in [-1, 1], "
        "per image then mean; lower is better",
        "l1": "mean |out - gt| on [0, 1] over the whole image, per image then mean",
        "l1_hole": "mean |out - gt| on [0, 1] over hole pixels only, per image then mean over images with a hole",
    }


CONVENTIONS: dict[str, str] = conventions("full")


def lpips_package_version() -> str:
    """The installed ``lpips`` package's version (reports record it beside the LPIPS numbers)."""
    try:
        return importlib.metadata.version("lpips")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a dependency of this package
        return "unknown"


# torchvision's ImageNet files for the lpips trunks (the files torchvision itself would download).
_TRUNK_URLS = {
    "alex": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    "vgg": "https://download.pytorch.org/models/vgg16-397923af.pth",
}
LPIPS_NETS = tuple(_TRUNK_URLS)


def _trunk_url(net: str) -> str:
    # Prefer torchvision's own record of the URL; the constants above are the same strings for older versions.
    try:
        from torchvision.models import AlexNet_Weights, VGG16_Weights

        return {"alex": AlexNet_Weights.IMAGENET1K_V1.url, "vgg": VGG16_Weights.IMAGENET1K_V1.url}[net]
    except ImportError:  # pragma: no cover
        return _TRUNK_URLS[net]


# ---------------------------------------------------------------------------------------------------------------
# per-image functions (batched)


def _metric_dtype(device: torch.device) -> torch.dtype:
    # float64 where available: variances and squared errors of 255-scale values lose digits in float32
    # (MPS has no float64).
    return torch.float32 if device.type == "mps" else torch.float64


def quantize(x: Tensor) -> Tensor:
    """[-1, 1] images -> float tensor of integer levels in [0, 255] (what an 8-bit PNG stores)."""
    return ((x.float().clamp(-1.0, 1.0) + 1.0) * 127.5).round_()


def psnr_from_mse(mse: Tensor, cap: float = PSNR_CAP) -> tuple[Tensor, Tensor]:
    """PSNR in dB of [0, 255] images from their mean squared error; returns ``(psnr, capped)``.

    ``capped`` flags values that were infinite (zero error) or above ``cap``; their value is ``cap``.
    """
    psnr = 10.0 * torch.log10(_DATA_RANGE**2 / mse)
    capped = ~torch.isfinite(psnr) | (psnr > cap)
    return torch.where(capped, torch.full_like(psnr, cap), psnr), capped


def mse_per_image(pred255: Tensor, target255: Tensor) -> Tensor:
    """Mean squared error per image of [0, 255] images ``[B, C, H, W]`` over all pixels and channels."""
    dtype = _metric_dtype(pred255.device)
    return (pred255.to(dtype) - target255.to(dtype)).square().mean(dim=(1, 2, 3))


def psnr_per_image(pred255: Tensor, target255: Tensor, cap: float = PSNR_CAP) -> tuple[Tensor, Tensor]:
    """Per-image PSNR in dB of [0, 255] images ``[B, C, H, W]``; returns ``(psnr, capped)``.

    ``capped`` flags images whose PSNR was infinite (identical images) or above ``cap``; their value is ``cap``.
    """
    return psnr_from_mse(mse_per_image(pred255, target255), cap)


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
    c1, c2 = (_K1 * _DATA_RANGE) ** 2, (_K2 * _DATA_RANGE) ** 2
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
    dtype = _metric_dtype(pred255.device)
    return _ssim_maps(pred255.to(dtype), target255.to(dtype), conv).mean(dim=(1, 2, 3))


def _ssim_all(pred255: Tensor, target255: Tensor) -> dict[str, Tensor]:
    """``ssim_<convention>`` for every convention, NaN where the images are too small for it."""
    height, width = pred255.shape[-2:]
    dtype = _metric_dtype(pred255.device)
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


def per_image_metrics(
    output: Tensor, target: Tensor, mask: Tensor, lpips: LPIPSMetric | None = None, ssim: str = "full"
) -> dict[str, Tensor]:
    """All metrics per image for a batch, under every convention (see the module docstring).

    Args:
        output: composited outputs ``[B, 3, H, W]`` in [-1, 1] (quantised to 8 bit here).
        target: ground truths ``[B, 3, H, W]`` in [-1, 1].
        mask: ``[B, 1, H, W]``, 1 = hole.
        lpips: an :class:`LPIPSMetric`, or ``None`` to skip LPIPS.
        ssim: the headline SSIM convention copied into ``ssim``: ``full``, ``cropped`` or ``uniform7``.

    Returns 1-D tensors of length B: ``psnr``, ``psnr_capped`` (bool), ``mse`` (on [0, 255], for the dataset-level
    PSNR), ``ssim``, ``ssim_full``, ``ssim_cropped``, ``ssim_uniform7`` (NaN where the image is smaller than the
    convention allows), ``lpips`` (if given), ``l1``, ``l1_hole`` (NaN without a hole) and ``hole_ratio``.
    """
    if output.shape != target.shape or output.dim() != 4 or output.shape[1] != 3:
        raise ValueError(
            f"expected output and target of the same shape [B, 3, H, W], got {tuple(output.shape)} and "
            f"{tuple(target.shape)}"
        )
    if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[0] != output.shape[0] or mask.shape[2:] != output.shape[2:]:
        raise ValueError(
            f"expected a mask of shape [B, 1, H, W] matching {tuple(output.shape)}, got {tuple(mask.shape)}"
        )
    if ssim not in SSIM_CONVENTIONS:
        raise ValueError(f"SSIM convention must be one of {', '.join(SSIM_CONVENTIONS)}, got {ssim!r}")
    pred255, target255 = quantize(output), quantize(target)
    mse = mse_per_image(pred255, target255)
    psnr, capped = psnr_from_mse(mse)
    all_ssim = _ssim_all(pred255, target255)
    values = {"psnr": psnr, "psnr_capped": capped, "mse": mse, "ssim": all_ssim[f"ssim_{ssim}"], **all_ssim}
    if lpips is not None:
        values["lpips"] = lpips(pred255 / 127.5 - 1.0, target255 / 127.5 - 1.0)
    values["l1"], values["l1_hole"] = l1_per_image(pred255 / 255.0, target255 / 255.0, mask)
    values["hole_ratio"] = (mask > 0.5).float().mean(dim=(1, 2, 3))
    return values


# ---------------------------------------------------------------------------------------------------------------
# LPIPS


class LPIPSMetric(nn.Module):
    """LPIPS distance per image (Zhang et al., "The Unreasonable Effectiveness of Deep Features", CVPR 2018).

    Wraps ``lpips.LPIPS`` (v0.1 calibrated linear layers, shipped with the package) and loads the trunk's ImageNet
    weights under our offline policy instead of letting torchvision download them.

    Args:
        net: ``"alex"`` (the paper's Table 1 setting) or ``"vgg"``.
        backbone_weights: ``"imagenet"`` (torchvision's cache), a path to torchvision's state dict for that trunk,
            or ``"random"`` (untrained trunk; numbers are then not comparable to anything, a loud warning is issued).
        override: the config key named in error messages (how the user switches to random weights).

    ``forward(pred, target)`` takes ``[B, 3, H, W]`` images in [-1, 1] and returns ``[B]`` distances. The network
    is held outside the module tree: it never appears in a ``state_dict`` (see the module docstring).
    """

    def __init__(
        self, net: str = "alex", backbone_weights: str = "imagenet", override: str = "lpips.backbone_weights"
    ) -> None:
        super().__init__()
        if net not in _TRUNK_URLS:
            raise ValueError(f"LPIPS net must be one of {', '.join(_TRUNK_URLS)}, got {net!r}")
        import lpips as lpips_package

        with warnings.catch_warnings():
            # lpips builds the trunk through torchvision's deprecated `pretrained=` argument; pnet_rand=True means
            # "no download", the weights are loaded below.
            warnings.filterwarnings("ignore", category=UserWarning, module=r"torchvision\.models\._utils")
            model = lpips_package.LPIPS(net=net, version="0.1", pretrained=True, pnet_rand=True, verbose=False)
        self.net_name = net
        self.weights_used = self._load_trunk(model, net, str(backbone_weights), override)
        model.requires_grad_(False).eval()
        self._model = (model,)  # a tuple: not a registered submodule, so never in any state_dict

    @property
    def model(self) -> nn.Module:
        """The wrapped ``lpips.LPIPS`` network."""
        return self._model[0]

    @staticmethod
    def _load_trunk(model: nn.Module, net: str, weights: str, override: str) -> str:
        what = {"alex": "LPIPS AlexNet trunk", "vgg": "LPIPS VGG16 trunk"}[net]
        if weights == "random":
            warn_random(what)
            return "random"
        path = resolve_pretrained(what, _trunk_url(net), override, weights)
        state = torch.load(path, map_location="cpu", weights_only=True)
        # lpips splits torchvision's `features` into slice1..5 keeping the original layer indices as names.
        target = {}
        for key in model.net.state_dict():
            _slice, index, param = key.split(".")
            source = f"features.{index}.{param}"
            if source not in state:
                raise WeightsUnavailableError(
                    f"{path} is not a torchvision {net} state dict (no {source!r}); pass the file torchvision "
                    f"downloads ({_trunk_url(net).rsplit('/', 1)[-1]}) or {override}=random"
                )
            target[key] = state[source]
        model.net.load_state_dict(target, strict=True)
        return str(path)

    def _apply(self, fn, recurse: bool = True):
        # .to(device) / .cuda() / .double() reach the hidden network too.
        self._model[0]._apply(fn)
        return super()._apply(fn, recurse)

    def train(self, mode: bool = True) -> LPIPSMetric:
        # The calibrated layers use dropout: the metric must stay in eval mode whatever its parent does.
        super().train(mode)
        self._model[0].eval()
        return self

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        with torch.no_grad():
            return self._model[0](pred.float(), target.float(), normalize=False).flatten()

    def extra_repr(self) -> str:
        return f"net={self.net_name!r}, version='0.1', weights={self.weights_used!r}"


def build_lpips(
    lpips: bool | str | LPIPSMetric | None,
    net: str = "alex",
    backbone_weights: str = "imagenet",
    override: str = "lpips.backbone_weights",
) -> LPIPSMetric | None:
    """``True`` -> an :class:`LPIPSMetric` (errors propagate); ``"auto"`` -> one if the trunk weights can be had,
    else ``None`` with a warning; ``False``/``None`` -> ``None``; an instance is returned as is."""
    if isinstance(lpips, LPIPSMetric):
        return lpips
    if lpips is None or lpips is False or (isinstance(lpips, str) and lpips.lower() in ("false", "none", "off")):
        return None
    if isinstance(lpips, str) and lpips.lower() == "auto":
        try:
            return LPIPSMetric(net, backbone_weights, override)
        except WeightsUnavailableError as err:
            warnings.warn(f"LPIPS disabled (lpips='auto'): {err}", stacklevel=3)
            return None
    if lpips is True or (isinstance(lpips, str) and lpips.lower() == "true"):
        return LPIPSMetric(net, backbone_weights, override)
    raise ValueError(f"lpips must be true, false, 'auto' or an LPIPSMetric, got {lpips!r}")


# ---------------------------------------------------------------------------------------------------------------
# the aggregate metric


class InpaintingMetrics(Metric):
    """Mean PSNR, SSIM, LPIPS, L1 and hole-L1 over images (the Table 1 metrics), DDP-correct.

    ``update(output, target, mask)`` takes composited outputs and ground truths ``[B, 3, H, W]`` in [-1, 1] and
    masks ``[B, 1, H, W]`` (1 = hole). Per-image values are summed into torchmetrics states reduced with
    ``dist_reduce_fx="sum"``, so ``compute()`` returns the mean over all images of all ranks:
    ``{"psnr", "ssim", "lpips" (if enabled), "l1", "l1_hole"}`` (0-d tensors; NaN before any update), and with
    ``all_conventions=True`` also ``psnr_dataset`` (PSNR of the mean MSE), ``ssim_full``, ``ssim_cropped`` and
    ``ssim_uniform7`` (see the module docstring). A convention undefined for some image (too small) is NaN.
    The per-image values of the most recent ``update`` are kept in :attr:`last_per_image` (see
    :func:`per_image_metrics`) so an evaluator can write per-image rows without computing twice.

    Args:
        lpips: ``True`` (required: missing weights raise), ``"auto"`` (used when the trunk weights are available,
            else skipped with a warning), ``False``, or a ready :class:`LPIPSMetric`.
        lpips_net, lpips_backbone_weights, lpips_override: see :class:`LPIPSMetric`.
        ssim: the convention reported as ``ssim``: ``full`` (default), ``cropped`` or ``uniform7``.
        all_conventions: also return every convention under its own name (evaluation reports); off by default so
            training logs keep the Table 1 names only.

    Sums are float64 so the result does not depend on the batch split. Not differentiable.
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    _SUMS = ("psnr", "mse", "ssim", "ssim_full", "ssim_cropped", "ssim_uniform7", "lpips", "l1", "l1_hole")

    def __init__(
        self,
        lpips: bool | str | LPIPSMetric | None = True,
        lpips_net: str = "alex",
        lpips_backbone_weights: str = "imagenet",
        lpips_override: str = "lpips.backbone_weights",
        ssim: str = "full",
        all_conventions: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if ssim not in SSIM_CONVENTIONS:
            raise ValueError(f"SSIM convention must be one of {', '.join(SSIM_CONVENTIONS)}, got {ssim!r}")
        self.ssim_convention = ssim
        self.all_conventions = bool(all_conventions)
        self.lpips = build_lpips(lpips, lpips_net, lpips_backbone_weights, lpips_override)
        dtype = torch.float64
        for name in self._SUMS:
            self.add_state(f"{name}_sum", torch.zeros((), dtype=dtype), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=dtype), dist_reduce_fx="sum")
        self.add_state("hole_count", torch.zeros((), dtype=dtype), dist_reduce_fx="sum")
        self.add_state("capped_count", torch.zeros((), dtype=dtype), dist_reduce_fx="sum")
        self.last_per_image: dict[str, Tensor] = {}

    @property
    def names(self) -> tuple[str, ...]:
        """The keys :meth:`compute` returns."""
        names = METRIC_NAMES + (CONVENTION_NAMES if self.all_conventions else ())
        return tuple(n for n in names if n != "lpips" or self.lpips is not None)

    def update(self, output: Tensor, target: Tensor, mask: Tensor) -> None:
        if output.shape[0] == 0:
            self.last_per_image = {}
            return
        values = per_image_metrics(output.detach(), target.detach(), mask.detach(), self.lpips, self.ssim_convention)
        dtype = self.count.dtype
        for name in self._SUMS:
            if name in values:
                value = values[name].to(dtype)
                if name == "l1_hole":
                    value = torch.nan_to_num(value, nan=0.0)
                setattr(self, f"{name}_sum", getattr(self, f"{name}_sum") + value.sum())
        self.count += output.shape[0]
        self.hole_count += torch.isfinite(values["l1_hole"]).sum().to(dtype)
        self.capped_count += values["psnr_capped"].sum().to(dtype)
        self.last_per_image = {k: v.detach() for k, v in values.items()}

    def compute(self) -> dict[str, Tensor]:
        out = {}
        for name in self.names:
            if name == "psnr_dataset":
                total, denominator = self.mse_sum, self.count
            else:
                total = getattr(self, f"{name}_sum")
                denominator = self.hole_count if name == "l1_hole" else self.count
            if denominator <= 0:
                out[name] = torch.tensor(torch.nan)
                continue
            mean = total / denominator
            if name == "psnr_dataset":
                mean = psnr_from_mse(mean)[0]
            out[name] = mean.float()
        return out

    def capped(self) -> int:
        """Number of images whose PSNR was capped (identical to the ground truth) on this rank."""
        return int(self.capped_count)

    def describe(self) -> Mapping[str, Any]:
        """The conventions, the headline SSIM convention and the LPIPS setting, for reports."""
        return {
            "ssim_convention": self.ssim_convention,
            "conventions": conventions(self.ssim_convention),
            "lpips": self.lpips_info(),
        }

    def lpips_info(self) -> dict[str, str] | None:
        """LPIPS trunk, calibration version, ``lpips`` package version and trunk weights; ``None`` if disabled."""
        lp = self.lpips
        if lp is None:
            return None
        return {
            "net": lp.net_name,
            "version": "0.1",
            "package_version": lpips_package_version(),
            "backbone": lp.weights_used,
        }


# ---------------------------------------------------------------------------------------------------------------
# FID and KID


# torch-fidelity's Inception v3 (the TensorFlow FID network converted to PyTorch), which torchmetrics' FID and KID
# load; torch.hub caches it under this file name.
INCEPTION_WEIGHTS_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
)
INCEPTION_WEIGHTS_FILE = INCEPTION_WEIGHTS_URL.rsplit("/", 1)[-1]


def inception_weights_path() -> Path:
    """Where torchmetrics / torch-fidelity look for the Inception weights: ``$TORCH_HOME/hub/checkpoints/<file>``."""
    from dmfn_lightning.weights import torch_hub_checkpoint_dir

    return torch_hub_checkpoint_dir() / INCEPTION_WEIGHTS_FILE


def _torch_fidelity_available() -> bool:
    from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE

    return bool(_TORCH_FIDELITY_AVAILABLE)


def inception_feature_extractor(
    weights: str = "auto", override: str = "metrics.inception_weights"
) -> tuple[nn.Module, str]:
    """torchmetrics' Inception v3 (2048-d pool features) and the path of the weights it loaded.

    ``weights``: ``"auto"`` (torch-fidelity's file in torch.hub's cache, downloaded once when the network allows and
    ``DMFN_OFFLINE`` is unset) or a path to that file. Raises :class:`FeatureExtractorUnavailableError` with a
    one-line message saying where to put the file (and to install ``torch-fidelity`` when it is missing).
    """
    have_fidelity = _torch_fidelity_available()
    install = "install torch-fidelity (pip install torch-fidelity), which torchmetrics' Inception v3 needs"
    where = (
        f"put {INCEPTION_WEIGHTS_FILE} (from {INCEPTION_WEIGHTS_URL}) into {inception_weights_path().parent}/ "
        f"(torch.hub's cache, as torchmetrics/torch-fidelity expect) or set "
        f"{override}=/path/to/{INCEPTION_WEIGHTS_FILE}"
    )
    if weights == "auto":
        path = inception_weights_path()
        if not path.is_file():
            if not have_fidelity:
                # No download without the package that would use it.
                raise FeatureExtractorUnavailableError(f"Inception weights not found: {where}; also {install}")
            try:
                path = resolve_pretrained("FID/KID Inception v3", INCEPTION_WEIGHTS_URL, override, "imagenet")
            except WeightsUnavailableError as err:
                raise FeatureExtractorUnavailableError(f"Inception weights not found: {where}") from err
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FeatureExtractorUnavailableError(f"{override}={weights}: no such file; {where}")
    if not have_fidelity:
        raise FeatureExtractorUnavailableError(f"the Inception weights are at {path}, but {install}")
    from torchmetrics.image.fid import NoTrainInceptionV3

    network = NoTrainInceptionV3(
        name="inception-v3-compat", features_list=["2048"], feature_extractor_weights_path=str(path)
    )
    return network, str(path)


class _Precomputed(nn.Module):
    """The "feature extractor" torchmetrics gets: features are computed once outside and shared by FID and KID."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = int(num_features)

    def forward(self, features: Tensor) -> Tensor:
        return features


def _count_features(extractor: nn.Module) -> int:
    num = getattr(extractor, "num_features", None)
    if isinstance(num, int):
        return num
    if isinstance(num, Tensor):
        return int(num.item())
    if isinstance(extractor, nn.Module) and hasattr(extractor, "features_list"):  # torchmetrics' Inception
        return int(extractor.features_list[0])
    # As torchmetrics does for a custom module: one probe image.
    device = next((p.device for p in extractor.parameters()), torch.device("cpu"))
    with torch.no_grad():
        probe = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8, device=device)
        return int(extractor(probe).reshape(1, -1).shape[1])


class DistributionMetrics(nn.Module):
    """FID and KID (torchmetrics ``FrechetInceptionDistance`` / ``KernelInceptionDistance``) over a whole test set.

    ``update(output, target)`` takes composited outputs and ground truths ``[B, 3, H, W]`` in [-1, 1]; both are
    quantised to uint8 (as for every other metric) and passed once through the feature extractor, whose features
    feed both torchmetrics metrics (ground truth = real, outputs = fake). ``compute()`` returns ``{"fid", "kid",
    "kid_std"}`` (those enabled; ``None`` with fewer than 2 images).

    Args:
        fid, kid: which to compute.
        feature: a feature extractor ``uint8 [B, 3, H, W] -> [B, d]`` (e.g. a small random network in tests); default
            torchmetrics' Inception v3 (2048-d pool features, torch-fidelity's weights), see
            :func:`inception_feature_extractor`.
        weights: Inception weights for the default extractor: ``"auto"`` or a file path.
        kid_subsets, kid_subset_size: KID's subsets; the subset size is clamped to the number of images.
        seed: KID draws its subsets from a generator seeded with this, so two evaluations agree.
    """

    def __init__(
        self,
        fid: bool = True,
        kid: bool = True,
        feature: nn.Module | None = None,
        weights: str = "auto",
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        seed: int = 0,
        override: str = "metrics.inception_weights",
    ) -> None:
        super().__init__()
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.kid import KernelInceptionDistance

        if not (fid or kid):
            raise ValueError("DistributionMetrics needs fid or kid")
        if feature is None:
            feature, source = inception_feature_extractor(weights, override)
            self.extractor_name = "Inception v3 (torchmetrics NoTrainInceptionV3, torch-fidelity's FID network)"
        else:
            source = "custom"
            self.extractor_name = f"custom: {type(feature).__name__}"
        self.weights_source = source
        self.extractor = feature.eval().requires_grad_(False)
        self.num_features = _count_features(feature)
        self.fid = FrechetInceptionDistance(feature=_Precomputed(self.num_features)) if fid else None
        self.kid = None
        if kid:
            with warnings.catch_warnings():
                # "will save all extracted features in buffer": 2048 floats per image is what KID needs.
                warnings.filterwarnings("ignore", message=".*save all extracted features.*")
                self.kid = KernelInceptionDistance(
                    feature=_Precomputed(self.num_features), subsets=int(kid_subsets), subset_size=int(kid_subset_size)
                )
        self.kid_subset_size = int(kid_subset_size)
        self.seed = int(seed)
        self.count = 0

    def train(self, mode: bool = True) -> DistributionMetrics:
        super().train(mode)
        self.extractor.eval()
        return self

    @torch.no_grad()
    def update(self, output: Tensor, target: Tensor) -> None:
        if output.shape[0] == 0:
            return
        fake = quantize(output).to(torch.uint8)
        real = quantize(target).to(torch.uint8)
        features_fake = self.extractor(fake).reshape(fake.shape[0], -1).float()
        features_real = self.extractor(real).reshape(real.shape[0], -1).float()
        for metric in (self.fid, self.kid):
            if metric is not None:
                metric.update(features_real, real=True)
                metric.update(features_fake, real=False)
        self.count += int(output.shape[0])

    def compute(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        enough = self.count >= 2  # a covariance needs two images
        if self.fid is not None:
            out["fid"] = float(self.fid.compute()) if enough else None
        if self.kid is not None:
            if enough:
                self.kid.subset_size = min(self.kid_subset_size, self.count)
                # KID draws its subsets with torch.randperm from the global generator: fork it, seeded.
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(self.seed)
                    mean, std = self.kid.compute()
                out["kid"], out["kid_std"] = float(mean), float(std)
            else:
                out["kid"] = out["kid_std"] = None
        return out

    def describe(self) -> dict[str, Any]:
        """The feature extractor, its weights and the KID settings, for reports."""
        info: dict[str, Any] = {
            "metrics": [n for n, m in (("fid", self.fid), ("kid", self.kid)) if m is not None],
            "feature_extractor": self.extractor_name,
            "num_features": self.num_features,
            "weights": self.weights_source,
            "images": "composited outputs (fake) vs ground truths (real), uint8 [0, 255], over the whole test set",
        }
        if self.kid is not None:
            info["kid_subsets"] = int(self.kid.subsets)
            info["kid_subset_size"] = min(self.kid_subset_size, self.count) if self.count else self.kid_subset_size
            info["kid_seed"] = self.seed
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            info["torchmetrics_version"] = importlib.metadata.version("torchmetrics")
        return info
