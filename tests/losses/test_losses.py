"""The DMFN losses (eqs. 1-10 of the paper): hand-computed values, gradients, degenerate inputs, configs."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from torch import nn

from dmfn_lightning.losses import (
    GAN_TYPES,
    GENERATOR_TERMS,
    DMFNLoss,
    adversarial_loss,
    discriminator_feature_matching_loss,
    feature_centres,
    geometrical_alignment_loss,
    guidance_map,
    hinge_gan_loss,
    lsgan_loss,
    reconstruction_loss,
    relativistic_average_gan_loss,
    self_guided_regression_loss,
    vanilla_gan_loss,
    vgg_feature_matching_loss,
)
from dmfn_lightning.losses import dmfn_loss as dmfn_loss_module

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
LOSS_CONFIGS = ("paper", "no_self_guided", "no_align", "no_dis_fm", "released")
PAPER = {
    "reconstruction_weight": 1.0,
    "vgg_weight": 25.0,
    "self_guided": True,
    "self_guided_normalization": "minmax",
    "alignment_weight": 1.0,
    "alignment_mode": "paper",
    "dis_fm_weight": 5.0,
    "adversarial_weight": 0.003,
    "gan_type": "ragan",
    "vgg_layer_weights": None,
    "dis_layer_weights": None,
}
VGG_CHANNELS = (64, 128, 256, 512, 512)


def t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def softplus(x: float) -> float:
    """log(1 + e^x): BCE-with-logits of x against label 0 (and of -x against label 1)."""
    return math.log1p(math.exp(x))


def close(actual: torch.Tensor, expected: float, tol: float = 1e-6) -> None:
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=actual.dtype), rtol=tol, atol=tol)


# --------------------------------------------------------------------------------------------- hand values
def test_reconstruction_loss_is_mean_absolute_error():
    out = t([[[[1.0, 2.0], [3.0, 4.0]]]])
    gt = t([[[[0.0, 2.0], [5.0, 4.0]]]])
    close(reconstruction_loss(out, gt), (1 + 0 + 2 + 0) / 4)


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


def test_alignment_centre_of_a_2x2_map_by_hand():
    # p = [[1, 2], [0, 1]] / 4; coordinates u/W*2-1 = (-1, 0). Horizontal centre: columns carry 1/4 and 3/4
    # -> -1/4; vertical: rows carry 3/4 and 1/4 -> -3/4. The released map repeats the horizontal one.
    feat = t([[[[1.0, 2.0], [0.0, 1.0]]]])
    torch.testing.assert_close(feature_centres(feat), t([[[-0.25, -0.75]]]))
    torch.testing.assert_close(feature_centres(feat, "released"), t([[[-0.25, -0.25]]]))


def test_alignment_loss_by_hand():
    out = t([[[[1.0, 2.0], [0.0, 1.0]]]])
    gt = t([[[[0.0, 0.0], [0.0, 1.0]]]])  # all mass (up to the 1e-7 epsilon) at u = v = 1 -> centre (0, 0)
    # paper: mean((-1/4)^2, (-3/4)^2) = (1/16 + 9/16) / 2; released: mean((-1/4)^2, (-1/4)^2)
    close(geometrical_alignment_loss(out, gt), 0.3125)
    close(geometrical_alignment_loss(out, gt, mode="released"), 0.0625)


def test_alignment_loss_averages_over_batch_and_channels():
    a = torch.zeros(2, 2, 1, 2)
    a[..., 0] = 1.0  # every channel peaks at u = 0 -> horizontal centre -1, vertical -1 (H = 1)
    b = torch.zeros(2, 2, 1, 2)
    b[..., 1] = 1.0  # u = 1 -> horizontal 0
    # each of the 4 (image, channel) pairs: differences (-1, 0) -> mean of 8 squares = 4 / 8
    close(geometrical_alignment_loss(a, b), 0.5)


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


# ----------------------------------------------------------------------------------------------- gradients
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


def test_alignment_gradients_reach_the_output_side_only():
    out = torch.rand(1, 3, 4, 4, requires_grad=True)
    gt = torch.rand(1, 3, 4, 4, requires_grad=True)
    g_out, g_gt = torch.autograd.grad(geometrical_alignment_loss(out, gt), [out, gt], allow_unused=True)
    assert g_gt is None
    assert torch.isfinite(g_out).all() and g_out.abs().sum() > 0


def test_ragan_generator_term_does_not_backpropagate_into_real_logits():
    real = torch.randn(4, 1, requires_grad=True)
    fake = torch.randn(4, 1, requires_grad=True)
    g_real, g_fake = torch.autograd.grad(relativistic_average_gan_loss(real, fake), [real, fake], allow_unused=True)
    assert g_real is None and g_fake.abs().sum() > 0
    d_real, d_fake = torch.autograd.grad(relativistic_average_gan_loss(real, fake, "discriminator"), [real, fake])
    assert d_real.abs().sum() > 0 and d_fake.abs().sum() > 0


# ------------------------------------------- min-max guidance == released (1 + M / max M) weighting
def _vgg_like_features(seed: int = 0, dtype=torch.float32) -> nn.Module:
    """Random stand-in for VGG19 with the same channel counts and resolutions (relu1_1 at H, relu2_1 at H/2...)."""
    torch.manual_seed(seed)

    class Features(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            chans = (3, *VGG_CHANNELS)
            self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in itertools.pairwise(chans))

        def forward(self, x):
            feats = []
            for i, conv in enumerate(self.convs):
                x = torch.relu(conv(F.max_pool2d(x, 2) if i else x))
                feats.append(x)
            return feats

    return Features().to(dtype)


def _released_vgg_term(output, target, out_feats, gt_feats) -> torch.Tensor:
    """The released code's feature term, written from its description: levels 1-2 weighted by (1 + M / max M)."""
    weights = [1e3 / n**2 for n in VGG_CHANNELS]
    error = torch.mean(torch.abs(output.detach() - target) ** 2, dim=1, keepdim=True)
    peak = error.max(dim=3, keepdim=True)[0].max(dim=2, keepdim=True)[0]
    m = error / peak
    maps = [1.0 + m, 1.0 + F.avg_pool2d(m, kernel_size=2, stride=2)]
    terms = []
    for i in range(5):
        if i < 2:
            mask = maps[i].expand(-1, out_feats[i].shape[1], -1, -1)
            terms.append(weights[i] * F.l1_loss(out_feats[i] * mask, gt_feats[i] * mask))
        else:
            terms.append(weights[i] * F.l1_loss(out_feats[i], gt_feats[i]))
    return sum(terms)


