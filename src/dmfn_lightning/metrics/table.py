"""The one table of metrics: each metric's name, label, direction, conventions, format and per-image function.

Every list of metric names elsewhere is read from :data:`METRICS`: the per-image values of
:func:`~dmfn_lightning.metrics.suite.per_image_metrics`, the means of
:class:`~dmfn_lightning.metrics.suite.InpaintingMetrics` (:data:`METRIC_NAMES`, :data:`CONVENTION_NAMES`), the
descriptions of ``summary.json`` (:func:`conventions`), the columns of ``per_image.csv``, the by-hole-ratio table,
the columns and convention labels of ``table1.md`` (:mod:`dmfn_lightning.evaluation.reports`, also
:func:`format_value`) and the columns of ``experiments/collect.py``.

Adding a per-image metric is one function ``(output255, target255, mask) -> [B] tensor`` (8-bit levels as float
``[B, 3, H, W]``, the mask ``[B, 1, H, W]`` with 1 = hole) and one :class:`MetricSpec` row in :data:`METRICS`: it
is then computed, averaged (DDP-correct), written to ``per_image.csv``, shown in ``table1.md`` and by hole ratio,
and described in ``summary.json``. The order of :data:`METRICS` is the order of those files' columns (except
``table1.md``, which shows the paper's metrics first, in the paper's order: :data:`PAPER_METRICS`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from dmfn_lightning.metrics.pixel import PSNR_CAP, l1_per_image, mse_per_image, psnr_from_mse
from dmfn_lightning.metrics.ssim import SSIM_CONVENTIONS, ssim_all

__all__ = [
    "CONVENTION_NAMES",
    "METRICS",
    "METRIC_NAMES",
    "PAPER_METRICS",
    "PER_IMAGE_COLUMNS",
    "PER_IMAGE_MEANS",
    "REPORT_METRICS",
    "Convention",
    "MetricSpec",
    "conventions",
    "format_value",
    "metric_spec",
]

# A per-image metric's function: (output, target) as float 8-bit levels [B, 3, H, W] and the mask [B, 1, H, W]
# (1 = hole) -> its values [B], or a mapping of the values it computes (its name, its conventions, its columns).
PerImageFunction = Callable[[Tensor, Tensor, Tensor], "Tensor | Mapping[str, Tensor]"]


@dataclass(frozen=True)
class Convention:
    """One way of computing a metric, reported under its own name (``ssim_cropped``, ``psnr_dataset``).

    ``label`` names it in ``table1.md``'s conventions section, ``description`` in ``summary.json`` (empty for the
    convention that is the metric's own name: the metric's description covers it). A per-image convention is a
    column of ``per_image.csv`` and of the by-hole-ratio table. A dataset-level one (``per_image=False``) is
    ``finish(mean over images of the per-image value from_mean_of)``.
    """

    name: str
    label: str
    description: str = ""
    per_image: bool = True
    from_mean_of: str | None = None
    finish: Callable[[Tensor], Tensor] | None = None


@dataclass(frozen=True)
class MetricSpec:
    """One row of the table of metrics.

    Attributes:
        name: the key in ``per_image.csv``, ``summary.json`` and the training logs (``val/<name>``).
        label: as reports print it (``PSNR``); :attr:`header` adds the direction (``PSNR ↑``).
        higher_is_better: the direction.
        digits: decimals in reports.
        description: how the number is computed (``summary.json``'s ``conventions``). A metric whose headline is
            chosen among its conventions (``selectable``) writes ``{choice}`` for the chosen one.
        compute: the per-image function (see :data:`PerImageFunction`); ``None`` for LPIPS, which needs its network
            and is computed by :func:`~dmfn_lightning.metrics.suite.per_image_metrics` itself.
        conventions: the other ways of computing it, each reported under its own name.
        selectable: the headline value is one of the conventions, ``<name>_<choice>`` (``metrics.ssim``).
        columns: further per-image values ``compute`` returns, written after it in ``per_image.csv`` (or, for a
            dataset-level metric, reported beside it: ``kid_std``).
        paper_column: its position among the paper's columns (LPIPS, PSNR, SSIM); ``None`` if the paper has none.
        per_image: ``False`` for the dataset-level metrics (FID, KID) of
            :class:`~dmfn_lightning.metrics.distribution.DistributionMetrics`.
        mean_over_defined: the mean runs over the images where it is defined (not NaN: hole L1 without a hole)
            instead of over all images.
    """

    name: str
    label: str
    higher_is_better: bool
    digits: int
    description: str
    compute: PerImageFunction | None = None
    conventions: tuple[Convention, ...] = ()
    selectable: bool = False
    columns: tuple[str, ...] = ()
    paper_column: int | None = None
    per_image: bool = True
    mean_over_defined: bool = False

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"

    @property
    def header(self) -> str:
        """The label with its direction, as table headers show it: ``LPIPS ↓``."""
        return f"{self.label} {self.arrow}"

    @property
    def named_conventions(self) -> tuple[Convention, ...]:
        """The conventions reported under a name of their own (not the metric's name)."""
        return tuple(c for c in self.conventions if c.name != self.name)

    @property
    def per_image_conventions(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.named_conventions if c.per_image)


def _psnr(output255: Tensor, target255: Tensor, mask: Tensor) -> dict[str, Tensor]:
    mse = mse_per_image(output255, target255)
    psnr, capped = psnr_from_mse(mse)
    return {"psnr": psnr, "psnr_capped": capped, "mse": mse}


def _psnr_of_mean_mse(mean_mse: Tensor) -> Tensor:
    return psnr_from_mse(mean_mse)[0]


def _ssim(output255: Tensor, target255: Tensor, mask: Tensor) -> dict[str, Tensor]:
    return ssim_all(output255, target255)


def _l1(output255: Tensor, target255: Tensor, mask: Tensor) -> Tensor:
    return l1_per_image(output255 / 255.0, target255 / 255.0, mask)[0]


def _l1_hole(output255: Tensor, target255: Tensor, mask: Tensor) -> Tensor:
    return l1_per_image(output255 / 255.0, target255 / 255.0, mask)[1]


_SSIM_LABELS = {
    "full": "SSIM full (torchmetrics: reflect-padded, whole map)",
    "cropped": "SSIM cropped (scikit-image, Gaussian 11 / 1.5, 5 px border cropped)",
    "uniform7": "SSIM uniform7 (scikit-image defaults: uniform 7x7, sample covariance)",
}

METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "psnr",
        "PSNR",
        higher_is_better=True,
        digits=2,
        description=f"per image over all pixels and RGB channels, 10*log10(255^2/MSE), then mean over images; "
        f"identical images capped at {PSNR_CAP:g} dB and flagged (psnr_capped)",
        compute=_psnr,
        conventions=(
            Convention("psnr", "PSNR, mean of per-image values"),
            Convention(
                "psnr_dataset",
                "PSNR of the mean MSE over the test set",
                "MSE per image over all pixels and RGB channels, averaged over all images, then "
                f"10*log10(255^2/mean MSE) (capped at {PSNR_CAP:g} dB)",
                per_image=False,
                from_mean_of="mse",
                finish=_psnr_of_mean_mse,
            ),
        ),
        columns=("psnr_capped", "mse"),
        paper_column=1,
    ),
    MetricSpec(
        "ssim",
        "SSIM",
        higher_is_better=True,
        digits=4,
        description="the headline SSIM: ssim_{choice} (metrics.ssim={choice})",
        compute=_ssim,
        conventions=tuple(
            Convention(f"ssim_{name}", _SSIM_LABELS[name], conv.description) for name, conv in SSIM_CONVENTIONS.items()
        ),
        selectable=True,
        paper_column=2,
    ),
    MetricSpec(
        "lpips",
        "LPIPS",
        higher_is_better=False,
        digits=4,
        description="lpips package v0.1 (calibrated linear layers), AlexNet trunk unless stated, inputs in [-1, 1], "
        "per image then mean; lower is better",
        paper_column=0,
    ),
    MetricSpec(
        "l1",
        "L1",
        higher_is_better=False,
        digits=4,
        description="mean |out - gt| on [0, 1] over the whole image, per image then mean",
        compute=_l1,
    ),
    MetricSpec(
        "l1_hole",
        "L1 hole",
        higher_is_better=False,
        digits=4,
        description="mean |out - gt| on [0, 1] over hole pixels only, per image then mean over images with a hole",
        compute=_l1_hole,
        mean_over_defined=True,
    ),
    MetricSpec(
        "fid",
        "FID",
        higher_is_better=False,
        digits=2,
        description="torchmetrics FrechetInceptionDistance over the whole test set, composited outputs (fake) "
        "against ground truths (real), uint8",
        per_image=False,
    ),
    MetricSpec(
        "kid",
        "KID",
        higher_is_better=False,
        digits=4,
        description="torchmetrics KernelInceptionDistance over the whole test set, mean and std over seeded "
        "random subsets",
        columns=("kid_std",),
        per_image=False,
    ),
)

