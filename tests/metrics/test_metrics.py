"""Metrics of Table 1 against closed forms, hand computations and the reference packages (scikit-image for SSIM and
PSNR under each convention, torchmetrics for the padded SSIM, the lpips package for LPIPS)."""

from __future__ import annotations

import importlib.metadata
import math
import warnings

import lpips
import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch import nn
from torchmetrics.functional.image import structural_similarity_index_measure

from dmfn_lightning.core.errors import WeightsUnavailableError
from dmfn_lightning.metrics import InpaintingMetrics, per_image_metrics, ssim_per_image
from dmfn_lightning.metrics.perceptual import LPIPSMetric
from dmfn_lightning.metrics.pixel import PSNR_CAP, psnr_from_mse, quantize
from dmfn_lightning.metrics.ssim import SSIM_CONVENTIONS


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


def photo(size: int, seed: int = 0) -> np.ndarray:
    """A ``size`` x ``size`` uint8 HWC crop of scikit-image's astronaut (a real photo: smooth areas and edges)."""
    rng = np.random.default_rng(seed)
    full = skdata.astronaut()
    side = int(rng.integers(max(size, 64), 512))
    y, x = (int(v) for v in rng.integers(0, 512 - side + 1, 2))
    return np.asarray(Image.fromarray(full[y : y + side, x : x + side]).resize((size, size), Image.BICUBIC))


