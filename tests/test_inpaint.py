"""Inpainting your own photos: the library API (dmfn_lightning.inpainting) and the CLI (dmfn_lightning.inpaint)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from dmfn_lightning.inpaint import main
from dmfn_lightning.inpainting import (
    InpaintError,
    generate_mask,
    inpaint,
    inpaint_batch,
    load_image,
    load_mask,
    run_generator,
)
from dmfn_lightning.models import DMFNGenerator, export_generator, load_generator


def small_generator(seed: int = 0, **kwargs) -> DMFNGenerator:
    torch.manual_seed(seed)
    kwargs.setdefault("num_blocks", 1)
    return DMFNGenerator(**kwargs).eval()


@pytest.fixture(scope="module")
def generator() -> DMFNGenerator:
    return small_generator(base_channels=16)


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory, generator) -> Path:
    return export_generator(generator, tmp_path_factory.mktemp("ckpt") / "generator.pt")


class Spy(nn.Module):
    """Records the input shapes it sees and returns a constant prediction (mid grey)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        return torch.zeros(x.shape[0], 3, *x.shape[2:]) + self.weight


class Forbidden(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        raise AssertionError("the network must not run")


def rgba_image(width: int = 301, height: int = 199, opaque: bool = True, seed: int = 0) -> Image.Image:
    arr = np.random.default_rng(seed).integers(0, 256, (height, width, 4), dtype=np.uint8)
    if opaque:
        arr[..., 3] = 255
    return Image.fromarray(arr, "RGBA")


def released_state_dict(generator: DMFNGenerator) -> dict:
    """Our ``block="released"`` weights under the key names of the authors' release (inverse of the converter)."""
    out = {}
    for key, value in generator.state_dict().items():
        parts = key.split(".")
        if parts[0] == "blocks" and parts[2] == "c1":
            key = f"blocks.{parts[1]}.c1.{parts[-1]}"
        elif parts[0] == "blocks" and parts[2] == "fusion":
            key = f"blocks.{parts[1]}.c2.{parts[-1]}"
        elif parts[0] == "blocks" and parts[2] == "branches":
            key = f"blocks.{parts[1]}.d{int(parts[3]) + 1}.{parts[-1]}"
        out[f"module.{key}"] = value.clone()
    return out


# ------------------------------------------------------------------------------------------------------ library


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


def test_mask_of_another_size_is_an_error_or_resized(tmp_path):
    mask = np.zeros((50, 75), dtype=np.uint8)
    mask[10:20, 30:40] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    with pytest.raises(InpaintError) as info:
        load_mask(tmp_path / "mask.png", (301, 199))
    message = str(info.value)
    assert "75x50" in message and "301x199" in message and "--resize-mask" in message and "mask.png" in message
    resized = load_mask(tmp_path / "mask.png", (150, 100), resize=True)
    assert resized.shape == (100, 150) and resized.dtype == bool
    expected = np.zeros((100, 150), dtype=bool)
    expected[20:40, 60:80] = True  # nearest neighbour at exactly 2x: the box scales, no grown or grey edges
    assert np.array_equal(resized, expected)


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
    from dmfn_lightning.inpainting import inpaint_tensor

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


def test_load_mask_variants(tmp_path):
    size = (6, 4)
    hole = np.zeros((4, 6), dtype=bool)
    hole[1:3, 2:5] = True
    Image.fromarray(hole.astype(np.uint8)).save(tmp_path / "zero_one.png")  # 0/1 values: 1 = hole
    assert np.array_equal(load_mask(tmp_path / "zero_one.png", size), hole)
    Image.fromarray(hole.astype(np.uint8) * 255).convert("RGB").save(tmp_path / "rgb.jpg", quality=95)
    assert np.array_equal(load_mask(tmp_path / "rgb.jpg", size), hole)  # JPEG ringing below 50 % ignored
    strokes = np.zeros((4, 6, 4), dtype=np.uint8)  # black brush on a transparent layer: alpha is the mask
    strokes[hole, 3] = 255
    Image.fromarray(strokes, "RGBA").save(tmp_path / "alpha.png")
    assert np.array_equal(load_mask(tmp_path / "alpha.png", size), hole)
    assert np.array_equal(load_mask(hole, size), hole)
    assert np.array_equal(load_mask(hole.astype(np.float32), size), hole)
    assert np.array_equal(load_mask(torch.from_numpy(hole).float()[None], size), hole)  # data layer layout
    with pytest.raises(InpaintError, match="does not exist"):
        load_mask(tmp_path / "nope.png", size)


def test_load_image_conversions_and_bad_files(tmp_path):
    gray16 = Image.fromarray(np.full((5, 7), 65535, dtype=np.uint16))
    assert np.asarray(load_image(gray16)).tolist() == np.full((5, 7, 3), 255).tolist()
    assert load_image(Image.new("CMYK", (3, 2))).mode == "RGB"
    assert load_image(Image.new("P", (3, 2))).mode == "RGB"
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(InpaintError, match=r"broken\.png"):
        load_image(tmp_path / "broken.png")
    with pytest.raises(InpaintError, match="does not exist"):
        load_image(tmp_path / "missing.jpg")


def test_generate_mask_types():
    for kind in ("center", "random_box", "free_form"):
        mask = generate_mask(kind, 96, 64, seed=3)
        assert mask.shape == (64, 96) and mask.dtype == bool and 0 < mask.mean() < 1
        assert np.array_equal(mask, generate_mask(kind, 96, 64, seed=3))  # seeded
    center = generate_mask("center", 96, 64)
    assert center[16:48, 24:72].all() and center.sum() == 32 * 48  # Table 1: the centred half-size box
    with pytest.raises(InpaintError, match="free_form"):
        generate_mask("triangle", 10, 10)


# ---------------------------------------------------------------------------------------------------------- CLI


def cli(checkpoint: Path, image: Path, output: Path) -> list[str]:
    return ["--checkpoint", str(checkpoint), "--image", str(image), "--output", str(output)]


def make_folder(root: Path) -> tuple[Path, Path]:
    images, masks = root / "images", root / "masks"
    images.mkdir(parents=True)
    masks.mkdir()
    specs = {"a": (40, 30), "b": (40, 30), "c": (25, 33)}
    for i, (stem, (w, h)) in enumerate(specs.items()):
        rgba_image(w, h, seed=i).save(images / f"{stem}.png")
        hole = np.zeros((h, w), dtype=np.uint8)
        hole[5:15, 5:15] = 255
        name = f"{stem}_mask.png" if stem == "b" else f"{stem}.png"  # both naming schemes
        Image.fromarray(hole).save(masks / name)
    return images, masks


def test_cli_folder_mode(generator_file, generator, tmp_path):
    images, masks = make_folder(tmp_path)
    out = tmp_path / "out"
    assert main([*cli(generator_file, images, out), "--mask", str(masks), "--device", "cpu", "--quiet"]) == 0
    for stem in ("a", "b", "c"):
        result = Image.open(out / f"{stem}.png")
        source = load_image(images / f"{stem}.png")
        assert result.size == source.size and result.mode == "RGB"
        hole = load_mask(masks / (f"{stem}_mask.png" if stem == "b" else f"{stem}.png"), source.size)
        expected = inpaint(generator, source, hole)
        assert np.array_equal(np.asarray(result)[~hole], np.asarray(source)[~hole])
        assert np.abs(np.asarray(result).astype(int) - np.asarray(expected).astype(int)).max() <= 1


def test_cli_reports_images_without_masks(generator_file, tmp_path, capsys):
    images, masks = make_folder(tmp_path)
    (masks / "a.png").unlink()
    (masks / "c.png").unlink()
    with pytest.raises(SystemExit) as info:
        main([*cli(generator_file, images, tmp_path / "out"), "--mask", str(masks)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "2 of 3 images have no mask" in err and "a.png" in err and "c.png" in err and "Traceback" not in err


def test_cli_mask_size_mismatch_and_resize(generator_file, tmp_path, capsys):
    rgba_image(40, 30).save(tmp_path / "photo.png")
    Image.fromarray(np.full((15, 20), 255, dtype=np.uint8)).save(tmp_path / "small_mask.png")
    args = ["--checkpoint", str(generator_file), "--image", str(tmp_path / "photo.png")]
    args += ["--mask", str(tmp_path / "small_mask.png"), "--output", str(tmp_path / "out"), "--quiet"]
    with pytest.raises(SystemExit):
        main(args)
    err = capsys.readouterr().err
    assert "20x15" in err and "40x30" in err and "--resize-mask" in err
    assert main([*args, "--resize-mask"]) == 0
    assert Image.open(tmp_path / "out" / "photo.png").size == (40, 30)


def test_cli_generated_mask_with_working_size(generator_file, tmp_path):
    rgba_image(90, 60).save(tmp_path / "photo.png")
    out = tmp_path / "out"
    extra = ["--mask-type", "center", "--working-size", "32", "--precision", "bf16", "--quiet"]
    main([*cli(generator_file, tmp_path / "photo.png", out), *extra])
    result = np.asarray(Image.open(out / "photo.png"))
    hole = generate_mask("center", 90, 60, seed=0)
    assert np.array_equal(result[~hole], np.asarray(load_image(tmp_path / "photo.png"))[~hole])


def test_cli_with_released_weights(tmp_path):
    original = small_generator(block="released", base_channels=64)
    torch.save(released_state_dict(original), tmp_path / "released_G.pth")
    assert load_generator(tmp_path / "released_G.pth").config["block"] == "released"
    rgba_image(32, 24).save(tmp_path / "photo.png")
    main([*cli(tmp_path / "released_G.pth", tmp_path / "photo.png", tmp_path / "out"), "--mask-type", "center"])
    expected = inpaint(original, load_image(tmp_path / "photo.png"), generate_mask("center", 32, 24))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "photo.png")), np.asarray(expected))


def test_cli_as_a_subprocess(generator_file, tmp_path):
    images, masks = make_folder(tmp_path)
    env = {**os.environ, "DMFN_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "dmfn_lightning.inpaint", "--checkpoint", str(generator_file)]
    done = subprocess.run(
        [*cmd, "--image", str(images), "--mask", str(masks), "--output", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png", "c.png"]
    assert "wrote 3 inpainted image(s)" in done.stderr
