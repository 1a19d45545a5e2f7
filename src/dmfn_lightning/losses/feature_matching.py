"""Feature-matching losses: VGG (eq. 8) and discriminator (eq. 9) of arXiv:2002.02609."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor


def default_layer_weights(feats: Sequence[Tensor]) -> list[float]:
    """w^l = 1000 / C_l^2 for each map, C_l its channel count (the released configuration).

    Read from the maps rather than hard-coded so a narrower discriminator (``base_channels < 64``) or a test's
    small maps are weighted consistently with the 64..512-channel networks of the paper.
    """
    return [1000.0 / float(f.shape[1]) ** 2 for f in feats]


def resolve_layer_weights(feats: Sequence[Tensor], weights: Sequence[float] | None, what: str) -> list[float]:
    """``weights`` as floats, or the 1000 / C_l^2 default; raises ValueError when the counts differ."""
    if weights is None:
        return default_layer_weights(feats)
    weights = [float(w) for w in weights]
    if len(weights) != len(feats):
        raise ValueError(f"{what}: got {len(weights)} layer weights for {len(feats)} feature maps")
    return weights


def _check_pairs(fake: Sequence[Tensor], real: Sequence[Tensor], what: str) -> None:
    if len(fake) != len(real) or not fake:
        raise ValueError(f"{what}: expected two equally long, non-empty lists of maps, got {len(fake)} and {len(real)}")
    for i, (a, b) in enumerate(zip(fake, real)):
        if a.shape != b.shape:
            raise ValueError(
                f"{what}: map {i} has shape {tuple(a.shape)} on one side and {tuple(b.shape)} on the other"
            )


def _weighted_l1(fake: Sequence[Tensor], real: Sequence[Tensor], weights: Sequence[float]) -> Tensor:
    # The real/target side is a fixed regression target: detaching it keeps these terms from pushing the
    # (frozen) VGG or the discriminator towards the fake.
    return sum(w * F.l1_loss(a, b.detach()) for w, a, b in zip(weights, fake, real))


def vgg_feature_matching_loss(
    output_feats: Sequence[Tensor], target_feats: Sequence[Tensor], weights: Sequence[float] | None = None
) -> Tensor:
    """L_fm_vgg (eq. 8): sum_l w^l mean|Psi^l(I_gt) - Psi^l(I_out)| over the given VGG maps.

    ``output_feats``/``target_feats``: the relu1_1..relu5_1 maps of the output and the ground truth. ``weights``
    defaults to w^l = 1000 / C_l^2. Gradients reach the output side only.
    """
    _check_pairs(output_feats, target_feats, "vgg_feature_matching_loss")
    return _weighted_l1(
        output_feats, target_feats, resolve_layer_weights(output_feats, weights, "vgg_feature_matching_loss")
    )


def discriminator_feature_matching_loss(
    fake_feats: Sequence[Tensor], real_feats: Sequence[Tensor], weights: Sequence[float] | None = None
) -> Tensor:
    """L_fm_dis (eq. 9): sum_l w^l mean|D^l(I_gt) - D^l(I_out)| over the local-branch discriminator maps.

    The real side is detached; ``weights`` defaults to w^l = 1000 / C_l^2.
    """
    _check_pairs(fake_feats, real_feats, "discriminator_feature_matching_loss")
    return _weighted_l1(
        fake_feats, real_feats, resolve_layer_weights(fake_feats, weights, "discriminator_feature_matching_loss")
    )
