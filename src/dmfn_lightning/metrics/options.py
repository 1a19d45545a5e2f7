"""The metric settings an evaluation and the scoring of other frameworks' outputs share: :class:`MetricOptions`.

Built once per command: :meth:`MetricOptions.from_config` reads ``conf/eval.yaml``'s ``lpips.*`` and ``metrics.*``
keys (``dmfn_lightning.evaluate``), ``python -m dmfn_lightning.manifest score`` builds it from its flags. Both hand
it to :class:`~dmfn_lightning.evaluation.run.EvaluationRun`, which builds the metrics from it
(:meth:`MetricOptions.inpainting_metrics`, :meth:`MetricOptions.distribution_metrics`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from dmfn_lightning.metrics.distribution import DistributionMetrics
from dmfn_lightning.metrics.suite import InpaintingMetrics

__all__ = ["MetricOptions"]


@dataclass(frozen=True)
class MetricOptions:
    """How an evaluation computes its metrics (every field has the default of ``conf/eval.yaml``).

    Attributes:
        lpips: ``True`` (missing trunk weights stop the run), ``"auto"`` (skipped with a warning when missing) or
            ``False``; see :class:`~dmfn_lightning.metrics.suite.InpaintingMetrics`.
        lpips_net, lpips_backbone_weights: the LPIPS trunk (``alex`` or ``vgg``) and its weights (``imagenet``,
            ``random`` or a file); see :class:`~dmfn_lightning.metrics.perceptual.LPIPSMetric`.
        ssim: the headline SSIM convention (``full``, ``cropped`` or ``uniform7``).
        fid, kid: also compute FID / KID over the whole test set
            (:class:`~dmfn_lightning.metrics.distribution.DistributionMetrics`).
        inception_weights: ``auto`` (torch.hub's cache) or the Inception weights file.
        feature_extractor: a module ``uint8 [B, 3, H, W] -> [B, d]`` used for FID/KID instead of Inception v3.
        kid_subsets, kid_subset_size: KID's subsets (the size is clamped to the number of images).
        lpips_override, inception_override: the setting a missing-weights error tells the user to change: the
            config keys by default, the command line's flags for ``manifest score``.
    """

    lpips: bool | str = True
    lpips_net: str = "alex"
    lpips_backbone_weights: str = "imagenet"
    ssim: str = "full"
    fid: bool = False
    kid: bool = False
    inception_weights: str = "auto"
    feature_extractor: nn.Module | None = None
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    lpips_override: str = "lpips.backbone_weights"
    inception_override: str = "metrics.inception_weights"

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], feature_extractor: nn.Module | None = None) -> MetricOptions:
        """The options of an evaluation config (``lpips.enabled``, ``lpips.net``, ``lpips.backbone_weights``,
        ``metrics.*``; missing ``metrics`` keys take their defaults)."""
        metric_cfg = cfg.get("metrics") or {}
        return cls(
            lpips=bool(cfg["lpips"]["enabled"]),
            lpips_net=str(cfg["lpips"]["net"]),
            lpips_backbone_weights=str(cfg["lpips"]["backbone_weights"]),
            ssim=str(metric_cfg.get("ssim", cls.ssim)),
            fid=bool(metric_cfg.get("fid", cls.fid)),
            kid=bool(metric_cfg.get("kid", cls.kid)),
            inception_weights=str(metric_cfg.get("inception_weights", cls.inception_weights)),
            feature_extractor=feature_extractor,
            kid_subsets=int(metric_cfg.get("kid_subsets", cls.kid_subsets)),
            kid_subset_size=int(metric_cfg.get("kid_subset_size", cls.kid_subset_size)),
        )

    @property
    def fid_kid(self) -> bool:
        """Whether FID or KID is asked for."""
        return bool(self.fid or self.kid)

    def inpainting_metrics(self, **kwargs: Any) -> InpaintingMetrics:
        """The per-image metrics (PSNR, SSIM, LPIPS, L1) under these options; ``kwargs`` go to the metric."""
        return InpaintingMetrics(
            lpips=self.lpips,
            lpips_net=self.lpips_net,
            lpips_backbone_weights=self.lpips_backbone_weights,
            lpips_override=self.lpips_override,
            ssim=self.ssim,
            **kwargs,
        )

    def distribution_metrics(self, seed: int = 0) -> DistributionMetrics:
        """FID/KID under these options (KID's subsets drawn with ``seed``); raises
        :class:`~dmfn_lightning.core.errors.FeatureExtractorUnavailableError` without the Inception weights."""
        return DistributionMetrics(
            fid=self.fid,
            kid=self.kid,
            feature=self.feature_extractor,
            weights=str(self.inception_weights),
            kid_subsets=self.kid_subsets,
            kid_subset_size=self.kid_subset_size,
            seed=seed,
            override=self.inception_override,
        )
