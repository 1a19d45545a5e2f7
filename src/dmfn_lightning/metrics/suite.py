"""The Table 1 metric set: :func:`per_image_metrics` per image and :class:`InpaintingMetrics` over a test set.

Both read the metrics, their conventions and their per-image functions from the table of
:mod:`dmfn_lightning.metrics.table`; the conventions behind every number are described in
:mod:`dmfn_lightning.metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from dmfn_lightning.core.pixels import from_levels
from dmfn_lightning.metrics.perceptual import LPIPSMetric, build_lpips, lpips_package_version
from dmfn_lightning.metrics.pixel import quantize
from dmfn_lightning.metrics.ssim import SSIM_CONVENTIONS
from dmfn_lightning.metrics.table import CONVENTION_NAMES, METRIC_NAMES, METRICS, conventions

__all__ = ["CONVENTIONS", "CONVENTION_NAMES", "METRIC_NAMES", "InpaintingMetrics", "conventions", "per_image_metrics"]

CONVENTIONS: dict[str, str] = conventions("full")

_PER_IMAGE = tuple(m for m in METRICS if m.per_image)
# The per-image values summed over images: every metric, its per-image conventions, and the values a dataset-level
# convention is computed from (the MSE of psnr_dataset).
_DATASET_LEVEL = {c.name: c for m in _PER_IMAGE for c in m.named_conventions if not c.per_image}
_SUMS = tuple(
    dict.fromkeys(
        [
            *(name for m in _PER_IMAGE for name in (m.name, *m.per_image_conventions)),
            *(c.from_mean_of for c in _DATASET_LEVEL.values()),
        ]
    )
)
# Averaged over the images where they are defined (not NaN), each with its own count.
_OVER_DEFINED = tuple(m.name for m in _PER_IMAGE if m.mean_over_defined)


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

    Returns 1-D tensors of length B, one per per-image value of :data:`~dmfn_lightning.metrics.table.METRICS`:
    ``psnr``, ``psnr_capped`` (bool), ``mse`` (on [0, 255], for the dataset-level PSNR), ``ssim``, ``ssim_full``,
    ``ssim_cropped``, ``ssim_uniform7`` (NaN where the image is smaller than the convention allows), ``lpips`` (if
    given), ``l1``, ``l1_hole`` (NaN without a hole), and ``hole_ratio``.
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
    values: dict[str, Tensor] = {}
    for metric in _PER_IMAGE:
        if metric.name == "lpips":  # the one metric with a network of its own
            if lpips is not None:
                values["lpips"] = lpips(from_levels(pred255), from_levels(target255))
            continue
        computed = metric.compute(pred255, target255, mask)
        if not isinstance(computed, Mapping):
            computed = {metric.name: computed}
        if metric.selectable:  # the headline is a copy of the chosen convention
            values[metric.name] = computed[f"{metric.name}_{ssim}"]
        values.update(computed)
    values["hole_ratio"] = (mask > 0.5).float().mean(dim=(1, 2, 3))
    return values


class InpaintingMetrics(Metric):
    """Mean PSNR, SSIM, LPIPS, L1 and hole-L1 over images (the Table 1 metrics), DDP-correct.

    ``update(output, target, mask)`` takes composited outputs and ground truths ``[B, 3, H, W]`` in [-1, 1] and masks
    ``[B, 1, H, W]`` (1 = hole). Per-image values are summed into torchmetrics states reduced with
    ``dist_reduce_fx="sum"``, so ``compute()`` returns the mean over all images of all ranks of every per-image metric
    of the table (:data:`~dmfn_lightning.metrics.table.METRIC_NAMES`: ``{"psnr", "ssim", "lpips" (if enabled), "l1",
    "l1_hole"}``; 0-d tensors, NaN before any update), and with ``all_conventions=True`` also its conventions
    (:data:`~dmfn_lightning.metrics.table.CONVENTION_NAMES`: ``psnr_dataset``, the PSNR of the mean MSE, ``ssim_full``,
    ``ssim_cropped`` and ``ssim_uniform7``; see the module docstring). A convention undefined for some image (too small)
    is NaN. The per-image values of the most recent ``update`` are kept in :attr:`last_per_image` (see
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
        for name in _SUMS:
            self.add_state(f"{name}_sum", torch.zeros((), dtype=dtype), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=dtype), dist_reduce_fx="sum")
        for name in _OVER_DEFINED:
            self.add_state(f"{name}_count", torch.zeros((), dtype=dtype), dist_reduce_fx="sum")
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
        for name in _SUMS:
            if name in values:
                value = values[name].to(dtype)
                if name in _OVER_DEFINED:
                    value = torch.nan_to_num(value, nan=0.0)
                setattr(self, f"{name}_sum", getattr(self, f"{name}_sum") + value.sum())
        self.count += output.shape[0]
        for name in _OVER_DEFINED:
            if name in values:
                setattr(
                    self, f"{name}_count", getattr(self, f"{name}_count") + torch.isfinite(values[name]).sum().to(dtype)
                )
        self.last_per_image = {k: v.detach() for k, v in values.items()}

    def compute(self) -> dict[str, Tensor]:
        out = {}
        for name in self.names:
            dataset_level = _DATASET_LEVEL.get(name)
            if dataset_level is not None:
                total, denominator = getattr(self, f"{dataset_level.from_mean_of}_sum"), self.count
            else:
                total = getattr(self, f"{name}_sum")
                denominator = getattr(self, f"{name}_count") if name in _OVER_DEFINED else self.count
            if denominator <= 0:
                out[name] = torch.tensor(torch.nan)
                continue
            mean = total / denominator
            if dataset_level is not None:
                mean = dataset_level.finish(mean)
            out[name] = mean.float()
        return out

    def settings(self) -> Mapping[str, Any]:
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
