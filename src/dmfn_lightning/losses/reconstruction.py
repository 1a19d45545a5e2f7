"""Reconstruction loss (L_mae of eq. 1 in Hui et al., "Image Fine-grained Inpainting", arXiv:2002.02609)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def reconstruction_loss(output: Tensor, target: Tensor) -> Tensor:
    """L_mae (eq. 1): mean absolute error between the composited output and the ground truth.

    Averaged over every element of the whole image (known pixels contribute zero for a composited output, so the
    value is smaller than a hole-only mean, as in the released code). The target is a constant.
    """
    return F.l1_loss(output, target.detach())
