"""losses.reconstruction: the L_mae term (eq. 1), by hand: a mean over the whole image, the target a constant."""

from __future__ import annotations

import torch

from dmfn_lightning.losses import reconstruction_loss
from tests.losses.loss_fakes import close, t


def test_reconstruction_loss_is_mean_absolute_error():
    out = t([[[[1.0, 2.0], [3.0, 4.0]]]])
    gt = t([[[[0.0, 2.0], [5.0, 4.0]]]])
    close(reconstruction_loss(out, gt), (1 + 0 + 2 + 0) / 4)


def test_reconstruction_averages_over_the_whole_image_and_does_not_train_the_target():
    target = torch.zeros(2, 3, 4, 4, requires_grad=True)
    output = target.detach().clone()
    output[:, :, 1:3, 1:3] = 2.0  # a composited output: 4 of 16 pixels predicted, each off by 2
    output.requires_grad_(True)
    loss = reconstruction_loss(output, target)
    close(loss, 2 * 4 / 16)  # known pixels count in the mean with zero error: 0.5, not the hole-only 2
    g_out, g_target = torch.autograd.grad(loss, [output, target], allow_unused=True)
    assert g_target is None
    expected = torch.zeros_like(output)
    expected[:, :, 1:3, 1:3] = 1 / output.numel()  # d/dx mean|x - y| = sign(x - y) / numel (0 where equal)
    torch.testing.assert_close(g_out, expected)
