"""Helpers shared by the loss tests (tests/losses/): hand-value shorthands, a VGG19 stand-in with its channel counts,
the released code's feature term, and random feature and discriminator outputs."""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

VGG_CHANNELS = (64, 128, 256, 512, 512)


def t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def softplus(x: float) -> float:
    """log(1 + e^x): BCE-with-logits of x against label 0 (and of -x against label 1)."""
    return math.log1p(math.exp(x))


def close(actual: torch.Tensor, expected: float, tol: float = 1e-6) -> None:
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=actual.dtype), rtol=tol, atol=tol)


def vgg_like_features(seed: int = 0, dtype=torch.float32) -> nn.Module:
    """Random stand-in for VGG19 with the same channel counts and resolutions (relu1_1 at H, relu2_1 at H/2...)."""
    torch.manual_seed(seed)

    class Features(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            chans = (3, *VGG_CHANNELS)
            self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in itertools.pairwise(chans))

        def forward(self, x):
            feats = []
            for i, conv in enumerate(self.convs):
                x = torch.relu(conv(F.max_pool2d(x, 2) if i else x))
                feats.append(x)
            return feats

    return Features().to(dtype)


def released_vgg_term(output, target, out_feats, gt_feats) -> torch.Tensor:
    """The released code's feature term, written from its description: levels 1-2 weighted by (1 + M / max M)."""
    weights = [1e3 / n**2 for n in VGG_CHANNELS]
    error = torch.mean(torch.abs(output.detach() - target) ** 2, dim=1, keepdim=True)
    peak = error.max(dim=3, keepdim=True)[0].max(dim=2, keepdim=True)[0]
    m = error / peak
    maps = [1.0 + m, 1.0 + F.avg_pool2d(m, kernel_size=2, stride=2)]
    terms = []
    for i in range(5):
        if i < 2:
            mask = maps[i].expand(-1, out_feats[i].shape[1], -1, -1)
            terms.append(weights[i] * F.l1_loss(out_feats[i] * mask, gt_feats[i] * mask))
        else:
            terms.append(weights[i] * F.l1_loss(out_feats[i], gt_feats[i]))
    return sum(terms)


def dummy_discriminator_outputs(n: int = 2, seed: int = 3):
    torch.manual_seed(seed)
    fake_logits, real_logits = torch.randn(n, 1), torch.randn(n, 1)
    fake_dis = [torch.randn(n, c, s, s) for c, s in zip((4, 8, 8, 16, 16), (4, 2, 1, 1, 1))]
    real_dis = [torch.randn_like(f) for f in fake_dis]
    return fake_logits, real_logits, fake_dis, real_dis


def vgg_feats(n: int = 2, size: int = 8, fill: float | None = None, seed: int = 4):
    torch.manual_seed(seed)
    feats = []
    for i, c in enumerate(VGG_CHANNELS):
        s = max(size // 2**i, 1)
        feats.append(torch.full((n, c, s, s), fill) if fill is not None else torch.rand(n, c, s, s))
    return feats
