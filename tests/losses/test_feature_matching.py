"""losses.feature_matching: the VGG and discriminator feature-matching terms (eqs. 3 and 8) with the default
1000 / C^2 layer weights and explicit ones, by hand, and their gradients (output side only)."""

from __future__ import annotations

import pytest
import torch

from dmfn_lightning.losses import discriminator_feature_matching_loss, vgg_feature_matching_loss
from tests.losses.loss_fakes import VGG_CHANNELS, close, t


def test_vgg_feature_matching_default_weights_are_1000_over_c_squared():
    out = [t([1.0, 3.0]).view(1, 2, 1, 1), torch.ones(1, 4, 1, 1)]
    gt = [torch.zeros(1, 2, 1, 1), torch.zeros(1, 4, 1, 1)]
    # level 1: C = 2, w = 1000/4 = 250, mean |d| = 2 -> 500; level 2: C = 4, w = 62.5, mean |d| = 1 -> 62.5
    close(vgg_feature_matching_loss(out, gt), 562.5)
    close(vgg_feature_matching_loss(out, gt, weights=[1.0, 2.0]), 2 * 1 + 1 * 2)


def test_vgg_feature_matching_with_paper_channel_counts():
    out = [torch.full((1, c, 2, 2), 0.5) for c in VGG_CHANNELS]
    gt = [torch.zeros(1, c, 2, 2) for c in VGG_CHANNELS]
    expected = sum(1000 / c**2 * 0.5 for c in VGG_CHANNELS)
    close(vgg_feature_matching_loss(out, gt), expected)
    close(vgg_feature_matching_loss(out, gt), 0.5 * (1000 / 4096 + 1000 / 16384 + 1000 / 65536 + 2000 / 262144))


def test_discriminator_feature_matching_hand_values():
    fake = [t([[[[2.0, -2.0]]]]), t([[[[1.0]], [[1.0]]]])]  # [1,1,1,2] (C=1) and [1,2,1,1] (C=2)
    real = [t([[[[0.0, 0.0]]]]), t([[[[3.0]], [[1.0]]]])]
    # C=1: w = 1000, mean |d| = 2 -> 2000; C=2: w = 250, mean |d| = (2 + 0)/2 = 1 -> 250
    close(discriminator_feature_matching_loss(fake, real), 2250.0)
    close(discriminator_feature_matching_loss(fake, real, weights=[0.5, 3.0]), 0.5 * 2 + 3.0 * 1)


@pytest.mark.parametrize("name", ["vgg", "dis"])
def test_feature_matching_gradients_reach_the_output_side_only(name):
    fn = vgg_feature_matching_loss if name == "vgg" else discriminator_feature_matching_loss
    fake = [torch.randn(2, c, 3, 3, requires_grad=True) for c in (2, 4)]
    real = [torch.randn(2, c, 3, 3, requires_grad=True) for c in (2, 4)]
    grads = torch.autograd.grad(fn(fake, real), [*fake, *real], allow_unused=True)
    assert all(g is not None and g.abs().sum() > 0 for g in grads[:2])
    assert grads[2] is None and grads[3] is None
    # d/dx of w * mean|x - y| is w * sign(x - y) / numel
    torch.testing.assert_close(grads[0], 250.0 * torch.sign(fake[0] - real[0]).detach() / fake[0].numel())
