"""metrics.suite and the package's face: per_image_metrics (every convention, the headline), InpaintingMetrics
(batch split and DDP merge give the same means), shape errors, and the re-exports of dmfn_lightning.metrics."""

from __future__ import annotations

import pytest
import torch

from dmfn_lightning.metrics import InpaintingMetrics, per_image_metrics, ssim_per_image
from dmfn_lightning.metrics.pixel import PSNR_CAP, quantize
from dmfn_lightning.metrics.ssim import SSIM_CONVENTIONS
from dmfn_lightning.metrics.table import CONVENTION_NAMES, METRIC_NAMES
from tests.metrics.metric_images import composite, levels_to_tensor, photo, random_levels, to_tensor


def test_identical_images_psnr_capped_and_ssim_one():
    gt = levels_to_tensor(random_levels((2, 3, 32, 32)))
    values = per_image_metrics(gt, gt.clone(), torch.zeros(2, 1, 32, 32))
    assert values["psnr"].tolist() == [PSNR_CAP, PSNR_CAP]
    assert values["psnr_capped"].tolist() == [True, True]
    assert values["ssim"].tolist() == pytest.approx([1.0, 1.0], abs=1e-7)
    assert values["l1"].tolist() == [0.0, 0.0]


def test_per_image_metrics_returns_every_convention_and_the_headline():
    gt = photo(64)
    out, mask = composite(gt, (slice(16, 48), slice(16, 48)), "noise")
    batch = (to_tensor([out]), to_tensor([gt]), torch.from_numpy(mask)[None, None])
    values = per_image_metrics(*batch)
    assert {"psnr", "psnr_capped", "mse", "ssim", "ssim_full", "ssim_cropped", "ssim_uniform7"} <= set(values)
    assert torch.equal(values["ssim"], values["ssim_full"])  # the default headline: today's torchmetrics value
    for convention in SSIM_CONVENTIONS:
        chosen = per_image_metrics(*batch, ssim=convention)
        assert torch.equal(chosen["ssim"], chosen[f"ssim_{convention}"])
        # the batch computes `cropped` as the interior of the padded map: the same numbers up to rounding
        single = ssim_per_image(quantize(batch[0]), quantize(batch[1]), convention)
        assert torch.allclose(single, chosen["ssim"], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="full, cropped, uniform7"):
        per_image_metrics(*batch, ssim="gaussian")
    with pytest.raises(ValueError, match="full, cropped, uniform7"):
        InpaintingMetrics(lpips=False, ssim="matlab")


def test_batch_split_and_rank_merge_give_the_same_means(random_lpips):
    out = levels_to_tensor(random_levels((6, 3, 32, 32), seed=5))
    gt = levels_to_tensor(random_levels((6, 3, 32, 32), seed=6))
    mask = torch.zeros(6, 1, 32, 32)
    mask[:, :, 8:24, 8:24] = 1
    whole = InpaintingMetrics(lpips=random_lpips, all_conventions=True)
    whole.update(out, gt, mask)
    # two "ranks" reduced with their dist_reduce_fx (sum), as torchmetrics does under DDP
    rank0 = InpaintingMetrics(lpips=random_lpips, all_conventions=True)
    rank1 = InpaintingMetrics(lpips=random_lpips, all_conventions=True)
    rank0.update(out[:2], gt[:2], mask[:2])
    rank0.update(out[2:3], gt[2:3], mask[2:3])
    rank1.update(out[3:], gt[3:], mask[3:])
    rank0.merge_state(rank1)
    expected, merged = whole.compute(), rank0.compute()
    # every metric and convention of the table (test_table.py pins the names); the training logs: the metrics only
    assert tuple(expected) == METRIC_NAMES + CONVENTION_NAMES
    assert InpaintingMetrics(lpips=False).names == tuple(n for n in METRIC_NAMES if n != "lpips")
    for key in expected:
        assert float(merged[key]) == pytest.approx(float(expected[key]), abs=1e-6), key


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="same shape"):
        per_image_metrics(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 4), torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="mask"):
        per_image_metrics(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))


def test_metrics_module_re_exports_the_split_modules():
    from dmfn_lightning import metrics
    from dmfn_lightning.metrics import distribution, options, perceptual, pixel, ssim, suite, table

    for name in metrics.__all__:
        assert hasattr(metrics, name), name
    for module in (distribution, options, perceptual, pixel, ssim, suite, table):
        for name in set(getattr(module, "__all__", dir(module))) & set(metrics.__all__):
            assert getattr(metrics, name) is getattr(module, name), f"{module.__name__}.{name}"
