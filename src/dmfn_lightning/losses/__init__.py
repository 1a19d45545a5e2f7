"""The DMFN losses (Hui et al., "Image Fine-grained Inpainting", arXiv:2002.02609, eqs. 1-10; docs/design.md).

A functional core (pure functions on tensors) and :class:`DMFNLoss`, which combines them with the weights of
``conf/loss/*.yaml``.
"""

from dmfn_lightning.losses.adversarial import (
    GAN_TYPES,
    adversarial_loss,
    hinge_gan_loss,
    lsgan_loss,
    relativistic_average_gan_loss,
    vanilla_gan_loss,
)
from dmfn_lightning.losses.alignment import feature_centres, geometrical_alignment_loss
from dmfn_lightning.losses.dmfn_loss import DISCRIMINATOR_TERMS, GENERATOR_TERMS, DMFNLoss
from dmfn_lightning.losses.feature_matching import (
    default_layer_weights,
    discriminator_feature_matching_loss,
    vgg_feature_matching_loss,
)
from dmfn_lightning.losses.reconstruction import reconstruction_loss
from dmfn_lightning.losses.self_guided import error_map, guidance_map, self_guided_regression_loss

__all__ = [
    "DISCRIMINATOR_TERMS",
    "GAN_TYPES",
    "GENERATOR_TERMS",
    "DMFNLoss",
    "adversarial_loss",
    "default_layer_weights",
    "discriminator_feature_matching_loss",
    "error_map",
    "feature_centres",
    "geometrical_alignment_loss",
    "guidance_map",
    "hinge_gan_loss",
    "lsgan_loss",
    "reconstruction_loss",
    "relativistic_average_gan_loss",
    "self_guided_regression_loss",
    "vanilla_gan_loss",
    "vgg_feature_matching_loss",
]
