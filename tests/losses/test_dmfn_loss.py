"""losses.dmfn_loss: DMFNLoss, the weighted total of the terms (the paper's weights and others), options forwarded
to each term, disabled terms skipped, degenerate inputs, gradients, and bad values named with their key."""

from __future__ import annotations

import pytest
import torch

from dmfn_lightning.losses import (
    GENERATOR_TERMS,
    DMFNLoss,
    discriminator_feature_matching_loss,
    geometrical_alignment_loss,
    hinge_gan_loss,
    reconstruction_loss,
    relativistic_average_gan_loss,
    self_guided_regression_loss,
    vgg_feature_matching_loss,
)
from dmfn_lightning.losses import dmfn_loss as dmfn_loss_module
from tests.losses.loss_fakes import close, dummy_discriminator_outputs, softplus, t, vgg_feats


def test_whole_image_mask_through_dmfn_loss_is_finite():
    target = torch.rand(2, 3, 8, 8)
    mask = torch.ones(2, 1, 8, 8)
    output = mask * torch.rand(2, 3, 8, 8) + (1 - mask) * target
    total, terms = DMFNLoss().generator_loss(
        output, target, vgg_feats(seed=5), vgg_feats(seed=6), *dummy_discriminator_outputs()
    )
    assert torch.isfinite(total) and all(torch.isfinite(v) for v in terms.values())
    assert terms["self_guided"] > 0


@pytest.mark.parametrize("normalization", ["minmax", "max"])
@pytest.mark.parametrize("mode", ["paper", "released"])
def test_output_equal_to_target_gives_finite_zero_losses(normalization, mode):
    target = torch.rand(2, 3, 8, 8)
    feats = vgg_feats()
    loss = DMFNLoss(self_guided_normalization=normalization, alignment_mode=mode)
    fake_logits, real_logits, fake_dis, _ = dummy_discriminator_outputs()
    total, terms = loss.generator_loss(
        target.clone(), target, feats, feats, fake_logits, real_logits, fake_dis, fake_dis
    )
    assert all(torch.isfinite(v) for v in terms.values())
    for key in ("reconstruction", "vgg_fm", "self_guided", "alignment", "dis_fm"):
        close(terms[key], 0.0)
    close(total, 0.003 * float(terms["adversarial"]))