def composite(gt: np.ndarray, hole: tuple[slice, slice], fill: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(output, mask): ``gt`` with the hole replaced as an inpainting result would be (noise, blur or flat)."""
    out = gt.copy()
    region = out[hole]
    if fill == "noise":
        out[hole] = np.random.default_rng(seed).integers(0, 256, region.shape)
    elif fill == "blur":
        out[hole] = ndimage.gaussian_filter(gt.astype(np.float64), sigma=(4, 4, 0))[hole].round().astype(np.uint8)
    else:
        out[hole] = region.reshape(-1, 3).mean(axis=0).round().astype(np.uint8)
    mask = np.zeros(gt.shape[:2], dtype=np.float32)
    mask[hole] = 1.0
    return out, mask


def skimage_ssim(out: np.ndarray, gt: np.ndarray, convention: str) -> float:
    """The scikit-image reference for the cropped conventions, on the uint8 HWC images."""
    if convention == "cropped":
        return structural_similarity(
            out, gt, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=2
        )
    return structural_similarity(out, gt, data_range=255, channel_axis=2)  # scikit-image's defaults: uniform7


def padded_ssim_reference(out: np.ndarray, gt: np.ndarray) -> float:
    """``ssim_full`` straight from the formula with scipy: Gaussian 11 / 1.5 on the whole-sample-reflected image
    (scipy's ``mirror`` is torch's ``reflect``), no crop."""
    x, y = out.astype(np.float64), gt.astype(np.float64)

    def filt(a):
        return ndimage.gaussian_filter(a, sigma=(1.5, 1.5, 0), truncate=3.5, mode="mirror")

    mx, my = filt(x), filt(y)
    vx, vy, cxy = filt(x * x) - mx * mx, filt(y * y) - my * my, filt(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    return float(np.mean(((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))))


def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """uint8 HWC images -> [-1, 1] ``[B, 3, H, W]`` as the data layer delivers them."""
    return levels_to_tensor(np.stack(images).transpose(0, 3, 1, 2))


# (size, hole, fill): centre holes as in Table 1, holes touching one or two borders (where the conventions differ
# most), images exactly the window's size and images smaller than a window.
SSIM_CASES = [
    (64, (slice(16, 48), slice(16, 48)), "noise"),
    (64, (slice(0, 30), slice(0, 40)), "blur"),  # touches the top and left borders
    (96, (slice(60, 96), slice(20, 96)), "flat"),  # touches the bottom and right borders
    (48, (slice(0, 48), slice(10, 20)), "noise"),  # a band from the top to the bottom border
    (11, (slice(3, 8), slice(3, 8)), "noise"),  # exactly the Gaussian window
    (8, (slice(0, 4), slice(2, 6)), "noise"),  # below the Gaussian window, above uniform7's
    (7, (slice(2, 5), slice(2, 5)), "blur"),  # exactly the uniform window
    (6, (slice(0, 3), slice(0, 3)), "noise"),  # only the padded convention is defined
    (5, (slice(1, 4), slice(1, 4)), "noise"),  # no convention is defined
]


@pytest.mark.parametrize(("size", "hole", "fill"), SSIM_CASES, ids=[f"{c[0]}px-{i}" for i, c in enumerate(SSIM_CASES)])
def test_ssim_conventions_equal_their_references(size, hole, fill):
    gts = [photo(size, seed) for seed in (0, 1)]
    pairs = [composite(gt, hole, fill, seed) for seed, gt in enumerate(gts)]
    outs = [out for out, _ in pairs]
    mask = torch.from_numpy(np.stack([m for _, m in pairs]))[:, None]
    values = per_image_metrics(to_tensor(outs), to_tensor(gts), mask)
    pred255, target255 = quantize(to_tensor(outs)), quantize(to_tensor(gts))
    for i, (out, gt) in enumerate(zip(outs, gts)):
        for convention in ("cropped", "uniform7"):
            key = f"ssim_{convention}"
            if size >= SSIM_CONVENTIONS[convention].min_side:
                assert float(values[key][i]) == pytest.approx(skimage_ssim(out, gt, convention), abs=1e-6), key
            else:
                # scikit-image refuses such images; so does the per-convention function, and the batch reports NaN
                with pytest.raises(ValueError, match="win_size exceeds image extent"):
                    skimage_ssim(out, gt, convention)
                with pytest.raises(
                    ValueError, match=rf"{convention}.*at least {SSIM_CONVENTIONS[convention].min_side}"
                ):
                    ssim_per_image(pred255, target255, convention)
                assert math.isnan(float(values[key][i]))
        if size >= SSIM_CONVENTIONS["full"].min_side:
            torchmetrics_value = structural_similarity_index_measure(
                pred255[i : i + 1].double(), target255[i : i + 1].double(), data_range=255.0
            )
            assert float(values["ssim_full"][i]) == pytest.approx(float(torchmetrics_value), abs=1e-6)
            assert float(values["ssim_full"][i]) == pytest.approx(padded_ssim_reference(out, gt), abs=1e-6)
        else:
            with pytest.raises(ValueError, match="at least 6x6"):
                ssim_per_image(pred255, target255, "full")
            assert math.isnan(float(values["ssim_full"][i]))
        assert float(values["ssim"][i]) == float(values["ssim_full"][i]) or math.isnan(float(values["ssim"][i]))
        # PSNR needs no window: the straight formula (via scikit-image) at every size
        assert float(values["psnr"][i]) == pytest.approx(peak_signal_noise_ratio(gt, out, data_range=255), abs=1e-6)


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


def test_ssim_conventions_on_a_photo_with_a_centre_hole():
    """The README's numbers: astronaut at 256 px, the centre 128 x 128 hole filled with noise (the issue's example)
    or with a blurred copy (closer to an inpainting result); the conventions differ by about 0.02."""
    gt = np.asarray(Image.fromarray(skdata.astronaut()).resize((256, 256), Image.BICUBIC))
    hole = (slice(64, 192), slice(64, 192))
    noisy = gt.copy()
    noisy[hole] = np.random.default_rng(0).integers(0, 256, (128, 128, 3))
    blurred = gt.copy()
    blurred[hole] = ndimage.gaussian_filter(gt.astype(np.float64), sigma=(8, 8, 0))[hole].round().astype(np.uint8)
    mask = torch.zeros(2, 1, 256, 256)
    mask[:, :, 64:192, 64:192] = 1
    values = per_image_metrics(to_tensor([noisy, blurred]), to_tensor([gt, gt]), mask)
    measured = {k: [round(float(v), 4) for v in values[k]] for k in ("ssim_full", "ssim_cropped", "ssim_uniform7")}
    assert measured == {
        "ssim_full": [0.7341, 0.8244],
        "ssim_cropped": [0.7120, 0.8098],
        "ssim_uniform7": [0.7229, 0.8118],
    }
    # the known border ring (SSIM 1) that only `full` averages in: 1 - (246 / 256)^2 of the image
    ring = 1 - (246 / 256) ** 2
    gap = values["ssim_full"] - values["ssim_cropped"]
    assert gap.tolist() == pytest.approx((ring * (1 - values["ssim_cropped"])).tolist(), abs=3e-3)


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
    assert set(result) == {"psnr", "ssim", "l1", "l1_hole"}


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_pipeline_equals_lpips_package(random_lpips, net):
    if net == "alex":
        ours = random_lpips
    else:
        torch.manual_seed(1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the random-trunk warning
            ours = LPIPSMetric("vgg", backbone_weights="random")
    out = levels_to_tensor(random_levels((3, 3, 64, 64), seed=3))
    gt = levels_to_tensor(random_levels((3, 3, 64, 64), seed=4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's notice about lpips' `pretrained=` argument
        direct = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    direct.load_state_dict(ours.model.state_dict())  # the same random trunk, the same shipped linear layers
    direct.eval()
    with torch.no_grad():
        expected = direct(out, gt).flatten()
    metric = InpaintingMetrics(lpips=ours)
    metric.update(out, gt, torch.zeros(3, 1, 64, 64))
    assert torch.allclose(metric.last_per_image["lpips"], expected, atol=1e-6)
    assert float(metric.compute()["lpips"]) == pytest.approx(float(expected.mean()), abs=1e-6)
    # the calibrated v0.1 linear layers are the package's, not random
    shipped = torch.load(lpips.__path__[0] + f"/weights/v0.1/{net}.pth", map_location="cpu", weights_only=True)
    assert torch.equal(ours.model.lin0.model[1].weight, shipped["lin0.model.1.weight"])
    # reports name the trunk and the package version
    assert metric.settings()["lpips"] == {
        "net": net,
        "version": "0.1",
        "package_version": importlib.metadata.version("lpips"),
        "backbone": "random",
    }


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
    assert set(expected) == {"psnr", "ssim", "lpips", "l1", "l1_hole"} | {
        "psnr_dataset",
        "ssim_full",
        "ssim_cropped",
        "ssim_uniform7",
    }
    assert set(InpaintingMetrics(lpips=False).names) == {"psnr", "ssim", "l1", "l1_hole"}  # training logs: unchanged
    for key in expected:
        assert float(merged[key]) == pytest.approx(float(expected[key]), abs=1e-6), key


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="same shape"):
        per_image_metrics(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 4), torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="mask"):
        per_image_metrics(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))


# ---------------------------------------------------------------------------------------------------------------
# FID and KID


class RandomFeatures(nn.Module):
    """A small random-initialised feature extractor (uint8 images -> 32-d), standing in for Inception v3."""

    num_features = 32

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2), nn.AdaptiveAvgPool2d(1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dtype == torch.uint8  # the Inception convention: 8-bit images
        return self.net(x.float() / 127.5 - 1.0).flatten(1) * 10


def photo_batch(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    return to_tensor([photo(size, seed + i) for i in range(n)])


def test_fid_and_kid_with_a_random_feature_extractor():
    from dmfn_lightning.metrics import DistributionMetrics

    real = photo_batch(24)
    other = photo_batch(24, seed=100).flip(-1).mul(0.6)  # other crops, mirrored and darker

    same = DistributionMetrics(feature=RandomFeatures(), kid_subset_size=1000)
    for chunk in range(0, 24, 10):  # batches: the features accumulate over the whole set
        same.update(real[chunk : chunk + 10], real[chunk : chunk + 10])
    identical = same.compute()
    different_metric = DistributionMetrics(feature=RandomFeatures(), kid_subsets=20, kid_subset_size=16)
    different_metric.update(other, real)
    different = different_metric.compute()

    # measured: FID ~3e-8 vs 4.0; KID -0.078 vs 1.54 (KID is the unbiased MMD estimate: for one set against itself
    # it is ~0 up to the O(1/n) difference of the diagonal kernel terms, of either sign)
    assert identical["fid"] == pytest.approx(0.0, abs=1e-4)
    assert different["fid"] > 1.0 and different["kid"] > 0.5
    assert abs(identical["kid"]) < 0.1 * different["kid"]
    # KID's random subsets come from a seeded generator: computing again gives the same numbers
    assert different_metric.compute() == different
    info = different_metric.settings()
    assert info["feature_extractor"] == "custom: RandomFeatures" and info["num_features"] == 32
    assert info["kid_subset_size"] == 16 and same.settings()["kid_subset_size"] == 24  # clamped to the images


def test_fid_kid_need_two_images():
    from dmfn_lightning.metrics import DistributionMetrics

    metric = DistributionMetrics(feature=RandomFeatures())
    metric.update(photo_batch(1), photo_batch(1))
    assert metric.compute() == {"fid": None, "kid": None, "kid_std": None}


def test_missing_inception_weights_say_where_to_put_the_file(empty_torch_home):
    from dmfn_lightning.metrics import (
        INCEPTION_WEIGHTS_FILE,
        DistributionMetrics,
        FeatureExtractorUnavailableError,
        inception_weights_path,
    )

    assert inception_weights_path() == empty_torch_home / "hub" / "checkpoints" / INCEPTION_WEIGHTS_FILE
    with pytest.raises(FeatureExtractorUnavailableError) as info:
        DistributionMetrics(fid=True, kid=True)
    message = str(info.value)
    assert "\n" not in message
    assert f"put {INCEPTION_WEIGHTS_FILE}" in message and f"{empty_torch_home / 'hub' / 'checkpoints'}/" in message
    assert "metrics.inception_weights=" in message
    with pytest.raises(FeatureExtractorUnavailableError, match="no such file"):
        DistributionMetrics(weights=str(empty_torch_home / "nowhere.pth"))


def test_inception_v3_features_when_available():
    """The real network, when this machine has torch-fidelity and the cached weights (skipped otherwise)."""
    from dmfn_lightning.metrics import DistributionMetrics, inception_weights_path
    from dmfn_lightning.metrics.distribution import _torch_fidelity_available

    if not (_torch_fidelity_available() and inception_weights_path().is_file()):
        pytest.skip(f"needs torch-fidelity and {inception_weights_path()}")
    metric = DistributionMetrics(kid_subset_size=4)
    real = photo_batch(4, size=64)
    metric.update(real, real)
    values = metric.compute()
    assert metric.num_features == 2048 and values["fid"] == pytest.approx(0.0, abs=1e-3)


def test_metrics_module_re_exports_the_split_modules():
    from dmfn_lightning import metrics
    from dmfn_lightning.metrics import distribution, perceptual, pixel, ssim, suite

    for name in metrics.__all__:
        assert hasattr(metrics, name), name
    for module in (distribution, perceptual, pixel, ssim, suite):
        for name in set(getattr(module, "__all__", dir(module))) & set(metrics.__all__):
            assert getattr(metrics, name) is getattr(module, name), f"{module.__name__}.{name}"
