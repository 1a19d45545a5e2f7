"""FID and KID over a whole test set (torchmetrics), sharing one Inception v3 pass per image.

:class:`DistributionMetrics` wraps torchmetrics' ``FrechetInceptionDistance`` (Heusel et al., NeurIPS 2017:
``||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2))`` of the Inception pool features) and
``KernelInceptionDistance`` (Binkowski et al., ICLR 2018: the unbiased MMD^2 with a cubic polynomial kernel,
averaged over random subsets). Composited outputs (fake) are compared with ground truths (real), both uint8 as for
every other metric. The Inception weights are torch-fidelity's file in torch.hub's cache
(:data:`INCEPTION_WEIGHTS_FILE`); when it is missing, :func:`inception_feature_extractor` says in one line where to
put it. KID's random subsets are drawn from a seeded generator, so two evaluations agree.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dmfn_lightning.core.errors import FeatureExtractorUnavailableError, WeightsUnavailableError
from dmfn_lightning.core.weights import resolve_pretrained, torch_hub_checkpoint_dir
from dmfn_lightning.metrics.pixel import quantize

__all__ = [
    "INCEPTION_WEIGHTS_FILE",
    "INCEPTION_WEIGHTS_URL",
    "DistributionMetrics",
    "inception_feature_extractor",
    "inception_weights_path",
]


# torch-fidelity's Inception v3 (the TensorFlow FID network converted to PyTorch), which torchmetrics' FID and KID
# load; torch.hub caches it under this file name.
INCEPTION_WEIGHTS_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
)
INCEPTION_WEIGHTS_FILE = INCEPTION_WEIGHTS_URL.rsplit("/", 1)[-1]


def inception_weights_path() -> Path:
    """Where torchmetrics / torch-fidelity look for the Inception weights: ``$TORCH_HOME/hub/checkpoints/<file>``."""
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

    def settings(self) -> dict[str, Any]:
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
