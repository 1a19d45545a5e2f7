"""Frozen VGG19 feature extractor for the perceptual losses (eqs. 2-8 of the paper)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dmfn_lightning.core.errors import WeightsUnavailableError
from dmfn_lightning.core.weights import load_weights, resolve_pretrained, warn_random

# Indices in torchvision's vgg19().features right after relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1.
_SLICE_ENDS = (2, 7, 12, 21, 30)
LAYER_NAMES = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
LAYER_CHANNELS = (64, 128, 256, 512, 512)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# imagenet: the correct mapping of [-1, 1] images to torchvision's input statistics. released: the authors' code,
# (x - (mean - 1)) / (2 * std), which equals the imagenet input shifted by +mean / (2 * std) per channel.
NORMALIZATIONS = ("imagenet", "released")


class VGG19Features(nn.Module):
    """The five ``relu*_1`` maps of VGG19 for images in [-1, 1].

    ``weights``: ``"imagenet"`` (torchvision's cached file, see :mod:`dmfn_lightning.core.weights`), a path to a VGG19
    state dict, or ``"random"``. ``fallback_to_random=True`` (the offline demo only) turns a missing ImageNet file
    into a loud warning instead of an error; ``self.weights_used`` records what was actually loaded.
    The network is frozen and stays in eval mode whatever ``train()`` is called with.

    ``normalization`` maps the [-1, 1] input to VGG's input space (:meth:`normalize`): ``"imagenet"`` (default,
    correct) is ``((x + 1) / 2 - mean) / std``; ``"released"`` is the authors' ``(x - (mean - 1)) / (2 * std)``,
    which is the ImageNet input plus ``mean / (2 * std)`` = (1.059, 1.018, 0.902) per RGB channel, i.e. about
    one standard deviation too bright. It changes every perceptual term of the objective (eqs. 2-8).
    """

    def __init__(
        self, weights: str = "imagenet", fallback_to_random: bool = False, normalization: str = "imagenet"
    ) -> None:
        super().__init__()
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"invalid config: model.vgg.normalization={normalization!r}; allowed: {', '.join(NORMALIZATIONS)}"
            )
        self.normalization = normalization
        # torchvision.models costs ~1.3 s to import: here, so that the inference CLIs start without it.
        from torchvision.models import vgg19

        features = vgg19(weights=None).features[: _SLICE_ENDS[-1]]
        self.weights_used = self._load(features, weights, fallback_to_random)
        starts = (0, *_SLICE_ENDS[:-1])
        self.slices = nn.ModuleList(features[a:b] for a, b in zip(starts, _SLICE_ENDS))
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        self.requires_grad_(False)
        self.eval()

    @staticmethod
    def _load(features: nn.Sequential, weights: str, fallback_to_random: bool) -> str:
        if weights == "random":
            warn_random("VGG19Features")
            return "random"
        try:
            from torchvision.models import VGG19_Weights

            url = VGG19_Weights.IMAGENET1K_V1.url
            path = resolve_pretrained("VGG19", url, "model.vgg.weights", weights)
        except WeightsUnavailableError:
            if not fallback_to_random:
                raise
            warn_random("VGG19Features (ImageNet file missing, fallback_to_random=true)")
            return "random"
        # a damaged file or one holding pickled objects stops with one line (CheckpointError), never falls back
        state = load_weights(path, "VGG19", "model.vgg.weights", url)
        prefix = "features."
        state = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix) or k[0].isdigit()}
        state = {k: v for k, v in state.items() if int(k.split(".")[0]) < _SLICE_ENDS[-1]}
        missing, unexpected = features.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise WeightsUnavailableError(
                f"{path} is not a torchvision VGG19 state dict (missing keys {missing[:4]}, "
                f"unexpected keys {unexpected[:4]})"
            )
        return str(path)

    def train(self, mode: bool = True) -> VGG19Features:
        return super().train(False)

    def normalize(self, x: Tensor) -> Tensor:
        """The network input for images ``x`` in [-1, 1], per ``self.normalization`` (see the class docstring)."""
        if self.normalization == "released":
            return (x - (self.mean - 1)) / (2 * self.std)
        return ((x + 1) / 2 - self.mean) / self.std

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.normalize(x)
        feats = []
        for block in self.slices:
            x = block(x)
            feats.append(x)
        return feats
