"""The global-local discriminator (Section 3.3 of the paper) and the crop of its local window."""

from __future__ import annotations

import itertools
import os
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from dmfn_lightning.core.errors import CheckpointError
from dmfn_lightning.models.bundles import CONFIG_FILE, DISCRIMINATOR_FILE, load_bundle
from dmfn_lightning.models.generator import init_weights
from dmfn_lightning.models.state_dicts import state_mismatch

_CHANNELS = (64, 128, 256, 512, 512, 512)


class _Branch(nn.Module):
    """``depth`` x [Conv5x5 s2, BatchNorm, LeakyReLU(0.2)], then a Linear to 512 features."""

    def __init__(self, depth: int, input_size: int, base_channels: int, sn: bool) -> None:
        super().__init__()
        wrap = spectral_norm if sn else (lambda m: m)
        channels = [3] + [c * base_channels // 64 for c in _CHANNELS[:depth]]
        self.layers = nn.ModuleList(
            nn.Sequential(
                wrap(nn.Conv2d(cin, cout, 5, stride=2, padding=2)),
                nn.BatchNorm2d(cout),
                nn.LeakyReLU(0.2, inplace=True),
            )
            for cin, cout in itertools.pairwise(channels)
        )
        side = input_size // 2**depth
        self.linear = wrap(nn.Linear(channels[-1] * side * side, 512))

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        feats = []
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return self.linear(x.flatten(1)), feats


class GlobalLocalDiscriminator(nn.Module):
    """Global branch on the whole image (6 stride-2 convs), local branch on the H/2 x W/2 window around the hole
    (5 stride-2 convs); their 512-d codes are concatenated and mapped to one logit.

    ``forward(image, patch)`` returns ``(logit [N, 1], local_features)`` where ``local_features`` are the five
    local-branch maps used by the discriminator feature-matching loss (eq. 9).
    """

    def __init__(self, image_size: int = 256, base_channels: int = 64, spectral_norm: bool = False) -> None:
        super().__init__()
        if image_size % 64:
            raise ValueError(
                f"image_size={image_size} must be divisible by 64 (six stride-2 convs in the global branch)"
            )
        self.image_size = image_size
        # The constructor arguments, as a weights bundle's config.json records them to rebuild this network.
        self.config = {"image_size": image_size, "base_channels": base_channels, "spectral_norm": spectral_norm}
        self.global_branch = _Branch(6, image_size, base_channels, spectral_norm)
        self.local_branch = _Branch(5, image_size // 2, base_channels, spectral_norm)
        self.act = nn.LeakyReLU(0.2)
        self.classifier = nn.Linear(1024, 1)
        init_weights(self)

    @classmethod
    def from_pretrained(cls, reference: str | os.PathLike, **hub: Any) -> GlobalLocalDiscriminator:
        """The discriminator of a weights bundle (a folder or a Hub id; ``hub``: ``revision``, ``cache_dir``,
        ``local_files_only``, ``token``), built from its ``config.json`` and loaded strictly from its
        ``discriminator.safetensors``; see :mod:`dmfn_lightning.models.bundles`."""
        bundle = load_bundle(reference, **hub)
        config = bundle.network_config("discriminator")
        state = bundle.discriminator_state()
        try:
            discriminator = cls(**config)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{bundle.folder / CONFIG_FILE} has an unusable discriminator config: {exc}") from exc
        mismatch = state_mismatch(discriminator.state_dict(), state)
        if mismatch:
            raise CheckpointError(
                f"{bundle.folder / DISCRIMINATOR_FILE} does not match its config {config}: {mismatch}"
            )
        discriminator.load_state_dict(state, strict=True)
        return discriminator.eval()

    def forward(self, image: Tensor, patch: Tensor) -> tuple[Tensor, list[Tensor]]:
        if image.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"discriminator built for {self.image_size}x{self.image_size} images, got {tuple(image.shape[-2:])}"
            )
        global_code, _ = self.global_branch(image)
        local_code, local_feats = self.local_branch(patch)
        logit = self.classifier(self.act(torch.cat([global_code, local_code], dim=1)))
        return logit, local_feats


def crop_local(images: Tensor, bbox: Tensor) -> Tensor:
    """Cut each image's local-discriminator window ``bbox[i] = (top, left, height, width)`` in one gather.

    All windows in a batch share one size (H/2 x W/2), so the crop is a single advanced-indexing op rather than a
    Python loop over samples (no host-device sync).
    """
    n, c = images.shape[:2]
    h, w = images.shape[-2] // 2, images.shape[-1] // 2
    bbox = bbox.to(images.device)
    rows = bbox[:, 0, None] + torch.arange(h, device=images.device)  # [N, h]
    cols = bbox[:, 1, None] + torch.arange(w, device=images.device)  # [N, w]
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    chan = torch.arange(c, device=images.device)[None, :, None, None]
    return images[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]
