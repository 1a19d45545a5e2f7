"""DMFNLoss: the full DMFN objective (eq. 10 of arXiv:2002.02609) with the released weights."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

from torch import Tensor, nn

from dmfn_lightning.core.errors import ConfigError
from dmfn_lightning.losses.adversarial import GAN_TYPES, adversarial_loss
from dmfn_lightning.losses.alignment import MODES as ALIGNMENT_MODES
from dmfn_lightning.losses.alignment import geometrical_alignment_loss
from dmfn_lightning.losses.feature_matching import discriminator_feature_matching_loss, vgg_feature_matching_loss
from dmfn_lightning.losses.reconstruction import reconstruction_loss
from dmfn_lightning.losses.self_guided import NORMALIZATIONS, self_guided_regression_loss

GENERATOR_TERMS = ("reconstruction", "vgg_fm", "self_guided", "alignment", "dis_fm", "adversarial", "total")
DISCRIMINATOR_TERMS = ("adversarial", "total")
NUM_VGG_MAPS = 5  # relu1_1 .. relu5_1
ALIGNMENT_LEVEL = 3  # relu4_1


def _weight(key: str, value) -> float:
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value) and value >= 0
    if not ok:
        raise ConfigError(f"invalid config: loss.{key}={value!r}; allowed: a finite number >= 0")
    return float(value)


def _choice(key: str, value, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ConfigError(f"invalid config: loss.{key}={value!r}; allowed: {', '.join(allowed)}")
    return value


def _layer_weights(key: str, value) -> tuple[float, ...] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != NUM_VGG_MAPS:
        raise ConfigError(
            f"invalid config: loss.{key}={value!r}; allowed: null (1000 / C_l^2) or a list of {NUM_VGG_MAPS} "
            "numbers >= 0"
        )
    return tuple(_weight(f"{key}[{i}]", v) for i, v in enumerate(value))


class DMFNLoss(nn.Module):
    """The generator and discriminator objectives of DMFN (eq. 10), every weight a constructor argument.

    Generator total: ``reconstruction_weight * L_mae (eq. 1) + vgg_weight * (L_sg (eqs. 2-5) + L_fm_vgg (eq. 8))
    + alignment_weight * L_align (eqs. 6-7) + dis_fm_weight * L_fm_dis (eq. 9) + adversarial_weight * L_adv``.
    The defaults are the released configuration: 1, lambda = 25, gamma = 1, eta = 5, mu = 0.003, RaGAN.

    ``self_guided`` switches L_sg off (Table 3's "w/o self-guided"); ``self_guided_normalization`` is ``"minmax"``
    (paper) or ``"max"`` (released code); ``alignment_mode`` is ``"paper"`` (both axes) or ``"released"``
    (horizontal centre only, as the authors' code); ``gan_type`` is one of ``ragan``, ``vanilla``, ``lsgan``,
    ``hinge``. ``vgg_layer_weights``/``dis_layer_weights``: five per-layer weights, or None for 1000 / C_l^2.
    A term whose weight is 0 (or that is switched off) is not computed and reported as 0.
    Invalid values raise :class:`~dmfn_lightning.core.errors.ConfigError` (a ValueError) naming the key.
    """

    def __init__(
        self,
        reconstruction_weight: float = 1.0,
        vgg_weight: float = 25.0,
        self_guided: bool = True,
        self_guided_normalization: str = "minmax",
        alignment_weight: float = 1.0,
        alignment_mode: str = "paper",
        dis_fm_weight: float = 5.0,
        adversarial_weight: float = 0.003,
        gan_type: str = "ragan",
        vgg_layer_weights: Sequence[float] | None = None,
        dis_layer_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.reconstruction_weight = _weight("reconstruction_weight", reconstruction_weight)
        self.vgg_weight = _weight("vgg_weight", vgg_weight)
        if not isinstance(self_guided, bool):
            raise ConfigError(f"invalid config: loss.self_guided={self_guided!r}; allowed: true, false")
        self.self_guided = self_guided
        self.self_guided_normalization = _choice("self_guided_normalization", self_guided_normalization, NORMALIZATIONS)
        self.alignment_weight = _weight("alignment_weight", alignment_weight)
        self.alignment_mode = _choice("alignment_mode", alignment_mode, ALIGNMENT_MODES)
        self.dis_fm_weight = _weight("dis_fm_weight", dis_fm_weight)
        self.adversarial_weight = _weight("adversarial_weight", adversarial_weight)
        self.gan_type = _choice("gan_type", gan_type, GAN_TYPES)
        self.vgg_layer_weights = _layer_weights("vgg_layer_weights", vgg_layer_weights)
        self.dis_layer_weights = _layer_weights("dis_layer_weights", dis_layer_weights)

    def extra_repr(self) -> str:
        return (
            f"reconstruction_weight={self.reconstruction_weight}, vgg_weight={self.vgg_weight}, "
            f"self_guided={self.self_guided} ({self.self_guided_normalization}), "
            f"alignment_weight={self.alignment_weight} ({self.alignment_mode}), dis_fm_weight={self.dis_fm_weight}, "
            f"adversarial_weight={self.adversarial_weight} ({self.gan_type})"
        )

    @property
    def uses_vgg_features(self) -> bool:
        """Whether any term reads VGG19 features (L_fm_vgg, L_sg, L_align). When none does (``loss=no_vgg``), the
        caller may skip both VGG19 forwards and pass empty feature lists: on a CPU they are a quarter of an
        iteration of the demo."""
        return bool(self.vgg_weight or self.alignment_weight)

    def generator_loss(
        self,
        output: Tensor,
        target: Tensor,
        output_feats: Sequence[Tensor],
        target_feats: Sequence[Tensor],
        fake_logits: Tensor,
        real_logits: Tensor,
        fake_dis_feats: Sequence[Tensor],
        real_dis_feats: Sequence[Tensor],
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The generator's objective (eq. 10) and its unweighted terms.

        ``output``: the composited output [N, 3, H, W]; ``target``: the ground truth. ``output_feats``/
        ``target_feats``: their five VGG19 maps relu1_1..relu5_1 (levels 1-2 feed L_sg, all five L_fm_vgg,
        relu4_1 L_align). ``fake_logits``/``real_logits``: D's logits [N, 1]. ``fake_dis_feats``/
        ``real_dis_feats``: the local branch's five maps (L_fm_dis). Returns ``(total, terms)`` with the keys of
        :data:`GENERATOR_TERMS`; every term except ``"total"`` is unweighted. The feature lists may be empty when
        :attr:`uses_vgg_features` is false.
        """
        wrong = len(output_feats) != NUM_VGG_MAPS or len(target_feats) != NUM_VGG_MAPS
        if wrong and self.uses_vgg_features:
            raise ValueError(
                f"generator_loss expects the {NUM_VGG_MAPS} VGG19 maps relu1_1..relu5_1 per side, got "
                f"{len(output_feats)} and {len(target_feats)}"
            )
        zero = output.new_zeros(())
        terms = dict.fromkeys(GENERATOR_TERMS[:-1], zero)
        if self.reconstruction_weight:
            terms["reconstruction"] = reconstruction_loss(output, target)
        if self.vgg_weight:
            terms["vgg_fm"] = vgg_feature_matching_loss(output_feats, target_feats, self.vgg_layer_weights)
            if self.self_guided:
                terms["self_guided"] = self_guided_regression_loss(
                    output,
                    target,
                    output_feats[:2],
                    target_feats[:2],
                    self.vgg_layer_weights[:2] if self.vgg_layer_weights else None,
                    self.self_guided_normalization,
                )
        if self.alignment_weight:
            terms["alignment"] = geometrical_alignment_loss(
                output_feats[ALIGNMENT_LEVEL], target_feats[ALIGNMENT_LEVEL], self.alignment_mode
            )
        if self.dis_fm_weight:
            terms["dis_fm"] = discriminator_feature_matching_loss(
                fake_dis_feats, real_dis_feats, self.dis_layer_weights
            )
        if self.adversarial_weight:
            terms["adversarial"] = adversarial_loss(self.gan_type, real_logits, fake_logits, "generator")
        total = (
            self.reconstruction_weight * terms["reconstruction"]
            + self.vgg_weight * (terms["vgg_fm"] + terms["self_guided"])
            + self.alignment_weight * terms["alignment"]
            + self.dis_fm_weight * terms["dis_fm"]
            + self.adversarial_weight * terms["adversarial"]
        )
        terms["total"] = total
        return total, terms

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The discriminator's adversarial loss (``gan_type``) on real vs (detached) fake logits.

        Not scaled by ``adversarial_weight``: mu balances the generator's terms, while D is trained on its own loss
        alone (as in the released code). Returns ``(total, {"adversarial", "total"})``.
        """
        loss = adversarial_loss(self.gan_type, real_logits, fake_logits, "discriminator")
        return loss, {"adversarial": loss, "total": loss}

    def forward(self, *args, **kwargs) -> tuple[Tensor, dict[str, Tensor]]:
        """Alias of :meth:`generator_loss`."""
        return self.generator_loss(*args, **kwargs)
