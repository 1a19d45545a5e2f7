"""Geometrical alignment constraint (eqs. 6-7 of arXiv:2002.02609)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

MODES = ("paper", "released")
EPSILON = 1e-7


def _coordinates(size: int, like: Tensor) -> Tensor:
    # u / W * 2 - 1 for u = 0..W-1, the released code's grid (it spans [-1, 1 - 2/W]).
    return torch.arange(size, device=like.device, dtype=like.dtype) / size * 2 - 1


def feature_centres(feat: Tensor, mode: str = "paper", eps: float = EPSILON) -> Tensor:
    """Centre of mass of every channel's response (eq. 6): [N, K, 2] as (horizontal, vertical) in [-1, 1).

    Each channel R (non-negative, e.g. after a ReLU) becomes p = (R + eps) / sum_uv (R + eps); its centre is
    sum_uv p * (u / W * 2 - 1, v / H * 2 - 1). ``mode="released"`` reproduces the authors' code, whose vertical
    coordinate map repeats the horizontal one, so both entries hold the horizontal centre. The epsilon makes an
    all-zero channel uniform (centre near 0) instead of 0/0.
    """
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not one of {', '.join(MODES)}")
    if feat.dim() != 4:
        raise ValueError(f"expected a [N, K, H, W] feature map, got shape {tuple(feat.shape)}")
    # float32 at least: under bf16 autocast, eps and sums over H*W would be rounded away.
    r = feat.float() if feat.dtype in (torch.float16, torch.bfloat16) else feat
    r = r + eps
    p = r / r.sum(dim=(2, 3), keepdim=True)
    h, w = p.shape[-2:]
    # Marginals instead of full coordinate grids: sum_uv p * u == sum_u (sum_v p) * u.
    horizontal = (p.sum(dim=2) * _coordinates(w, p)).sum(dim=-1)
    # The released code's "vertical" map also varies along the width (its bug, kept behind mode="released").
    vertical = horizontal if mode == "released" else (p.sum(dim=3) * _coordinates(h, p)).sum(dim=-1)
    return torch.stack((horizontal, vertical), dim=-1)


def geometrical_alignment_loss(output_feat: Tensor, target_feat: Tensor, mode: str = "paper") -> Tensor:
    """L_align (eq. 7) on relu4_1: mean squared difference of the [N, K, 2] channel centres.

    The paper writes a sum over channels; the mean is the released normalisation (it keeps gamma = 1 meaningful at
    any channel count). The target centres are detached. ``mode``: ``"paper"`` aligns both axes;
    ``"released"`` aligns only the horizontal centre, twice, like the authors' code.
    """
    if output_feat.shape != target_feat.shape:
        raise ValueError(
            f"geometrical_alignment_loss: shapes differ, {tuple(output_feat.shape)} vs {tuple(target_feat.shape)}"
        )
    return F.mse_loss(feature_centres(output_feat, mode), feature_centres(target_feat.detach(), mode))