def _generator_inputs(seed: int = 8):
    torch.manual_seed(seed)
    target = torch.rand(2, 3, 16, 16) * 2 - 1
    mask = torch.zeros(2, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1
    output = mask * (torch.rand(2, 3, 16, 16) * 2 - 1) + (1 - mask) * target
    feats = vgg_feats(size=16, seed=seed), vgg_feats(size=16, seed=seed + 1)  # relu4_1 at 2x2
    return (output, target, *feats, *dummy_discriminator_outputs(seed=seed))


def test_dmfn_loss_terms_and_weighted_total():
    args = _generator_inputs()
    weights = {
        "reconstruction_weight": 2.0,
        "vgg_weight": 3.0,
        "alignment_weight": 4.0,
        "dis_fm_weight": 0.5,
        "adversarial_weight": 0.25,
    }
    total, terms = DMFNLoss(**weights).generator_loss(*args)
    assert tuple(terms) == GENERATOR_TERMS
    assert set(terms) == {"reconstruction", "vgg_fm", "self_guided", "alignment", "dis_fm", "adversarial", "total"}
    output, target, out_feats, gt_feats, fake_logits, real_logits, fake_dis, real_dis = args
    expected = {
        "reconstruction": reconstruction_loss(output, target),
        "vgg_fm": vgg_feature_matching_loss(out_feats, gt_feats),
        "self_guided": self_guided_regression_loss(output, target, out_feats[:2], gt_feats[:2]),
        "alignment": geometrical_alignment_loss(out_feats[3], gt_feats[3]),
        "dis_fm": discriminator_feature_matching_loss(fake_dis, real_dis),
        "adversarial": relativistic_average_gan_loss(real_logits, fake_logits, "generator"),
    }
    for key, value in expected.items():
        torch.testing.assert_close(terms[key], value)
        assert value > 0
    weighted = (
        2.0 * expected["reconstruction"]
        + 3.0 * (expected["vgg_fm"] + expected["self_guided"])
        + 4.0 * expected["alignment"]
        + 0.5 * expected["dis_fm"]
        + 0.25 * expected["adversarial"]
    )
    torch.testing.assert_close(total, weighted)
    torch.testing.assert_close(terms["total"], total)


def test_dmfn_loss_paper_defaults_total():
    args = _generator_inputs(seed=11)
    total, terms = DMFNLoss().generator_loss(*args)
    expected = (
        terms["reconstruction"]
        + 25 * (terms["vgg_fm"] + terms["self_guided"])
        + 5 * terms["dis_fm"]
        + 0.003 * terms["adversarial"]
        + 1 * terms["alignment"]
    )
    torch.testing.assert_close(total, expected)


def test_dmfn_loss_layer_weights_and_modes_are_forwarded():
    args = _generator_inputs(seed=12)
    output, target, out_feats, gt_feats, fake_logits, real_logits, fake_dis, real_dis = args
    vgg_w, dis_w = [1.0, 2.0, 3.0, 4.0, 5.0], [0.1, 0.2, 0.3, 0.4, 0.5]
    loss = DMFNLoss(
        vgg_layer_weights=vgg_w,
        dis_layer_weights=dis_w,
        self_guided_normalization="max",
        alignment_mode="released",
        gan_type="hinge",
    )
    _, terms = loss.generator_loss(*args)
    torch.testing.assert_close(terms["vgg_fm"], vgg_feature_matching_loss(out_feats, gt_feats, vgg_w))
    torch.testing.assert_close(
        terms["self_guided"],
        self_guided_regression_loss(output, target, out_feats[:2], gt_feats[:2], vgg_w[:2], "max"),
    )
    torch.testing.assert_close(terms["alignment"], geometrical_alignment_loss(out_feats[3], gt_feats[3], "released"))
    torch.testing.assert_close(terms["dis_fm"], discriminator_feature_matching_loss(fake_dis, real_dis, dis_w))
    close(terms["adversarial"], float(-fake_logits.mean()))
    d_total, d_terms = loss.discriminator_loss(real_logits, fake_logits)
    assert set(d_terms) == {"adversarial", "total"}
    torch.testing.assert_close(d_total, hinge_gan_loss(real_logits, fake_logits, "discriminator"))


def test_discriminator_loss_is_unweighted_ragan():
    real, fake = t([[4.0], [0.0], [5.0]]), t([[1.0], [-1.0], [3.0]])
    total, terms = DMFNLoss(adversarial_weight=0.5).discriminator_loss(real, fake)
    expected = 0.5 * ((softplus(-3) + softplus(1) + softplus(-4)) / 3 + (softplus(-2) + softplus(-4) + softplus(0)) / 3)
    close(total, expected)
    assert tuple(terms) == ("adversarial", "total")


@pytest.mark.parametrize(
    "kwargs,skipped",
    [
        ({"self_guided": False}, "self_guided_regression_loss"),
        ({"alignment_weight": 0.0}, "geometrical_alignment_loss"),
        ({"dis_fm_weight": 0.0}, "discriminator_feature_matching_loss"),
        ({"reconstruction_weight": 0.0}, "reconstruction_loss"),
        ({"adversarial_weight": 0.0}, "adversarial_loss"),
        ({"vgg_weight": 0.0}, "vgg_feature_matching_loss"),
    ],
)
def test_disabled_terms_are_not_computed_and_reported_as_zero(monkeypatch, kwargs, skipped):
    def boom(*args, **kwargs):
        raise AssertionError(f"{skipped} computed although disabled")

    monkeypatch.setattr(dmfn_loss_module, skipped, boom)
    total, terms = DMFNLoss(**kwargs).generator_loss(*_generator_inputs())
    key = {
        "self_guided_regression_loss": "self_guided",
        "geometrical_alignment_loss": "alignment",
        "discriminator_feature_matching_loss": "dis_fm",
        "reconstruction_loss": "reconstruction",
        "adversarial_loss": "adversarial",
        "vgg_feature_matching_loss": "vgg_fm",
    }[skipped]
    assert terms[key].shape == () and terms[key] == 0
    assert torch.isfinite(total) and total > 0


def test_vgg_weight_zero_also_skips_self_guided(monkeypatch):
    monkeypatch.setattr(dmfn_loss_module, "self_guided_regression_loss", lambda *a, **k: 1 / 0)
    _, terms = DMFNLoss(vgg_weight=0).generator_loss(*_generator_inputs())
    assert terms["self_guided"] == 0 and terms["vgg_fm"] == 0


def test_dmfn_loss_backward_reaches_the_output():
    output, target, *_ = _generator_inputs()
    output = output.clone().requires_grad_(True)
    feats_out = [f.clone().requires_grad_(True) for f in vgg_feats(size=16, seed=20)]
    fake_logits, real_logits, fake_dis, real_dis = dummy_discriminator_outputs()
    fake_logits.requires_grad_(True)
    fake_dis = [f.requires_grad_(True) for f in fake_dis]
    total, _ = DMFNLoss().generator_loss(
        output, target, feats_out, vgg_feats(size=16, seed=21), fake_logits, real_logits, fake_dis, real_dis
    )
    grads = torch.autograd.grad(total, [output, *feats_out, fake_logits, *fake_dis])
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize(
    "key,value,shown,allowed",
    [
        ("reconstruction_weight", -1.0, "loss.reconstruction_weight=-1.0", ">= 0"),
        ("vgg_weight", -0.5, "loss.vgg_weight=-0.5", ">= 0"),
        ("alignment_weight", -2, "loss.alignment_weight=-2", ">= 0"),
        ("dis_fm_weight", float("nan"), "loss.dis_fm_weight=nan", ">= 0"),
        ("adversarial_weight", "a lot", "loss.adversarial_weight='a lot'", ">= 0"),
        ("self_guided_normalization", "mean", "loss.self_guided_normalization='mean'", "minmax, max"),
        ("alignment_mode", "both", "loss.alignment_mode='both'", "paper, released"),
        ("gan_type", "wgan", "loss.gan_type='wgan'", "ragan, vanilla, lsgan, hinge"),
        ("self_guided", "yes", "loss.self_guided='yes'", "true, false"),
        ("vgg_layer_weights", [1.0, 2.0], "loss.vgg_layer_weights=[1.0, 2.0]", "list of 5"),
        ("dis_layer_weights", [1.0, 2.0, 3.0, -4.0, 5.0], "loss.dis_layer_weights[3]=-4.0", ">= 0"),
    ],
)
def test_dmfn_loss_rejects_bad_values_naming_key_value_and_choices(key, value, shown, allowed):
    with pytest.raises(ValueError) as info:
        DMFNLoss(**{key: value})
    assert shown in str(info.value) and allowed in str(info.value)


def test_generator_loss_requires_five_vgg_maps():
    output, target, out_feats, gt_feats, *rest = _generator_inputs()
    with pytest.raises(ValueError, match=r"relu1_1\.\.relu5_1"):
        DMFNLoss().generator_loss(output, target, out_feats[:4], gt_feats[:4], *rest)