_PER_IMAGE = tuple(m for m in METRICS if m.per_image)
# What InpaintingMetrics.compute() returns by default (the Table 1 columns, headline conventions only).
METRIC_NAMES: tuple[str, ...] = tuple(m.name for m in _PER_IMAGE)
# The extra names compute() adds with all_conventions=True (and per_image_metrics returns the per-image ones of).
CONVENTION_NAMES: tuple[str, ...] = tuple(c.name for m in _PER_IMAGE for c in m.named_conventions)
# per_image.csv's metric columns: each metric, its extra values, its per-image conventions.
PER_IMAGE_COLUMNS: tuple[str, ...] = tuple(
    name for m in _PER_IMAGE for name in (m.name, *m.columns, *m.per_image_conventions)
)
# The per-image values averaged per hole-ratio bucket (a dataset-level convention is not a row's).
PER_IMAGE_MEANS: tuple[str, ...] = tuple(name for m in _PER_IMAGE for name in (m.name, *m.per_image_conventions))
# The paper's columns (Table 1-3: LPIPS, PSNR, SSIM), in the paper's order.
PAPER_METRICS: tuple[MetricSpec, ...] = tuple(
    sorted((m for m in METRICS if m.paper_column is not None), key=lambda m: m.paper_column)
)
# table1.md's columns: the paper's metrics in the paper's order, then our other per-image metrics.
REPORT_METRICS: tuple[MetricSpec, ...] = PAPER_METRICS + tuple(m for m in _PER_IMAGE if m.paper_column is None)

_BY_NAME: dict[str, MetricSpec] = {key: m for m in METRICS for key in (m.name, *(c.name for c in m.conventions))}


def metric_spec(name: str) -> MetricSpec | None:
    """The row of a metric or of one of its conventions (``ssim_cropped`` -> SSIM's row); ``None`` if unknown."""
    return _BY_NAME.get(name)


def format_value(name: str, value: Any) -> str:
    """A metric as reports show it: its row's decimals (4 for names not in the table), ``n/a`` when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    spec = metric_spec(name)
    return f"{value:.{spec.digits if spec else 4}f}"


def conventions(ssim: str = "full") -> dict[str, str]:
    """How each reported number is computed, for reports; ``ssim`` names the headline SSIM convention."""
    if ssim not in SSIM_CONVENTIONS:
        raise ValueError(f"SSIM convention must be one of {', '.join(SSIM_CONVENTIONS)}, got {ssim!r}")
    out = {"images": "composited output mask*G(x)+(1-mask)*gt vs ground truth, both quantised to uint8 [0, 255] first"}
    for m in _PER_IMAGE:
        out[m.name] = m.description.replace("{choice}", ssim) if m.selectable else m.description
        out.update({c.name: c.description for c in m.named_conventions})
    return out
