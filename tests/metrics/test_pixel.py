"""metrics.pixel: 8-bit quantisation, PSNR per image and dataset-level (closed forms, scikit-image) and L1 by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

from dmfn_lightning.metrics import InpaintingMetrics, per_image_metrics
from dmfn_lightning.metrics.pixel import PSNR_CAP, psnr_from_mse, quantize
from dmfn_lightning.metrics.ssim import SSIM_CONVENTIONS
from dmfn_lightning.metrics.table import METRIC_NAMES
from tests.metrics.metric_images import composite, levels_to_tensor, photo, random_levels, to_tensor


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


def test_psnr_per_image_and_dataset_level_equal_scikit_image():
    gts = [photo(64, seed) for seed in range(4)]
    outs = [composite(gt, (slice(8 * i, 8 * i + 32), slice(0, 40)), "noise", i)[0] for i, gt in enumerate(gts)]
    outs[3] = gts[3].copy()  # one perfect image: its PSNR is capped, its MSE (0) still counts in the dataset level
    mask = torch.zeros(4, 1, 64, 64)
    values = per_image_metrics(to_tensor(outs), to_tensor(gts), mask)
    for i in range(3):
        assert float(values["psnr"][i]) == pytest.approx(
            peak_signal_noise_ratio(gts[i], outs[i], data_range=255), abs=1e-6
        )
        assert float(values["mse"][i]) == pytest.approx(np.mean((gts[i].astype(float) - outs[i]) ** 2), abs=1e-9)
    assert values["psnr_capped"].tolist() == [False, False, False, True]
    # dataset level: the mean MSE over the images (all the same size: the MSE of the stacked set), then PSNR
    dataset = peak_signal_noise_ratio(np.stack(gts), np.stack(outs), data_range=255)
    assert float(psnr_from_mse(values["mse"].mean())[0]) == pytest.approx(dataset, abs=1e-6)
    per_image_mean = float(values["psnr"].mean())
    assert abs(dataset - per_image_mean) > 1.0  # the two conventions really differ (the capped image pulls the mean)

    metric = InpaintingMetrics(lpips=False, all_conventions=True)
    metric.update(to_tensor(outs[:3]), to_tensor(gts[:3]), mask[:3])
    metric.update(to_tensor(outs[3:]), to_tensor(gts[3:]), mask[3:])
    result = metric.compute()
    assert float(result["psnr_dataset"]) == pytest.approx(dataset, abs=1e-4)  # compute() returns float32
    assert float(result["psnr"]) == pytest.approx(per_image_mean, abs=1e-4)
    assert float(psnr_from_mse(torch.zeros(1, dtype=torch.float64))[0]) == PSNR_CAP


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
    assert values["ssim"].isnan().all()  # 2x2 is below every SSIM window: undefined, not an error
    assert all(values[f"ssim_{c}"].isnan().all() for c in SSIM_CONVENTIONS)

    metric = InpaintingMetrics(lpips=False)
    metric.update(levels_to_tensor(out), levels_to_tensor(gt), mask)
    result = metric.compute()
    assert float(result["l1"]) == pytest.approx(((3.2 / 12) + 0.4) / 2, abs=1e-6)
    assert float(result["l1_hole"]) == pytest.approx(0.5, abs=1e-6)  # image 1 has no hole: not counted
    assert set(result) == set(METRIC_NAMES) - {"lpips"}  # the names test_table.py pins; LPIPS off
