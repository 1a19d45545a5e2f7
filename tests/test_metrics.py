"""Metrics of Table 1 against closed forms, hand computations and the reference packages."""

from __future__ import annotations

import math
import warnings

import lpips
import numpy as np
import pytest
import torch
from torch import nn

from dmfn_lightning.metrics import (
    PSNR_CAP,
    InpaintingMetrics,
    LPIPSMetric,
    per_image_metrics,
    quantize,
)
from dmfn_lightning.weights import WeightsUnavailableError


def levels_to_tensor(levels: np.ndarray) -> torch.Tensor:
    """uint8 levels [B, 3, H, W] -> [-1, 1] exactly as the data layer does."""
    return torch.from_numpy(levels.astype(np.float32)).div(127.5).sub(1.0)


def random_levels(shape, low=0, high=256, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(low, high, shape).astype(np.uint8)


@pytest.fixture(scope="module")
def random_lpips() -> LPIPSMetric:
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LPIPSMetric("alex", backbone_weights="random")


def test_quantize_is_exact_for_uint8_images():
    levels = random_levels((2, 3, 8, 8))
    assert torch.equal(quantize(levels_to_tensor(levels)), torch.from_numpy(levels).float())


def test_psnr_of_constant_offset_matches_closed_form():
    gt = random_levels((3, 3, 32, 24), high=200)
    offsets = np.array([1, 10, 40], dtype=np.uint8).reshape(3, 1, 1, 1)
    out = gt + offsets  # no clipping: gt <= 199
    mask = torch.zeros(3, 1, 32, 24)
    values = per_image_metrics(levels_to_tensor(out), levels_to_tensor(gt), mask)
    expected = [10 * math.log10(255**2 / c**2) for c in (1, 10, 40)]
    assert values["psnr"].tolist() == pytest.approx(expected, abs=1e-4)
    assert not values["psnr_capped"].any()

    metric = InpaintingMetrics(lpips=False)
    metric.update(levels_to_tensor(out), levels_to_tensor(gt), mask)
    # the mean of per-image PSNRs, not the PSNR of the mean MSE
    assert float(metric.compute()["psnr"]) == pytest.approx(sum(expected) / 3, abs=1e-4)


def test_identical_images_psnr_capped_and_ssim_one():
    gt = levels_to_tensor(random_levels((2, 3, 32, 32)))
    values = per_image_metrics(gt, gt.clone(), torch.zeros(2, 1, 32, 32))
    assert values["psnr"].tolist() == [PSNR_CAP, PSNR_CAP]
    assert values["psnr_capped"].tolist() == [True, True]
    assert values["ssim"].tolist() == pytest.approx([1.0, 1.0], abs=1e-7)
    assert values["l1"].tolist() == [0.0, 0.0]


def test_ssim_agrees_with_scikit_image_reference():
    from skimage.metrics import structural_similarity

    gt = random_levels((1, 3, 48, 40), seed=1)
    noisy = np.clip(gt.astype(np.float64) + np.random.default_rng(2).normal(0, 20, gt.shape), 0, 255).round()
    noisy = noisy.astype(np.uint8)
    values = per_image_metrics(levels_to_tensor(noisy), levels_to_tensor(gt), torch.zeros(1, 1, 48, 40))
    reference = structural_similarity(
        noisy[0].transpose(1, 2, 0).astype(np.float64),
        gt[0].transpose(1, 2, 0).astype(np.float64),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        channel_axis=2,
    )
    # same formula and window; torchmetrics and skimage only treat the outermost 5-pixel border differently
    assert float(values["ssim"][0]) == pytest.approx(reference, abs=1e-3)


def test_l1_whole_and_hole_by_hand():
    gt = np.zeros((2, 3, 2, 2), dtype=np.uint8)
    out = gt.copy()
    out[0, :, 0, 0] = 255  # image 0: one pixel fully wrong, inside the hole
    out[0, 0, 1, 1] = 51  # ... and one channel of one pixel off by 0.2, outside the hole
    out[1, :, :, :] = 102  # image 1: every pixel off by 0.4, no hole
    mask = torch.zeros(2, 1, 2, 2)
    mask[0, 0, 0, :] = 1  # hole: the top row of image 0
    values = per_image_metrics(levels_to_tensor(out), levels_to_tensor(gt), mask)
    assert values["l1"].tolist() == pytest.approx([(3 * 1.0 + 0.2) / 12, 0.4], abs=1e-6)
    assert float(values["l1_hole"][0]) == pytest.approx(3 * 1.0 / 6, abs=1e-6)
    assert math.isnan(float(values["l1_hole"][1]))
    assert values["hole_ratio"].tolist() == [0.5, 0.0]
    assert values["ssim"].isnan().all()  # 2x2 is below SSIM's 11x11 window: undefined, not an error

    metric = InpaintingMetrics(lpips=False)
    metric.update(levels_to_tensor(out), levels_to_tensor(gt), mask)
    result = metric.compute()
    assert float(result["l1"]) == pytest.approx(((3.2 / 12) + 0.4) / 2, abs=1e-6)
    assert float(result["l1_hole"]) == pytest.approx(0.5, abs=1e-6)  # image 1 has no hole: not counted
    assert set(result) == {"psnr", "ssim", "l1", "l1_hole"}


def test_lpips_pipeline_equals_lpips_package(random_lpips):
    out = levels_to_tensor(random_levels((3, 3, 64, 64), seed=3))
    gt = levels_to_tensor(random_levels((3, 3, 64, 64), seed=4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's notice about lpips' `pretrained=` argument
        direct = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False)
    direct.load_state_dict(random_lpips.model.state_dict())  # the same random trunk, the same shipped linear layers
    with torch.no_grad():
        expected = direct(out, gt).flatten()
    metric = InpaintingMetrics(lpips=random_lpips)
    metric.update(out, gt, torch.zeros(3, 1, 64, 64))
    assert torch.allclose(metric.last_per_image["lpips"], expected, atol=1e-6)
    assert float(metric.compute()["lpips"]) == pytest.approx(float(expected.mean()), abs=1e-6)
    # the calibrated v0.1 linear layers are the package's, not random
    shipped = torch.load(lpips.__path__[0] + "/weights/v0.1/alex.pth", map_location="cpu", weights_only=True)
    assert torch.equal(random_lpips.model.lin0.model[1].weight, shipped["lin0.model.1.weight"])


def test_lpips_trunk_loaded_from_torchvision_file(tmp_path):
    from torchvision.models import alexnet

    torch.manual_seed(1)
    state = alexnet(weights=None).state_dict()
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(state, path)
    metric = LPIPSMetric("alex", backbone_weights=str(path))
    assert metric.weights_used == str(path)
    assert torch.equal(metric.model.net.slice1[0].weight, state["features.0.weight"])
    assert torch.equal(getattr(metric.model.net.slice5, "10").bias, state["features.10.bias"])


def test_missing_lpips_weights_name_file_and_override(empty_torch_home, monkeypatch):
    monkeypatch.setenv("DMFN_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError) as info:
        LPIPSMetric("alex")
    message = str(info.value)
    assert "alexnet-owt-7be5be79.pth" in message
    assert "lpips.backbone_weights=random" in message
    with pytest.raises(WeightsUnavailableError, match=r"vgg16-397923af\.pth"):
        InpaintingMetrics(lpips=True, lpips_net="vgg")
    with pytest.warns(UserWarning, match="LPIPS disabled"):
        metric = InpaintingMetrics(lpips="auto")
    assert metric.lpips is None and "lpips" not in metric.names


def test_metric_weights_stay_out_of_checkpoints(random_lpips):
    metric = InpaintingMetrics(lpips=random_lpips)
    assert metric.state_dict() == {}

    class Holder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 1)
            self.metric = metric  # even registered as a submodule

    assert set(Holder().state_dict()) == {"conv.weight", "conv.bias"}
    random_lpips.to(torch.float64)
    try:
        assert next(random_lpips.model.parameters()).dtype == torch.float64  # .to() reaches the hidden net
    finally:
        random_lpips.to(torch.float32)
    Holder().train()
    assert not random_lpips.model.training  # dropout in the calibrated layers stays off


def test_batch_split_and_rank_merge_give_the_same_means(random_lpips):
    out = levels_to_tensor(random_levels((6, 3, 32, 32), seed=5))
    gt = levels_to_tensor(random_levels((6, 3, 32, 32), seed=6))
    mask = torch.zeros(6, 1, 32, 32)
    mask[:, :, 8:24, 8:24] = 1
    whole = InpaintingMetrics(lpips=random_lpips)
    whole.update(out, gt, mask)
    # two "ranks" reduced with their dist_reduce_fx (sum), as torchmetrics does under DDP
    rank0, rank1 = InpaintingMetrics(lpips=random_lpips), InpaintingMetrics(lpips=random_lpips)
    rank0.update(out[:2], gt[:2], mask[:2])
    rank0.update(out[2:3], gt[2:3], mask[2:3])
    rank1.update(out[3:], gt[3:], mask[3:])
    rank0.merge_state(rank1)
    expected, merged = whole.compute(), rank0.compute()
    assert set(expected) == {"psnr", "ssim", "lpips", "l1", "l1_hole"}
    for key in expected:
        assert float(merged[key]) == pytest.approx(float(expected[key]), abs=1e-6), key


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="same shape"):
        per_image_metrics(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 4), torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="mask"):
        per_image_metrics(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