def test_minmax_self_guided_plus_vgg_fm_equals_released_weighting():
    vgg = _vgg_like_features()
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
    released = _released_vgg_term(output, target, out_feats, gt_feats)
    assert released > 1e-3  # a non-trivial comparison
    torch.testing.assert_close(ours, released, rtol=1e-6, atol=1e-6)
    # the same numbers through DMFNLoss: 25 * (vgg_fm + self_guided)
    loss = DMFNLoss(reconstruction_weight=0, alignment_weight=0, dis_fm_weight=0, adversarial_weight=0)
    total, _ = loss.generator_loss(output, target, out_feats, gt_feats, *_dummy_discriminator_outputs())
    torch.testing.assert_close(total, 25 * released, rtol=1e-6, atol=1e-5)


def test_whole_image_hole_breaks_the_equivalence_but_stays_finite():
    vgg = _vgg_like_features()
    torch.manual_seed(2)
    target, output = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)  # mask = 1 everywhere: every pixel predicted
    with torch.no_grad():
        out_feats, gt_feats = vgg(output), vgg(target)
    minmax = self_guided_regression_loss(output, target, out_feats[:2], gt_feats[:2])
    peak = self_guided_regression_loss(output, target, out_feats[:2], gt_feats[:2], normalization="max")
    assert torch.isfinite(minmax) and torch.isfinite(peak)
    assert peak > minmax > 0  # min error > 0, so min-max subtracts a positive floor
    released = _released_vgg_term(output, target, out_feats, gt_feats)
    torch.testing.assert_close(vgg_feature_matching_loss(out_feats, gt_feats) + peak, released, rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------------------- degenerate inputs
def _dummy_discriminator_outputs(n: int = 2, seed: int = 3):
    torch.manual_seed(seed)
    fake_logits, real_logits = torch.randn(n, 1), torch.randn(n, 1)
    fake_dis = [torch.randn(n, c, s, s) for c, s in zip((4, 8, 8, 16, 16), (4, 2, 1, 1, 1))]
    real_dis = [torch.randn_like(f) for f in fake_dis]
    return fake_logits, real_logits, fake_dis, real_dis


def _vgg_feats(n: int = 2, size: int = 8, fill: float | None = None, seed: int = 4):
    torch.manual_seed(seed)
    feats = []
    for i, c in enumerate(VGG_CHANNELS):
        s = max(size // 2**i, 1)
        feats.append(torch.full((n, c, s, s), fill) if fill is not None else torch.rand(n, c, s, s))
    return feats


@pytest.mark.parametrize("normalization", ["minmax", "max"])
@pytest.mark.parametrize("mode", ["paper", "released"])
def test_output_equal_to_target_gives_finite_zero_losses(normalization, mode):
    target = torch.rand(2, 3, 8, 8)
    feats = _vgg_feats()
    loss = DMFNLoss(self_guided_normalization=normalization, alignment_mode=mode)
    fake_logits, real_logits, fake_dis, _ = _dummy_discriminator_outputs()
    total, terms = loss.generator_loss(
        target.clone(), target, feats, feats, fake_logits, real_logits, fake_dis, fake_dis
    )
    assert all(torch.isfinite(v) for v in terms.values())
    for key in ("reconstruction", "vgg_fm", "self_guided", "alignment", "dis_fm"):
        close(terms[key], 0.0)
    close(total, 0.003 * float(terms["adversarial"]))


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


def test_all_zero_feature_maps_give_finite_losses():
    zeros = _vgg_feats(fill=0.0)
    ones = _vgg_feats(fill=1.0)
    for mode in ("paper", "released"):
        close(geometrical_alignment_loss(zeros[3], zeros[3], mode), 0.0)
        assert torch.isfinite(geometrical_alignment_loss(zeros[1], torch.rand_like(zeros[1]), mode))
    # a zero map is uniform: its centre is the mean of the grid (-1, -0.5, 0, 0.5), i.e. -0.25 on both axes
    torch.testing.assert_close(feature_centres(torch.zeros(1, 1, 4, 4)), t([[[-0.25, -0.25]]]))
    image = torch.rand(2, 3, 8, 8)
    total, terms = DMFNLoss().generator_loss(image, image.flip(-1), zeros, ones, *_dummy_discriminator_outputs())
    assert torch.isfinite(total) and all(torch.isfinite(v) for v in terms.values())
    close(terms["vgg_fm"], sum(1000 / c**2 for c in VGG_CHANNELS))


def test_whole_image_mask_through_dmfn_loss_is_finite():
    target = torch.rand(2, 3, 8, 8)
    mask = torch.ones(2, 1, 8, 8)
    output = mask * torch.rand(2, 3, 8, 8) + (1 - mask) * target
    total, terms = DMFNLoss().generator_loss(
        output, target, _vgg_feats(seed=5), _vgg_feats(seed=6), *_dummy_discriminator_outputs()
    )
    assert torch.isfinite(total) and all(torch.isfinite(v) for v in terms.values())
    assert terms["self_guided"] > 0


# ---------------------------------------------------------------------------------------- alignment laws
def test_alignment_is_zero_for_identical_maps():
    feat = torch.rand(2, 5, 6, 7)
    for mode in ("paper", "released"):
        assert geometrical_alignment_loss(feat, feat.clone(), mode) == 0


def test_alignment_is_invariant_to_positive_rescaling_of_a_channel():
    torch.manual_seed(7)
    out, gt = torch.rand(2, 4, 6, 6), torch.rand(2, 4, 6, 6)
    scale = torch.tensor([1.0, 0.01, 3.0, 250.0]).view(1, 4, 1, 1)
    base = geometrical_alignment_loss(out, gt)
    # epsilon-level differences only: R sums to ~18 per channel, so 36 * 1e-7 / (0.01 * 18) ~ 2e-5 at worst
    torch.testing.assert_close(geometrical_alignment_loss(out * scale, gt), base, rtol=0, atol=1e-6)
    torch.testing.assert_close(feature_centres(out * scale), feature_centres(out), rtol=0, atol=2e-5)
    torch.testing.assert_close(geometrical_alignment_loss(out, gt * scale), base, rtol=0, atol=1e-6)


@pytest.mark.parametrize("mode", ["paper", "released"])
def test_alignment_grows_as_a_blob_moves_away(mode):
    def blob(row: int, col: int) -> torch.Tensor:
        ys, xs = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
        return torch.exp(-((ys - row) ** 2 + (xs - col) ** 2) / 4.0).view(1, 1, 16, 16)

    gt = blob(4, 4)
    diagonal = [float(geometrical_alignment_loss(blob(4 + k, 4 + k), gt, mode)) for k in range(9)]
    assert diagonal[0] == 0
    assert all(b > a for a, b in itertools.pairwise(diagonal)), diagonal
    # a purely horizontal shift by k columns moves the horizontal centre by ~2k/16
    close(
        geometrical_alignment_loss(blob(4, 8), gt, mode), (2 * 4 / 16) ** 2 * (0.5 if mode == "paper" else 1), tol=1e-3
    )
    vertical = float(geometrical_alignment_loss(blob(10, 4), gt, mode))
    if mode == "paper":
        assert vertical > 0.05
    else:  # the released bug: a vertical displacement is invisible
        assert vertical < 1e-10


# --------------------------------------------------------------------------------------------- DMFNLoss
def _generator_inputs(seed: int = 8):
    torch.manual_seed(seed)
    target = torch.rand(2, 3, 16, 16) * 2 - 1
    mask = torch.zeros(2, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1
    output = mask * (torch.rand(2, 3, 16, 16) * 2 - 1) + (1 - mask) * target
    feats = _vgg_feats(size=16, seed=seed), _vgg_feats(size=16, seed=seed + 1)  # relu4_1 at 2x2
    return (output, target, *feats, *_dummy_discriminator_outputs(seed=seed))


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
    feats_out = [f.clone().requires_grad_(True) for f in _vgg_feats(size=16, seed=20)]
    fake_logits, real_logits, fake_dis, real_dis = _dummy_discriminator_outputs()
    fake_logits.requires_grad_(True)
    fake_dis = [f.requires_grad_(True) for f in fake_dis]
    total, _ = DMFNLoss().generator_loss(
        output, target, feats_out, _vgg_feats(size=16, seed=21), fake_logits, real_logits, fake_dis, real_dis
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


# ------------------------------------------------------------------------------------------ Hydra configs
@pytest.fixture
def loss_conf(compose_conf):
    """The ``loss`` node composed from the real conf/ tree with no primary config (``"+loss=<name>", ...``)."""
    return lambda *overrides: compose_conf(None, *overrides).loss


EXPECTED = {
    "paper": {},
    "no_self_guided": {"self_guided": False},
    "no_align": {"alignment_weight": 0.0},
    "no_dis_fm": {"dis_fm_weight": 0.0},
    "released": {"self_guided_normalization": "max", "alignment_mode": "released"},
}


@pytest.mark.parametrize("name", LOSS_CONFIGS)
def test_loss_configs_compose_and_instantiate(loss_conf, name):
    cfg = loss_conf(f"+loss={name}")
    assert cfg._target_ == "dmfn_lightning.losses.DMFNLoss"
    expected = {**PAPER, **EXPECTED[name]}
    assert {k: v for k, v in cfg.items() if k != "_target_"} == expected
    loss = instantiate(cfg)
    assert isinstance(loss, DMFNLoss)
    for key, value in expected.items():
        assert getattr(loss, key) == value, key


def test_ablation_files_only_override_what_differs():
    for name in LOSS_CONFIGS[1:]:
        text = (CONF_DIR / "loss" / f"{name}.yaml").read_text()
        assert "- paper" in text and "- _self_" in text and "_target_" not in text, name
        keys = [line.split(":")[0] for line in text.splitlines() if line and line[0].isalpha()]
        assert keys[0] == "defaults" and set(keys[1:]) == set(EXPECTED[name]), (name, keys)


@pytest.mark.parametrize(
    "override,key,value",
    [
        ("loss.reconstruction_weight=2", "reconstruction_weight", 2.0),
        ("loss.vgg_weight=10", "vgg_weight", 10.0),
        ("loss.self_guided=false", "self_guided", False),
        ("loss.self_guided_normalization=max", "self_guided_normalization", "max"),
        ("loss.alignment_weight=0.5", "alignment_weight", 0.5),
        ("loss.alignment_mode=released", "alignment_mode", "released"),
        ("loss.dis_fm_weight=1.5", "dis_fm_weight", 1.5),
        ("loss.adversarial_weight=0.01", "adversarial_weight", 0.01),
        ("loss.gan_type=lsgan", "gan_type", "lsgan"),
        ("loss.vgg_layer_weights=[1,2,3,4,5]", "vgg_layer_weights", (1.0, 2.0, 3.0, 4.0, 5.0)),
        ("loss.dis_layer_weights=[0,0,1,1,1]", "dis_layer_weights", (0.0, 0.0, 1.0, 1.0, 1.0)),
    ],
)
def test_every_loss_key_is_overridable_from_the_command_line(loss_conf, override, key, value):
    loss = instantiate(loss_conf("+loss=no_align", override))
    assert getattr(loss, key) == value
    assert loss.alignment_weight == (0.5 if key == "alignment_weight" else 0.0)


def test_bad_override_raises_naming_the_key(loss_conf):
    with pytest.raises(Exception, match=r"loss\.vgg_weight=-1\.0"):
        instantiate(loss_conf("+loss=paper", "loss.vgg_weight=-1.0"))


def test_group_selected_from_a_primary_config(tmp_path):
    """`loss=no_align` from a primary config whose defaults pick `loss: paper` (as train.yaml does)."""
    (tmp_path / "primary.yaml").write_text(
        f"defaults:\n  - loss: paper\n  - _self_\nhydra:\n  searchpath:\n    - file://{CONF_DIR}\n"
    )
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(tmp_path), version_base="1.3"):
            for name in LOSS_CONFIGS:
                cfg = compose("primary", overrides=[f"loss={name}", "loss.adversarial_weight=0.1"])
                assert {k: v for k, v in cfg.loss.items() if k != "_target_"} == {
                    **PAPER,
                    **EXPECTED[name],
                    "adversarial_weight": 0.1,
                }
                assert set(cfg) == {"loss"}  # nothing leaked outside the group's package
    finally:
        GlobalHydra.instance().clear()


def test_group_selected_from_train_yaml(compose_conf):
    """The real primary config: `loss: paper` in train.yaml's defaults, replaced by `loss=<name>` on the CLI."""
    assert compose_conf("train").loss == compose_conf(None, "+loss=paper").loss
    for name in LOSS_CONFIGS:
        cfg = compose_conf("train", f"loss={name}", "loss.vgg_weight=7")
        assert {k: v for k, v in cfg.loss.items() if k != "_target_"} == {**PAPER, **EXPECTED[name], "vgg_weight": 7}
        assert isinstance(instantiate(cfg.loss), DMFNLoss)
