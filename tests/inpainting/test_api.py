"""The inpainting API (dmfn_lightning.inpainting.api): any size, known pixels bit-identical, working sizes, batches,
precision, the HD strategies seen from the generator, the one check of the settings, the memory and NaN guards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from dmfn_lightning.core.errors import InpaintError, InpaintMemoryError
from dmfn_lightning.inpainting.api import (
    SettingNames,
    Settings,
    inpaint,
    inpaint_batch,
    inpaint_tensor,
    resolve_settings,
    resolve_strategy,
)
from dmfn_lightning.inpainting.image_io import load_image
from dmfn_lightning.masks import generate_mask
from dmfn_lightning.models import DMFNGenerator, export_generator, load_generator
from dmfn_lightning.models.inference import run_generator
from tests.inpainting.photo_fakes import HD_H, HD_W, Forbidden, Spy, hd_holes, rgba_image, small_generator


@pytest.fixture(scope="module")
def generator() -> DMFNGenerator:
    return small_generator(base_channels=16)


def test_rgba_image_with_one_pixel_hole(generator, tmp_path):
    src = rgba_image()
    src.save(tmp_path / "photo.png")
    image = load_image(tmp_path / "photo.png")
    assert image.mode == "RGB" and image.size == (301, 199)
    hole = np.zeros((199, 301), dtype=bool)
    hole[120, 77] = True
    result = inpaint(generator, image, hole)
    assert result.mode == "RGB" and result.size == (301, 199)
    before, after = np.asarray(src)[..., :3], np.asarray(result)
    assert np.array_equal(after[~hole], before[~hole])  # known pixels bit-identical
    assert np.array_equal(np.asarray(inpaint(generator, src, hole))[~hole], before[~hole])  # PIL RGBA in, too


def test_transparent_image_is_composited_on_white_and_kept_exactly(generator):
    src = rgba_image(40, 30, opaque=False, seed=1)
    rgb = np.asarray(load_image(src))
    alpha = np.asarray(src)[..., 3:].astype(np.float64) / 255
    expected = np.asarray(src)[..., :3] * alpha + 255 * (1 - alpha)
    assert np.abs(rgb.astype(np.float64) - expected).max() <= 1.0
    hole = np.zeros((30, 40), dtype=bool)
    hole[10:20, 10:30] = True
    out = np.asarray(inpaint(generator, src, hole))
    assert np.array_equal(out[~hole], rgb[~hole])


def test_all_zero_mask_returns_input_without_running_the_network():
    src = rgba_image(33, 17)
    out = inpaint(Forbidden(), src, np.zeros((17, 33), dtype=bool))
    assert np.array_equal(np.asarray(out), np.asarray(src)[..., :3])


def test_all_one_mask_still_returns_an_image(generator):
    out = inpaint(generator, rgba_image(37, 21), np.ones((21, 37), dtype=bool))
    assert out.mode == "RGB" and out.size == (37, 21)
    assert np.asarray(out).std() > 0  # a real prediction, not a blank


def test_padding_to_multiple_of_four_and_tiny_images():
    spy = Spy()
    image = torch.zeros(1, 3, 199, 301)
    mask = torch.zeros(1, 1, 199, 301)
    out = run_generator(spy, image, mask)
    assert spy.shapes[-1] == (1, 4, 200, 304) and out.shape == (1, 3, 199, 301)
    run_generator(spy, torch.zeros(2, 3, 3, 5), torch.ones(2, 1, 3, 5))  # too small to reflect: replicate
    assert spy.shapes[-1] == (2, 4, 8, 8)
    tiny = inpaint(small_generator(base_channels=8), rgba_image(3, 2), np.ones((2, 3), dtype=bool))
    assert tiny.size == (3, 2)


def test_working_size_runs_at_low_resolution_and_pastes_known_pixels(generator):
    spy = Spy()
    src = rgba_image()
    hole = np.zeros((199, 301), dtype=bool)
    hole[50:90, 100:180] = True
    out = inpaint(spy, src, hole, working_size=64)
    assert spy.shapes[-1] == (1, 4, 44, 64)  # longer side 64, aspect kept, multiples of 4
    arr = np.asarray(out)
    assert out.size == (301, 199)
    assert np.array_equal(arr[~hole], np.asarray(src)[..., :3][~hole])
    # the spy's grey prediction, upsampled into the hole (its rim blends with the low-resolution context)
    assert np.all(np.abs(arr[62:78, 112:168].astype(int) - 128) <= 1)
    real = inpaint(generator, src, hole, working_size=96)
    assert np.array_equal(np.asarray(real)[~hole], np.asarray(src)[..., :3][~hole])


def test_working_size_does_not_leak_the_removed_object_into_the_context():
    spy = Spy()
    inputs = []
    spy.register_forward_hook(lambda module, args, out: inputs.append(args[0]))
    image = torch.zeros(1, 3, 300, 200, dtype=torch.uint8)
    image[..., 101:203, 47:151] = 255  # a white object on black, exactly under the hole
    hole = torch.zeros(1, 1, 300, 200, dtype=torch.bool)
    hole[..., 101:203, 47:151] = True
    inpaint_tensor(spy, image, hole, working_size=64)
    x = inputs[-1]
    known = (x[:, 3:] == 0).expand(-1, 3, -1, -1)
    assert x.shape == (1, 4, 64, 44) and torch.all(x[:, :3][known] == -1)  # context stays black


def test_bf16_precision_keeps_known_pixels_exact(generator):
    src = rgba_image(64, 48)
    hole = generate_mask("center", 64, 48)
    fp32 = np.asarray(inpaint(generator, src, hole))
    bf16 = np.asarray(inpaint(generator, src, hole, precision="bf16"))
    assert np.array_equal(bf16[~hole], fp32[~hole])
    assert np.abs(bf16[hole].astype(int) - fp32[hole].astype(int)).mean() < 8
    with pytest.raises(InpaintError, match="precision"):
        inpaint(generator, src, hole, precision="fp8")


def test_batch_matches_single_images(generator):
    images = [rgba_image(40, 32, seed=s) for s in range(3)]
    holes = [generate_mask("free_form", 40, 32, seed=s) for s in range(3)]
    batched = inpaint_batch(generator, images, holes)
    for image, hole, out in zip(images, holes, batched):
        single = np.asarray(inpaint(generator, image, hole)).astype(int)
        assert np.abs(np.asarray(out).astype(int) - single).max() <= 1
    with pytest.raises(InpaintError, match="one size"):
        inpaint_batch(generator, [rgba_image(40, 32), rgba_image(41, 32)], [holes[0], holes[0]])


def test_tensor_images_in_the_python_api(generator):
    """CHW / HWC tensors are accepted (uint8, or float in [0, 1]); other ranges are a clear error."""
    src = np.asarray(rgba_image(24, 16).convert("RGB"))
    hole = np.zeros((16, 24), dtype=bool)
    hole[4:10, 6:14] = True
    expected = np.asarray(inpaint(generator, src, hole))
    chw = torch.from_numpy(src.copy()).permute(2, 0, 1)
    for image in (chw, chw[None], torch.from_numpy(src.copy()), chw.float() / 255):
        out = np.asarray(inpaint(generator, image, hole))
        assert np.array_equal(out[~hole], src[~hole])
        assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1
    assert np.array_equal(np.asarray(load_image(chw)), src)
    with pytest.raises(InpaintError, match=r"\(x \+ 1\) / 2"):
        inpaint(generator, chw.float() / 127.5 - 1, hole)
    with pytest.raises(InpaintError, match="as an image"):
        load_image(torch.zeros(2, 5, 16, 24))


# ---------------------------------------------------------------------------------------------------------------
# the memory and NaN guards


def test_memory_guard_refuses_before_running(monkeypatch):
    """The peak is estimated from the size and compared with the free memory, before the network runs."""
    import dmfn_lightning.core.devices as devices

    monkeypatch.setattr(devices, "available_memory", lambda device: 64 * 2**20)  # 64 MiB free, for check_memory
    hole = np.ones((600, 800), dtype=bool)
    with pytest.raises(InpaintError, match="working_size=") as info:
        inpaint(Forbidden(), rgba_image(800, 600), hole)
    assert "needs about" in str(info.value) and "--working-size" in str(info.value)
    spy = Spy()
    inpaint(spy, rgba_image(800, 600), hole, working_size=64)  # a working size that fits runs


def test_huge_working_size_is_refused_clearly():
    with pytest.raises(InpaintError, match="working-size"):
        inpaint(Forbidden(), rgba_image(40, 30), np.ones((30, 40), dtype=bool), working_size=100000)


@pytest.mark.parametrize(
    "error",
    [
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
        RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 96000000000 bytes."),
        MemoryError(),
    ],
    ids=["cuda", "cpu", "python"],
)
def test_out_of_memory_becomes_a_clean_error(error):
    """An allocation that still fails is an InpaintError that suggests a working size."""

    class Oom(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(()))

        def forward(self, x):
            raise error

    with pytest.raises(InpaintError, match="out of memory") as info:
        inpaint(Oom(), rgba_image(16, 12), np.ones((12, 16), dtype=bool))
    assert "--working-size" in str(info.value)


def nan_generator_file(tmp_path: Path) -> Path:
    generator = small_generator(base_channels=8)
    with torch.no_grad():
        generator.decoder[-1].conv.weight.fill_(float("nan"))
    return export_generator(generator, tmp_path / "nan_generator.pt")


def test_nan_generator_is_reported_never_saved_as_black(tmp_path):
    """Non-finite predictions raise from the API (the CLI's side: tests/test_inpaint.py)."""
    path = nan_generator_file(tmp_path)
    hole = generate_mask("center", 32, 24)
    with pytest.raises(InpaintError, match="NaN or infinite"):
        inpaint(load_generator(path), rgba_image(32, 24), hole)
    with pytest.raises(InpaintError, match="NaN or infinite"):
        inpaint(load_generator(path), rgba_image(32, 24), hole, working_size=16)


# ---------------------------------------------------------------------------------------------------------------
# the HD strategies, as the generator sees them


def test_crop_keeps_known_pixels_bit_identical(generator):
    src = np.asarray(rgba_image(HD_W, HD_H, seed=3).convert("RGB"))
    hole = hd_holes((20, 30, 25, 40), (300, 500, 40, 60))
    hole[200:215, 250:262] = True
    hole[207, 262:300] = True  # a thin diagonal-free stroke attached to the box: one connected hole
    for kwargs in ({}, {"crop_margin": 0}, {"working_size": 64}, {"precision": "bf16"}):
        out = np.asarray(inpaint(generator, src, hole, strategy="crop", **kwargs))
        assert out.shape == src.shape
        assert np.array_equal(out[~hole], src[~hole]), kwargs
        assert (out[hole] != src[hole]).mean() > 0.9, kwargs  # the holes were filled


def test_crop_hole_touching_the_border(generator):
    src = np.asarray(rgba_image(HD_W, HD_H, seed=4).convert("RGB"))
    hole = hd_holes((0, 0, 30, 50), (370, 560, 30, 40), (150, 580, 60, 20))  # two corners and the right edge
    out = np.asarray(inpaint(generator, src, hole, strategy="crop", crop_margin=16))
    assert np.array_equal(out[~hole], src[~hole])
    assert (out[hole] != src[hole]).mean() > 0.9


def test_strategy_reaches_the_generator_at_the_expected_resolution():
    src = rgba_image(HD_W, HD_H)
    hole = hd_holes((20, 20, 10, 10), (370, 570, 10, 10))  # far apart: one window each

    def shapes(**kwargs) -> list[tuple[int, ...]]:
        spy = Spy()
        out = np.asarray(inpaint(spy, src, hole, **kwargs))
        assert np.array_equal(out[~hole], np.asarray(src.convert("RGB"))[~hole])
        if kwargs.get("strategy") != "resize" and "working_size" not in kwargs:
            assert np.all(out[hole] == 128)  # the spy's grey, exactly (resize blends it with the upsampled rim)
        return spy.shapes

    assert shapes() == shapes(strategy="full") == [(1, 4, 400, 600)]  # today's default: full resolution
    assert shapes(working_size=200) == shapes(strategy="resize", working_size=200) == [(1, 4, 132, 200)]
    assert shapes(strategy="resize") == [(1, 4, 172, 256)]  # resize without a size: the training size
    # crop: one 256x256 window per hole (hole + 128 px margin, grown to the training size), at full resolution.
    assert shapes(strategy="crop") == [(1, 4, 256, 256)] * 2
    assert shapes(strategy="crop", crop_margin=0, working_size=512) == [(1, 4, 256, 256)] * 2  # under the cap
    assert shapes(strategy="crop", working_size=128) == [(1, 4, 128, 128)] * 2  # over the cap: resized to it
    # Holes close together: one merged window.
    spy = Spy()
    inpaint(spy, src, hd_holes((100, 100, 10, 10), (100, 300, 10, 10)), strategy="crop", crop_margin=0)
    assert spy.shapes == [(1, 4, 256, 436)]  # 256 x 433, padded to a multiple of 4


def test_crop_memory_guard_names_the_window(monkeypatch):
    import dmfn_lightning.core.devices as devices

    monkeypatch.setattr(devices, "available_memory", lambda device: 2**20)  # 1 MiB free, for check_memory
    with pytest.raises(InpaintMemoryError, match=r"crop window 256x256: .*256x256 image"):
        inpaint(Forbidden(), rgba_image(HD_W, HD_H), hd_holes((100, 100, 10, 10)), strategy="crop")


# ---------------------------------------------------------------------------------------------------------------
# the one check of strategy, working size and crop margin


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "tiles"}, r"strategy must be one of full, resize, crop, got 'tiles'"),
        ({"strategy": "full", "working_size": 512}, r"strategy full .*working_size 512 needs strategy resize or crop"),
        ({"strategy": "crop", "crop_margin": -4}, r"crop_margin must be .*>= 0, got -4"),
        ({"strategy": "crop", "crop_margin": 1.5}, r"crop_margin .* got 1.5"),
        ({"strategy": "resize", "working_size": 4}, r"working_size must be a whole number of pixels >= 8, got 4"),
        ({"working_size": 64.5}, r"working_size .* got 64.5"),
        ({"crop_margin": 32}, r"crop_margin 32 applies to strategy crop only, not full"),
        ({"strategy": "resize", "crop_margin": 0}, r"crop_margin 0 applies to strategy crop only, not resize"),
    ],
)
def test_bad_strategy_values_are_one_line_errors(kwargs, message):
    with pytest.raises(InpaintError, match=message) as info:
        inpaint(Forbidden(), rgba_image(40, 30), np.ones((30, 40), dtype=bool), **kwargs)
    assert "\n" not in str(info.value)


