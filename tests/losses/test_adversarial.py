"""losses.adversarial: the relativistic average GAN loss (eqs. 9-10) and the vanilla, LSGAN and hinge
alternatives by hand, the dispatch by name, and the generator term's gradient."""

from __future__ import annotations

import pytest
import torch

from dmfn_lightning.losses import (
    GAN_TYPES,
    adversarial_loss,
    hinge_gan_loss,
    lsgan_loss,
    relativistic_average_gan_loss,
    vanilla_gan_loss,
)
from tests.losses.loss_fakes import close, softplus, t


def test_ragan_by_hand_with_softplus():
    real = t([[4.0], [0.0], [5.0]])  # mean 3
    fake = t([[1.0], [-1.0], [3.0]])  # mean 1
    # real - mean(fake) = (3, -1, 4); fake - mean(real) = (-2, -4, 0)
    # BCE(x, 0) = softplus(x); BCE(x, 1) = softplus(-x)
    g = 0.5 * ((softplus(3) + softplus(-1) + softplus(4)) / 3 + (softplus(2) + softplus(4) + softplus(0)) / 3)
    d = 0.5 * ((softplus(-3) + softplus(1) + softplus(-4)) / 3 + (softplus(-2) + softplus(-4) + softplus(0)) / 3)
    close(relativistic_average_gan_loss(real, fake, "generator"), g)
    close(relativistic_average_gan_loss(real, fake, "discriminator"), d)
    close(adversarial_loss("ragan", real, fake, "generator"), g)


def test_other_gan_losses_by_hand():
    real = t([[2.0], [0.0]])
    fake = t([[1.0], [-3.0]])
    close(vanilla_gan_loss(real, fake, "generator"), (softplus(-1) + softplus(3)) / 2)
    close(
        vanilla_gan_loss(real, fake, "discriminator"),
        0.5 * ((softplus(-2) + softplus(0)) / 2 + (softplus(1) + softplus(-3)) / 2),
    )
    close(lsgan_loss(real, fake, "generator"), ((1 - 1) ** 2 + (-3 - 1) ** 2) / 2)  # 8
    close(lsgan_loss(real, fake, "discriminator"), 0.5 * ((1 + 1) / 2 + (1 + 9) / 2))  # 3.5
    close(hinge_gan_loss(real, fake, "generator"), 1.0)  # -mean(1, -3)
    close(hinge_gan_loss(real, fake, "discriminator"), 0.5 * ((0 + 1) / 2 + (2 + 0) / 2))  # 0.75
    # the generator term of the non-relativistic losses ignores the real logits
    for fn in (vanilla_gan_loss, lsgan_loss, hinge_gan_loss):
        close(fn(real * 7 - 3, fake, "generator"), float(fn(real, fake, "generator")))


def test_adversarial_dispatch_and_errors():
    real, fake = torch.randn(4, 1), torch.randn(4, 1)
    functions = {"ragan": relativistic_average_gan_loss, "vanilla": vanilla_gan_loss, "lsgan": lsgan_loss}
    functions["hinge"] = hinge_gan_loss
    assert set(GAN_TYPES) == set(functions)
    for kind, fn in functions.items():
        for target in ("generator", "discriminator"):
            torch.testing.assert_close(adversarial_loss(kind, real, fake, target), fn(real, fake, target))
    with pytest.raises(ValueError, match=r"'wgan'.*ragan, vanilla, lsgan, hinge"):
        adversarial_loss("wgan", real, fake, "generator")
    with pytest.raises(ValueError, match=r"'critic'.*generator, discriminator"):
        adversarial_loss("ragan", real, fake, "critic")
    with pytest.raises(ValueError, match="'gen'"):
        hinge_gan_loss(real, fake, "gen")


def test_ragan_generator_term_does_not_backpropagate_into_real_logits():
    real = torch.randn(4, 1, requires_grad=True)
    fake = torch.randn(4, 1, requires_grad=True)
    g_real, g_fake = torch.autograd.grad(relativistic_average_gan_loss(real, fake), [real, fake], allow_unused=True)
    assert g_real is None and g_fake.abs().sum() > 0
    d_real, d_fake = torch.autograd.grad(relativistic_average_gan_loss(real, fake, "discriminator"), [real, fake])
    assert d_real.abs().sum() > 0 and d_fake.abs().sum() > 0
