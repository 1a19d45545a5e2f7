"""metrics.ssim: the three SSIM conventions against their references (scikit-image for the cropped ones,
torchmetrics and the formula for the padded one), at every size, and on a photo with Table 1's centre hole."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torchmetrics.functional.image import structural_similarity_index_measure

from dmfn_lightning.metrics import per_image_metrics, ssim_per_image
from dmfn_lightning.metrics.pixel import quantize
from dmfn_lightning.metrics.ssim import SSIM_CONVENTIONS
from tests.metrics.metric_images import composite, photo, to_tensor


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
