"""losses.self_guided: the guidance map and the self-guided regression loss (eqs. 4-5) by hand, its gradient
(none through the guidance map), the equivalence of min-max guidance with the released (1 + M / max M) weighting, and
degenerate error maps."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dmfn_lightning.losses import DMFNLoss, guidance_map, self_guided_regression_loss, vgg_feature_matching_loss
from tests.losses.loss_fakes import close, dummy_discriminator_outputs, released_vgg_term, t, vgg_like_features

# Error map [[1, 1], [4, 9]]: every RGB channel of the output holds [[1, 1], [2, 3]] and the target is 0.
SG_OUTPUT = t([[1.0, 1.0], [2.0, 3.0]]).expand(1, 3, 2, 2).clone()
SG_TARGET = torch.zeros(1, 3, 2, 2)
SG_OUT_FEATS = [torch.ones(1, 1, 2, 2), torch.full((1, 1, 1, 1), 2.0)]  # |dPsi| = 1 at level 1, 2 at level 2
SG_GT_FEATS = [torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 1, 1)]


def test_guidance_map_minmax_and_max_by_hand():
    error = t([[[[1.0, 1.0], [4.0, 9.0]]]])
    # min-max: (M - 1) / (9 - 1); max: M / 9
    torch.testing.assert_close(guidance_map(error, "minmax"), t([[[[0.0, 0.0], [3 / 8, 1.0]]]]))
    torch.testing.assert_close(guidance_map(error, "max"), t([[[[1 / 9, 1 / 9], [4 / 9, 1.0]]]]))


def test_guidance_map_is_normalised_per_image():
    error = torch.stack([t([[0.0, 2.0]]), t([[10.0, 30.0]])]).unsqueeze(1)  # [2, 1, 1, 2]
    torch.testing.assert_close(guidance_map(error, "minmax"), t([[[[0.0, 1.0]]], [[[0.0, 1.0]]]]))
    torch.testing.assert_close(guidance_map(error, "max"), t([[[[0.0, 1.0]]], [[[1 / 3, 1.0]]]]))


def test_self_guided_regression_minmax_by_hand():
    # M1 = [[0, 0], [3/8, 1]] -> mean 11/32; M2 = AvgPool2x2(M1) = 11/32. w = 1000 / 1^2 for both (C = 1).
    # L = 1000 * 11/32 * 1 + 1000 * 11/32 * 2 = 343.75 + 687.5
    loss = self_guided_regression_loss(SG_OUTPUT, SG_TARGET, SG_OUT_FEATS, SG_GT_FEATS)
    close(loss, 1031.25)


def test_self_guided_regression_max_normalisation_by_hand():
    # M1 = [[1/9, 1/9], [4/9, 1]] -> mean 15/36 = 5/12; M2 = 5/12.  L = 1000 * 5/12 * (1 + 2) = 1250
    loss = self_guided_regression_loss(SG_OUTPUT, SG_TARGET, SG_OUT_FEATS, SG_GT_FEATS, normalization="max")
    close(loss, 1250.0)


def test_self_guided_regression_explicit_weights():
    loss = self_guided_regression_loss(SG_OUTPUT, SG_TARGET, SG_OUT_FEATS, SG_GT_FEATS, weights=[2.0, 4.0])
    close(loss, 2 * 11 / 32 * 1 + 4 * 11 / 32 * 2)


def test_self_guided_error_map_averages_rgb():
    # channels 0, 1, 2 of the output differ from the target by 3, 0, 0 at the top-left pixel only:
    # M = mean_RGB(d^2) = [[3, 0], [0, 0]] -> min-max guidance [[1, 0], [0, 0]]
    out = torch.zeros(1, 3, 2, 2)
    out[0, 0, 0, 0] = 3.0
    feats_out = [torch.ones(1, 1, 2, 2), torch.ones(1, 1, 1, 1)]
    feats_gt = [torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 1, 1)]
    # level 1: mean([1, 0, 0, 0]) = 1/4; level 2: AvgPool = 1/4; weights 1 -> 1/2
    close(self_guided_regression_loss(out, torch.zeros(1, 3, 2, 2), feats_out, feats_gt, [1.0, 1.0]), 0.5)


def test_self_guided_passes_no_gradient_through_the_guidance_map():
    torch.manual_seed(0)
    output = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = torch.randn(2, 3, 4, 4, requires_grad=True)
    feats_out = [torch.randn(2, 2, 4, 4, requires_grad=True), torch.randn(2, 3, 2, 2, requires_grad=True)]
    feats_gt = [torch.randn(2, 2, 4, 4, requires_grad=True), torch.randn(2, 3, 2, 2, requires_grad=True)]
    loss = self_guided_regression_loss(output, target, feats_out, feats_gt)
    grads = torch.autograd.grad(loss, [output, target, *feats_out, *feats_gt], allow_unused=True)
    assert grads[0] is None and grads[1] is None  # images only feed the guidance map
    assert grads[4] is None and grads[5] is None  # target side detached
    assert all(g is not None and g.abs().sum() > 0 for g in grads[2:4])

    # With features that depend on the output, the gradient equals the one with the guidance held constant.
    output2 = output.detach().clone().requires_grad_(True)
    feats = [output2 * 2, F.avg_pool2d(output2, 2)]
    gt_feats = [target.detach() * 2, F.avg_pool2d(target.detach(), 2)]
    (g_auto,) = torch.autograd.grad(self_guided_regression_loss(output2, target, feats, gt_feats), output2)
    m = (output.detach() - target.detach()).pow(2).mean(1, keepdim=True)
    lo, hi = m.amin(dim=(1, 2, 3), keepdim=True), m.amax(dim=(1, 2, 3), keepdim=True)
    m1 = (m - lo) / (hi - lo)
    m2 = F.avg_pool2d(m1, 2)
    output3 = output.detach().clone().requires_grad_(True)
    ref = (1000 / 9) * (m1 * (output3 * 2 - gt_feats[0]).abs()).mean() + (1000 / 9) * (
        m2 * (F.avg_pool2d(output3, 2) - gt_feats[1]).abs()
    ).mean()
    (g_ref,) = torch.autograd.grad(ref, output3)
    torch.testing.assert_close(g_auto, g_ref)


# ------------------------------------------- min-max guidance == released (1 + M / max M) weighting


def test_minmax_self_guided_plus_vgg_fm_equals_released_weighting():
    vgg = vgg_like_features()
    torch.manual_seed(1)
    target = torch.rand(2, 3, 16, 16) * 2 - 1
    mask = torch.zeros(2, 1, 16, 16)
    mask[0, :, 4:12, 4:12] = 1
    mask[1, :, 0:9, 6:16] = 1
    output = mask * (torch.rand(2, 3, 16, 16) * 2 - 1) + (1 - mask) * target  # composited
    with torch.no_grad():
        out_feats, gt_feats = vgg(output), vgg(target)
    ours = vgg_feature_matching_loss(out_feats, gt_feats) + self_guided_regression_loss(
        output, target, out_feats[:2], gt_feats[:2]
    )
    released = released_vgg_term(output, target, out_feats, gt_feats)
    assert released > 1e-3  # a non-trivial comparison
    torch.testing.assert_close(ours, released, rtol=1e-6, atol=1e-6)
    # the same numbers through DMFNLoss: 25 * (vgg_fm + self_guided)
    loss = DMFNLoss(reconstruction_weight=0, alignment_weight=0, dis_fm_weight=0, adversarial_weight=0)
    total, _ = loss.generator_loss(output, target, out_feats, gt_feats, *dummy_discriminator_outputs())
    torch.testing.assert_close(total, 25 * released, rtol=1e-6, atol=1e-5)


def test_whole_image_hole_breaks_the_equivalence_but_stays_finite():
    vgg = vgg_like_features()
    torch.manual_seed(2)
    target, output = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)  # mask = 1 everywhere: every pixel predicted
    with torch.no_grad():
        out_feats, gt_feats = vgg(output), vgg(target)
    minmax = self_guided_regression_loss(output, target, out_feats[:2], gt_feats[:2])
    peak = self_guided_regression_loss(output, target, out_feats[:2], gt_feats[:2], normalization="max")
    assert torch.isfinite(minmax) and torch.isfinite(peak)
    assert peak > minmax > 0  # min error > 0, so min-max subtracts a positive floor
    released = released_vgg_term(output, target, out_feats, gt_feats)
    torch.testing.assert_close(vgg_feature_matching_loss(out_feats, gt_feats) + peak, released, rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------------------- degenerate inputs


@pytest.mark.parametrize("normalization", ["minmax", "max"])
def test_all_zero_error_map_gives_zero_guidance(normalization):
    target = torch.rand(1, 3, 4, 4)
    feats_out = [torch.rand(1, 2, 4, 4), torch.rand(1, 2, 2, 2)]  # features differ, but the error map is 0
    feats_gt = [torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 2, 2)]
    loss = self_guided_regression_loss(target.clone(), target, feats_out, feats_gt, normalization=normalization)
    close(loss, 0.0)


def test_constant_nonzero_error_map_is_guarded():
    # max == min > 0 (whole-image hole, uniform error): min-max guidance is 0 (no harder region), max gives 1.
    out, gt = torch.ones(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
    f_out, f_gt = [torch.ones(1, 1, 2, 2), torch.ones(1, 1, 1, 1)], [torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 1, 1)]
    close(self_guided_regression_loss(out, gt, f_out, f_gt, normalization="minmax"), 0.0)
    close(self_guided_regression_loss(out, gt, f_out, f_gt, normalization="max"), 2000.0)
