"""Adversarial losses: the relativistic average GAN of the paper (Section 3.3) and three common alternatives.

Every function takes the discriminator's logits on real and fake images ([N, 1]) and ``target``: ``"generator"``
(the generator's loss; real logits are treated as constants) or ``"discriminator"``. Discriminator losses average
their real and fake terms (1/2 each), as the released RaGAN does, so switching ``gan_type`` keeps D's loss on a
comparable scale.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor

TARGETS = ("generator", "discriminator")


def _check_target(target: str) -> None:
    if target not in TARGETS:
        raise ValueError(f"target={target!r} is not one of {', '.join(TARGETS)}")


def _bce(logits: Tensor, label: float) -> Tensor:
    # BCE-with-logits against a constant label, without materialising a label tensor.
    return F.softplus(-logits).mean() if label == 1.0 else F.softplus(logits).mean()


def relativistic_average_gan_loss(real_logits: Tensor, fake_logits: Tensor, target: str = "generator") -> Tensor:
    """RaGAN (Jolicoeur-Martineau 2018) in BCE-with-logits form, as used by DMFN (Section 3.3, eq. 10's L_adv).

    G: 1/2 [BCE(D(gt) - mean D(out), 0) + BCE(D(out) - mean D(gt), 1)];
    D: 1/2 [BCE(D(gt) - mean D(out), 1) + BCE(D(out) - mean D(gt), 0)]; means over the batch.
    """
    _check_target(target)
    if target == "generator":
        # Real images do not depend on G: their logits are constants of the generator step.
        real_logits = real_logits.detach()
    real_rel = real_logits - fake_logits.mean()
    fake_rel = fake_logits - real_logits.mean()
    if target == "generator":
        return 0.5 * (_bce(real_rel, 0.0) + _bce(fake_rel, 1.0))
    return 0.5 * (_bce(real_rel, 1.0) + _bce(fake_rel, 0.0))


def vanilla_gan_loss(real_logits: Tensor, fake_logits: Tensor, target: str = "generator") -> Tensor:
    """Non-saturating GAN: G: BCE(D(out), 1); D: 1/2 [BCE(D(gt), 1) + BCE(D(out), 0)]."""
    _check_target(target)
    if target == "generator":
        return _bce(fake_logits, 1.0)
    return 0.5 * (_bce(real_logits, 1.0) + _bce(fake_logits, 0.0))


def lsgan_loss(real_logits: Tensor, fake_logits: Tensor, target: str = "generator") -> Tensor:
    """Least-squares GAN: G: mean (D(out) - 1)^2; D: 1/2 [mean (D(gt) - 1)^2 + mean D(out)^2]."""
    _check_target(target)
    if target == "generator":
        return (fake_logits - 1).pow(2).mean()
    return 0.5 * ((real_logits - 1).pow(2).mean() + fake_logits.pow(2).mean())


def hinge_gan_loss(real_logits: Tensor, fake_logits: Tensor, target: str = "generator") -> Tensor:
    """Hinge GAN: G: -mean D(out); D: 1/2 [mean relu(1 - D(gt)) + mean relu(1 + D(out))]."""
    _check_target(target)
    if target == "generator":
        return -fake_logits.mean()
    return 0.5 * (F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean())


GAN_LOSSES: dict[str, Callable[[Tensor, Tensor, str], Tensor]] = {
    "ragan": relativistic_average_gan_loss,
    "vanilla": vanilla_gan_loss,
    "lsgan": lsgan_loss,
    "hinge": hinge_gan_loss,
}
GAN_TYPES = tuple(GAN_LOSSES)


def adversarial_loss(kind: str, real_logits: Tensor, fake_logits: Tensor, target: str = "generator") -> Tensor:
    """Dispatch to the adversarial loss named ``kind`` (``ragan``, ``vanilla``, ``lsgan`` or ``hinge``)."""
    if kind not in GAN_LOSSES:
        raise ValueError(f"gan type {kind!r} is not one of {', '.join(GAN_TYPES)}")
    return GAN_LOSSES[kind](real_logits, fake_logits, target)
