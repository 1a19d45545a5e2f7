"""losses.alignment: feature centres and the geometrical alignment loss (eqs. 6-7) by hand in the paper's and the
released mode, its gradient, degenerate maps and its laws (zero for identical maps, scale invariance, growth with
displacement)."""

from __future__ import annotations

import itertools

import pytest
import torch

from dmfn_lightning.losses import DMFNLoss, feature_centres, geometrical_alignment_loss
from tests.losses.loss_fakes import VGG_CHANNELS, close, dummy_discriminator_outputs, t, vgg_feats


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


def test_alignment_gradients_reach_the_output_side_only():
    out = torch.rand(1, 3, 4, 4, requires_grad=True)
    gt = torch.rand(1, 3, 4, 4, requires_grad=True)
    g_out, g_gt = torch.autograd.grad(geometrical_alignment_loss(out, gt), [out, gt], allow_unused=True)
    assert g_gt is None
    assert torch.isfinite(g_out).all() and g_out.abs().sum() > 0


def test_all_zero_feature_maps_give_finite_losses():
    zeros = vgg_feats(fill=0.0)
    ones = vgg_feats(fill=1.0)
    for mode in ("paper", "released"):
        close(geometrical_alignment_loss(zeros[3], zeros[3], mode), 0.0)
        assert torch.isfinite(geometrical_alignment_loss(zeros[1], torch.rand_like(zeros[1]), mode))
    # a zero map is uniform: its centre is the mean of the grid (-1, -0.5, 0, 0.5), i.e. -0.25 on both axes
    torch.testing.assert_close(feature_centres(torch.zeros(1, 1, 4, 4)), t([[[-0.25, -0.25]]]))
    image = torch.rand(2, 3, 8, 8)
    total, terms = DMFNLoss().generator_loss(image, image.flip(-1), zeros, ones, *dummy_discriminator_outputs())
    assert torch.isfinite(total) and all(torch.isfinite(v) for v in terms.values())
    close(terms["vgg_fm"], sum(1000 / c**2 for c in VGG_CHANNELS))


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
