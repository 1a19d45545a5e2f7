"""Image-quality metrics of the paper's Table 1 (LPIPS, PSNR, SSIM) plus L1, each under named conventions.

This package's face: :func:`per_image_metrics` and the aggregate :class:`InpaintingMetrics` (:mod:`.suite`), the
pieces they are built from (:mod:`.pixel`, :mod:`.ssim`, :mod:`.perceptual`, :mod:`.distribution`), the one table
of metrics every report reads (:data:`METRICS`, :mod:`.table`: name, label, direction, conventions, format and
per-image function of each metric) and the settings an evaluation computes them with (:class:`MetricOptions`,
:mod:`.options`).

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

LPIPS' trunk weights (offline policy) and why no metric weights end up in checkpoints: see
:mod:`dmfn_lightning.metrics.perceptual`. :class:`InpaintingMetrics`' own states are torchmetrics states
(``persistent=False`` by default), so it may be registered on a LightningModule as an attribute.
"""

from dmfn_lightning.core.errors import FeatureExtractorUnavailableError
from dmfn_lightning.metrics.distribution import (
    INCEPTION_WEIGHTS_FILE,
    INCEPTION_WEIGHTS_URL,
    DistributionMetrics,
    inception_feature_extractor,
    inception_weights_path,
)
from dmfn_lightning.metrics.options import MetricOptions
from dmfn_lightning.metrics.perceptual import LPIPS_NETS, LPIPSMetric, lpips_package_version
from dmfn_lightning.metrics.pixel import PSNR_CAP, l1_per_image, mse_per_image, psnr_from_mse, psnr_per_image, quantize
from dmfn_lightning.metrics.ssim import SSIM_CONVENTIONS, SSIMConvention, ssim_per_image
from dmfn_lightning.metrics.suite import CONVENTIONS, InpaintingMetrics, per_image_metrics
from dmfn_lightning.metrics.table import (
    CONVENTION_NAMES,
    METRIC_NAMES,
    METRICS,
    Convention,
    MetricSpec,
    conventions,
    format_value,
    metric_spec,
)

__all__ = [
    "CONVENTIONS",
    "CONVENTION_NAMES",
    "INCEPTION_WEIGHTS_FILE",
    "INCEPTION_WEIGHTS_URL",
    "LPIPS_NETS",
    "METRICS",
    "METRIC_NAMES",
    "PSNR_CAP",
    "SSIM_CONVENTIONS",
    "Convention",
    "DistributionMetrics",
    "FeatureExtractorUnavailableError",
    "InpaintingMetrics",
    "LPIPSMetric",
    "MetricOptions",
    "MetricSpec",
    "SSIMConvention",
    "conventions",
    "format_value",
    "inception_feature_extractor",
    "inception_weights_path",
    "l1_per_image",
    "lpips_package_version",
    "metric_spec",
    "mse_per_image",
    "per_image_metrics",
    "psnr_from_mse",
    "psnr_per_image",
    "quantize",
    "ssim_per_image",
]
