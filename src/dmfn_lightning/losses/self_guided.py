"""Self-guided regression loss (eqs. 2-5 of arXiv:2002.02609)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from dmfn_lightning.losses.feature_matching import resolve_layer_weights

NORMALIZATIONS = ("minmax", "max")


def error_map(output: Tensor, target: Tensor) -> Tensor:
    """M_error (eq. 2): mean over the RGB channels of the squared error, shape [N, 1, H, W].

    Built from the detached output: the map only says *where* to look, it is not itself optimised.
    """
    return (output.detach() - target.detach()).pow(2).mean(dim=1, keepdim=True)


def guidance_map(error: Tensor, normalization: str = "minmax") -> Tensor:
    """M_guidance (eq. 3): ``error`` normalised per image to [0, 1].

    ``"minmax"`` (the paper): (M - min M) / (max M - min M). ``"max"`` (the released code): M / max M.
    A constant map (max == min, e.g. output == target) has no harder region to point at, so its guidance is 0
    rather than 0/0; with ``"max"`` an all-zero map likewise gives 0.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization={normalization!r} is not one of {', '.join(NORMALIZATIONS)}")
    peak = error.amax(dim=(1, 2, 3), keepdim=True)
    floor = error.amin(dim=(1, 2, 3), keepdim=True) if normalization == "minmax" else torch.zeros_like(peak)
    span = peak - floor
    # Where span == 0 the numerator is 0 too: dividing by 1 there yields the guard's 0 without a host sync.
    return (error - floor) / torch.where(span > 0, span, torch.ones_like(span))


def self_guided_regression_loss(
    output: Tensor,
    target: Tensor,
    output_feats: Sequence[Tensor],
    target_feats: Sequence[Tensor],
    weights: Sequence[float] | None = None,
    normalization: str = "minmax",
) -> Tensor:
    """L_sg (eqs. 2-5): sum_{l=1,2} w^l mean(M^l * |Psi^l(I_gt) - Psi^l(I_out)|).

    ``output``/``target``: [N, 3, H, W] images (the composited output and the ground truth) that define the error
    map (eq. 2, detached output). ``output_feats``/``target_feats``: their relu1_1 and relu2_1 VGG maps
    ([N, C1, H, W] and [N, C2, H/2, W/2]). M^1 is the guidance map (eq. 3), M^2 = AvgPool2x2(M^1) (eq. 4).
    ``weights`` defaults to w^l = 1000 / C_l^2. ``normalization``: ``"minmax"`` (paper) or ``"max"`` (released code).

    With a composited output the known pixels have zero error, so min M = 0 and both normalisations agree unless
    the hole covers the whole image; then vgg_fm + L_sg equals the released (1 + M / max M) weighting of levels 1-2.
    """
    if len(output_feats) != 2 or len(target_feats) != 2:
        raise ValueError(
            "self_guided_regression_loss takes the relu1_1 and relu2_1 maps (2 per side), got "
            f"{len(output_feats)} and {len(target_feats)}"
        )
    weights = resolve_layer_weights(output_feats, weights, "self_guided_regression_loss")
    guidance = guidance_map(error_map(output, target), normalization)
    levels = (guidance, F.avg_pool2d(guidance, kernel_size=2, stride=2))
    total = output.new_zeros(())
    for level, (w, m, out_f, tgt_f) in enumerate(zip(weights, levels, output_feats, target_feats), start=1):
        if m.shape[-2:] != out_f.shape[-2:] or out_f.shape != tgt_f.shape:
            raise ValueError(
                f"self_guided_regression_loss: level {level} guidance is {tuple(m.shape[-2:])} but the maps are "
                f"{tuple(out_f.shape)} and {tuple(tgt_f.shape)} (expected relu1_1 at the image size, relu2_1 at half)"
            )
        total = total + w * (m * (out_f - tgt_f.detach()).abs()).mean()
    return total