def test_resolve_settings_is_the_one_check_under_the_callers_names():
    assert resolve_settings() == Settings("full", None, 128)
    assert resolve_settings(working_size=256) == Settings("resize", 256, 128)
    assert resolve_settings("crop", np.int64(512), np.int32(16)) == Settings("crop", 512, 16)
    assert resolve_strategy(None, 64) == "resize" and resolve_strategy("crop") == "crop"
    flags = SettingNames("--strategy", "--working-size", "--crop-margin")
    for args, message in (
        (("tiles", None, None), "--strategy must be one of full, resize, crop, got 'tiles'"),
        (("full", 512, None), "--strategy full processes the image at its own resolution; --working-size 512 needs"),
        ((None, 7, None), "--working-size must be a whole number of pixels >= 8, got 7"),
        (("crop", None, -1), "--crop-margin must be a whole number of pixels >= 0, got -1"),
        ((None, None, 64), "--crop-margin 64 applies to --strategy crop only, not full"),
        (("resize", True, None), "--working-size must be a whole number of pixels >= 8, got True"),
    ):
        with pytest.raises(InpaintError) as info:
            resolve_settings(*args, names=flags)
        assert message in str(info.value) and "\n" not in str(info.value), args


def test_inpaint_accepts_an_image_file_and_a_mask_file(generator, tmp_path):
    rgba_image(40, 30).save(tmp_path / "photo.png")
    hole = np.zeros((30, 40), dtype=bool)
    hole[5:15, 10:25] = True
    Image.fromarray(hole.astype(np.uint8) * 255).save(tmp_path / "mask.png")
    out = np.asarray(inpaint(generator, tmp_path / "photo.png", tmp_path / "mask.png"))
    src = np.asarray(load_image(tmp_path / "photo.png"))
    assert np.array_equal(out[~hole], src[~hole]) and (out[hole] != src[hole]).any()
