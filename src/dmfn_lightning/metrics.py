"""Image-quality metrics of the paper's Table 1 (LPIPS, PSNR, SSIM) plus L1, with fixed conventions.

Conventions (DESIGN.md section 8; :data:`CONVENTIONS` records them in every report):

* Metrics are computed on the **composited** output (``mask * G(x) + (1 - mask) * image``) against the ground
  truth, both first quantised to 8 bit (``round((x + 1) * 127.5)``), i.e. exactly the pixels a saved PNG holds.
* PSNR: per image over all pixels and channels (torchmetrics, ``data_range=255``, ``dim=(1, 2, 3)``), then averaged
  over images. Identical images (infinite PSNR) are capped at :data:`PSNR_CAP` dB and flagged.
* SSIM: torchmetrics, Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, ``data_range=255``, per image then averaged.
* LPIPS (Zhang et al., CVPR 2018): the ``lpips`` package, AlexNet trunk, v0.1 linear calibration, inputs in
  [-1, 1]; lower is better. ``net="vgg"`` selects the VGG16 trunk.
* L1: ``mean |out - gt|`` on [0, 1], over the whole image and over the hole only (images without a hole do not
  count towards ``l1_hole``).

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

import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from dmfn_lightning.weights import WeightsUnavailableError, resolve_pretrained, warn_random

__all__ = [
    "CONVENTIONS",
    "LPIPS_NETS",
    "METRIC_NAMES",
    "PSNR_CAP",
    "InpaintingMetrics",
    "LPIPSMetric",
    "l1_per_image",
    "per_image_metrics",
    "psnr_per_image",
    "quantize",
    "ssim_per_image",
]

PSNR_CAP = 100.0
METRIC_NAMES = ("psnr", "ssim", "lpips", "l1", "l1_hole")
SSIM_KWARGS: dict[str, Any] = {
    "gaussian_kernel": True,
    "kernel_size": 11,
    "sigma": 1.5,
    "k1": 0.01,
    "k2": 0.03,
    "data_range": 255.0,
}

CONVENTIONS: dict[str, str] = {
    "images": "composited output mask*G(x)+(1-mask)*gt vs ground truth, both quantised to uint8 [0, 255] first",
    "psnr": f"per image over all pixels and RGB channels, data_range=255 (torchmetrics, dim=(1,2,3)), mean over "
    f"images; identical images capped at {PSNR_CAP:g} dB and flagged (psnr_capped)",
    "ssim": "torchmetrics SSIM, Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, data_range=255, on RGB, "
    "per image then mean over images",
    "lpips": "lpips package v0.1 (calibrated linear layers), AlexNet trunk unless stated, inputs in [-1, 1], "
    "per image then mean; lower is better",
    "l1": "mean |out - gt| on [0, 1] over the whole image, per image then mean",
    "l1_hole": "mean |out - gt| on [0, 1] over hole pixels only, per image then mean over images with a hole",
}

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


def quantize(x: Tensor) -> Tensor:
    """[-1, 1] images -> float tensor of integer levels in [0, 255] (what an 8-bit PNG stores)."""
    return ((x.float().clamp(-1.0, 1.0) + 1.0) * 127.5).round_()


def psnr_per_image(pred255: Tensor, target255: Tensor, cap: float = PSNR_CAP) -> tuple[Tensor, Tensor]:
    """Per-image PSNR in dB of [0, 255] images ``[B, C, H, W]``; returns ``(psnr, capped)``.

    ``capped`` flags images whose PSNR was infinite (identical images) or above ``cap``; their value is ``cap``.
    """
    psnr = peak_signal_noise_ratio(pred255, target255, data_range=255.0, reduction="none", dim=(1, 2, 3))
    capped = ~torch.isfinite(psnr) | (psnr > cap)
    return torch.where(capped, torch.full_like(psnr, cap), psnr), capped


def ssim_per_image(pred255: Tensor, target255: Tensor) -> Tensor:
    """Per-image SSIM of [0, 255] images (Gaussian 11 / 1.5, K1 0.01, K2 0.03, data_range 255).

    Undefined (NaN) for images with a side below the 11-pixel window.
    """
    if min(pred255.shape[-2:]) < SSIM_KWARGS["kernel_size"]:
        return torch.full(pred255.shape[:1], torch.nan, device=pred255.device)
    # float64 where available: variances of 255-scale values lose digits in float32 (MPS has no float64).
    dtype = torch.float32 if pred255.device.type == "mps" else torch.float64
    ssim = structural_similarity_index_measure(pred255.to(dtype), target255.to(dtype), reduction="none", **SSIM_KWARGS)
    return ssim.float()


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
    output: Tensor, target: Tensor, mask: Tensor, lpips: LPIPSMetric | None = None
) -> dict[str, Tensor]:
    """All metrics per image for a batch: ``output``/``target`` ``[B, 3, H, W]`` in [-1, 1], ``mask`` ``[B, 1, H, W]``.

    Returns 1-D tensors of length B: ``psnr``, ``psnr_capped`` (bool), ``ssim``, ``lpips`` (if given), ``l1``,
    ``l1_hole`` (NaN without a hole) and ``hole_ratio``.
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
    pred255, target255 = quantize(output), quantize(target)
    psnr, capped = psnr_per_image(pred255, target255)
    values = {"psnr": psnr, "psnr_capped": capped, "ssim": ssim_per_image(pred255, target255)}
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
    ``{"psnr", "ssim", "lpips" (if enabled), "l1", "l1_hole"}`` (0-d tensors; NaN before any update).
    The per-image values of the most recent ``update`` are kept in :attr:`last_per_image` (see
    :func:`per_image_metrics`) so an evaluator can write per-image rows without computing twice.

    Args:
        lpips: ``True`` (required: missing weights raise), ``"auto"`` (used when the trunk weights are available,
            else skipped with a warning), ``False``, or a ready :class:`LPIPSMetric`.
        lpips_net, lpips_backbone_weights, lpips_override: see :class:`LPIPSMetric`.

    Sums are float64 (MPS: float32) so the result does not depend on the batch split. Not differentiable.
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    _SUMS = ("psnr", "ssim", "lpips", "l1", "l1_hole")

    def __init__(
        self,
        lpips: bool | str | LPIPSMetric | None = True,
        lpips_net: str = "alex",
        lpips_backbone_weights: str = "imagenet",
        lpips_override: str = "lpips.backbone_weights",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
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
        return tuple(n for n in METRIC_NAMES if n != "lpips" or self.lpips is not None)

    def update(self, output: Tensor, target: Tensor, mask: Tensor) -> None:
        if output.shape[0] == 0:
            self.last_per_image = {}
            return
        values = per_image_metrics(output.detach(), target.detach(), mask.detach(), self.lpips)
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
            total = getattr(self, f"{name}_sum")
            denominator = self.hole_count if name == "l1_hole" else self.count
            out[name] = (total / denominator).float() if denominator > 0 else torch.tensor(torch.nan)
        return out

    def capped(self) -> int:
        """Number of images whose PSNR was capped (identical to the ground truth) on this rank."""
        return int(self.capped_count)

    def describe(self) -> Mapping[str, Any]:
        """The conventions and the LPIPS setting, for reports."""
        lp = self.lpips
        return {
            "conventions": dict(CONVENTIONS),
            "lpips": None if lp is None else {"net": lp.net_name, "version": "0.1", "backbone": lp.weights_used},
        }
