"""Inpainting your own photos: the library API (dmfn_lightning.inpainting.api) and the CLI (dmfn_lightning.inpaint)."""

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

from dmfn_lightning.core.errors import InpaintError
from dmfn_lightning.inpaint import main
from dmfn_lightning.inpainting.api import inpaint, inpaint_batch
from dmfn_lightning.inpainting.image_io import generate_mask, load_image, load_mask
from dmfn_lightning.models import DMFNGenerator, export_generator, load_generator
from dmfn_lightning.models.inference import run_generator


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
    from dmfn_lightning.inpainting.api import inpaint_tensor

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


# ------------------------------------------------------------------------------------------ bad and unusual input


def white_hole(width: int, height: int, box: tuple[int, int, int, int]) -> Image.Image:
    top, left, h, w = box
    arr = np.zeros((height, width), dtype=np.uint8)
    arr[top : top + h, left : left + w] = 255
    return Image.fromarray(arr, "L")


def changed(result_path: Path, source: Path) -> np.ndarray:
    return (np.asarray(Image.open(result_path)) != np.asarray(load_image(source))).any(axis=-1)


def test_image_and_mask_in_the_same_folder(generator_file, tmp_path, capsys):
    """Item 2: masks in the image folder are recognised by name, never inpainted, never matched to themselves."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rgba_image(40, 30, seed=1).save(folder / "photo.png")
    white_hole(40, 30, (5, 5, 10, 12)).save(folder / "photo_mask.png")
    rgba_image(32, 24, seed=2).convert("RGB").save(folder / "other.jpg", quality=95)
    white_hole(32, 24, (10, 8, 6, 6)).save(folder / "mask_other.png")
    out = tmp_path / "out"
    assert (
        main(["--checkpoint", str(generator_file), "--image", str(folder), "--mask", str(folder), "--output", str(out)])
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["other.png", "photo.png"]  # the masks were not inpainted
    for stem, mask in (("photo", "photo_mask.png"), ("other", "mask_other.png")):
        source = next(folder.glob(f"{stem}.*"))
        hole = load_mask(folder / mask, load_image(source).size)
        diff = changed(out / f"{stem}.png", source)
        assert not diff[~hole].any() and diff[hole].mean() > 0.5  # its own mask, not itself as a mask
    assert "not inpainting 2 mask file(s)" in capsys.readouterr().err
    # masks beside images are skipped with generated masks too
    out2 = tmp_path / "out2"
    assert (
        main(
            [
                "--checkpoint",
                str(generator_file),
                "--image",
                str(folder),
                "--mask-type",
                "center",
                "--output",
                str(out2),
                "--quiet",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out2.iterdir()) == ["other.png", "photo.png"]


@pytest.mark.parametrize(
    "names,phrase",
    [
        (["photo.png", "photo.jpg"], "photo.jpg and photo.png"),  # which one is the mask?
        (["photo.png", "photo_mask.png", "photo.mask.png"], "photo.mask.png, photo_mask.png"),  # two masks
        (["photo.png", "holiday.png", "holiday_mask.png"], "photo.png"),  # an image is never its own mask
    ],
    ids=["same-stem", "two-masks", "no-mask"],
)
def test_same_folder_ambiguity_is_an_error_naming_the_files(names, phrase, generator_file, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, name in enumerate(names):
        rgba_image(20, 16, seed=i).convert("RGB").save(folder / name)
    args = ["--checkpoint", str(generator_file), "--image", str(folder), "--mask", str(folder)]
    with pytest.raises(SystemExit) as info:
        main([*args, "--output", str(tmp_path / "out")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert phrase in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_memory_guard_refuses_before_running(generator_file, monkeypatch, tmp_path, capsys):
    """Item 5: the peak is estimated from the size and compared with the free memory, before the network runs."""
    import dmfn_lightning.core.devices as devices

    monkeypatch.setattr(devices, "available_memory", lambda device: 64 * 2**20)  # 64 MiB free, for check_memory
    hole = np.ones((600, 800), dtype=bool)
    with pytest.raises(InpaintError, match="working_size=") as info:
        inpaint(Forbidden(), rgba_image(800, 600), hole)
    assert "needs about" in str(info.value) and "--working-size" in str(info.value)
    spy = Spy()
    inpaint(spy, rgba_image(800, 600), hole, working_size=64)  # a working size that fits runs
    rgba_image(800, 600).save(tmp_path / "big.png")
    args = ["--checkpoint", str(generator_file), "--image", str(tmp_path / "big.png"), "--mask-type", "center"]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--output", str(tmp_path / "out"), "--quiet"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--working-size" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_huge_working_size_is_refused_clearly(generator_file, tmp_path, capsys):
    """Item 5: --working-size 100000 would need terabytes: refused with a size that fits, no allocation traceback."""
    rgba_image(40, 30).save(tmp_path / "photo.png")
    args = ["--checkpoint", str(generator_file), "--image", str(tmp_path / "photo.png"), "--mask-type", "center"]
    with pytest.raises(SystemExit) as info:
        main([*args, "--output", str(tmp_path / "out"), "--working-size", "100000", "--quiet"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--working-size 100000" in err and "TiB" in err and "smaller --working-size" in err
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
    """Item 5: an allocation that still fails is an InpaintError that suggests a working size."""

    class Oom(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(()))

        def forward(self, x):
            raise error

    with pytest.raises(InpaintError, match="out of memory") as info:
        inpaint(Oom(), rgba_image(16, 12), np.ones((12, 16), dtype=bool))
    assert "--working-size" in str(info.value)


def test_output_that_is_an_existing_file_fails_before_loading_the_model(generator_file, monkeypatch, tmp_path, capsys):
    """Item 6: an occupied --output is reported in one line, exit 2, before the model is loaded or run."""
    import dmfn_lightning.inpaint as inpaint_cli

    def forbidden(*args, **kwargs):
        raise AssertionError("the model must not be loaded")

    monkeypatch.setattr(inpaint_cli, "load_generator", forbidden)
    images, masks = make_folder(tmp_path)
    occupied = tmp_path / "results.txt"
    occupied.write_text("not a folder")
    for output in (occupied, occupied / "sub"):
        with pytest.raises(SystemExit) as info:
            main([*cli(generator_file, images, output), "--mask", str(masks)])
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert "results.txt" in err and "folder" in err and "Traceback" not in err
    assert occupied.read_text() == "not a folder"


def test_read_only_output_folder_fails_before_loading_the_model(generator_file, monkeypatch, tmp_path, capsys):
    from readonly import unwritable_folder

    import dmfn_lightning.inpaint as inpaint_cli

    monkeypatch.setattr(inpaint_cli, "load_generator", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded")))
    images, masks = make_folder(tmp_path)
    for output in (unwritable_folder(tmp_path), unwritable_folder(tmp_path) / "out"):
        with pytest.raises(SystemExit) as info:
            main([*cli(generator_file, images, output), "--mask", str(masks)])
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert "not writable" in err and "Traceback" not in err


def nan_generator_file(tmp_path: Path) -> Path:
    generator = small_generator(base_channels=8)
    with torch.no_grad():
        generator.decoder[-1].conv.weight.fill_(float("nan"))
    return export_generator(generator, tmp_path / "nan_generator.pt")


def test_nan_generator_is_reported_never_saved_as_black(tmp_path, capsys):
    """Item 9: non-finite predictions raise from the API and fail the CLI; nothing is written."""
    path = nan_generator_file(tmp_path)
    hole = generate_mask("center", 32, 24)
    with pytest.raises(InpaintError, match="NaN or infinite"):
        inpaint(load_generator(path), rgba_image(32, 24), hole)
    with pytest.raises(InpaintError, match="NaN or infinite"):
        inpaint(load_generator(path), rgba_image(32, 24), hole, working_size=16)
    rgba_image(32, 24).save(tmp_path / "photo.png")
    with pytest.raises(SystemExit) as info:
        main([*cli(path, tmp_path / "photo.png", tmp_path / "out"), "--mask-type", "center", "--quiet"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "NaN or infinite" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "photo.png").exists()


def test_unsafe_pickle_is_called_unsafe_not_corrupted(tmp_path, capsys):
    """Item 10: torch 2.14's wording ("unsupported GLOBAL ... blocked") is recognised as an unsafe file."""
    from dmfn_lightning.models import CheckpointError

    torch.save({"state_dict": {"x": _Payload()}}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError) as info:
        load_generator(tmp_path / "evil.pt")
    message = str(info.value)
    assert "unsafe" in message and "posix.system" in message
    assert "truncated" not in message and "corrupted" not in message
    rgba_image(16, 12).save(tmp_path / "photo.png")
    with pytest.raises(SystemExit):
        main([*cli(tmp_path / "evil.pt", tmp_path / "photo.png", tmp_path / "out"), "--mask-type", "center"])
    err = capsys.readouterr().err
    assert "unsafe" in err and "corrupted" not in err


def test_pickled_whole_module_gets_advice_that_works(tmp_path, monkeypatch):
    """Item 10: for a pickled whole generator, the advice given (export_generator in Python) works."""
    import re

    from dmfn_lightning.models import CheckpointError

    original = small_generator(base_channels=8)
    torch.save(original, tmp_path / "whole.pt")
    with pytest.raises(CheckpointError) as info:
        load_generator(tmp_path / "whole.pt")
    message = str(info.value)
    assert "whole pickled model" in message and "DMFNGenerator" in message
    assert "python -m dmfn_lightning.export" not in message  # export refuses the same file
    code = re.search(r"`(import torch;[^`]+)`", message)[1]
    monkeypatch.chdir(tmp_path)
    exec(code, {})  # what the user is told to run, in the current folder
    converted = load_generator(tmp_path / "generator.pt")
    for a, b in zip(original.state_dict().values(), converted.state_dict().values()):
        assert torch.equal(a, b)


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, ("true",))


def test_random_box_on_a_very_thin_image_never_gives_an_empty_hole(generator_file, tmp_path, capsys):
    """Item 11: a 3x5000 image with --mask-type random_box: an error, or a real hole, never a silent no-op."""
    try:
        hole = generate_mask("random_box", 5000, 3, seed=0)
    except InpaintError as err:
        assert "random_box" in str(err)
    else:
        assert hole.any()
    rgba_image(5000, 3).save(tmp_path / "thin.png")
    args = [*cli(generator_file, tmp_path / "thin.png", tmp_path / "out"), "--mask-type", "random_box", "--quiet"]
    try:
        code = main(args)
    except SystemExit as err:
        assert err.code == 2 and "random_box" in capsys.readouterr().err
    else:
        assert code == 0 and changed(tmp_path / "out" / "thin.png", tmp_path / "thin.png").any()


def test_folder_as_checkpoint_says_it_is_a_folder(tmp_path, capsys):
    """Item 12: not "does not exist" for a folder."""
    (tmp_path / "run").mkdir()
    export_generator(small_generator(base_channels=8), tmp_path / "run" / "generator.pt")
    rgba_image(16, 12).save(tmp_path / "photo.png")
    with pytest.raises(SystemExit):
        main([*cli(tmp_path / "run", tmp_path / "photo.png", tmp_path / "out"), "--mask-type", "center"])
    err = capsys.readouterr().err
    assert "is a folder" in err and "generator.pt" in err and "does not exist" not in err


def test_tensor_images_in_the_python_api(generator):
    """Item 12: CHW / HWC tensors are accepted (uint8, or float in [0, 1]); other ranges are a clear error."""
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


# ------------------------------------------------------------------------------------ HD strategies

HD_W, HD_H = 600, 400


def hd_holes(*boxes: tuple[int, int, int, int]) -> np.ndarray:
    """A bool [400, 600] mask with the given (top, left, height, width) boxes as holes."""
    hole = np.zeros((HD_H, HD_W), dtype=bool)
    for top, left, height, width in boxes:
        hole[top : top + height, left : left + width] = True
    return hole


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


def test_crop_windows_far_apart_two_overlapping_one():
    from dmfn_lightning.inpainting.hd import Window, crop_windows, hole_boxes, merge_windows

    far = hd_holes((10, 10, 20, 20), (350, 550, 20, 20))
    assert crop_windows(far, margin=16, min_size=64) == [Window(0, 0, 64, 64), Window(328, 528, 392, 592)]
    # Two holes 40 px apart: their windows (hole + 16 px, at least 64) overlap and become their bounding box.
    near = hd_holes((100, 100, 20, 20), (100, 160, 20, 20))
    assert crop_windows(near, margin=16, min_size=64) == [Window(78, 78, 142, 202)]
    # Merging can chain: the union of two windows reaches a third that neither reached alone.
    chain = [Window(0, 0, 10, 10), Window(8, 8, 18, 18), Window(0, 15, 5, 20)]
    assert merge_windows(chain) == [Window(0, 0, 18, 20)]
    assert merge_windows([Window(0, 0, 10, 10), Window(0, 11, 10, 20)]) == [(0, 0, 10, 10), (0, 11, 10, 20)]
    assert merge_windows([Window(0, 0, 10, 10), Window(0, 10, 10, 20)]) == [(0, 0, 10, 20)]  # touching
    # Pixels touching at a corner are one hole (8-connectivity).
    diagonal = np.zeros((50, 50), dtype=bool)
    diagonal[np.arange(10, 20), np.arange(10, 20)] = True
    assert hole_boxes(diagonal) == [Window(10, 10, 20, 20)]


def test_crop_windows_have_the_minimum_size_and_stay_inside_the_image():
    from dmfn_lightning.inpainting.hd import crop_windows

    for box in ((0, 0, 5, 5), (395, 595, 5, 5), (0, 300, 3, 3), (190, 0, 10, 1), (150, 250, 3, 3)):
        (window,) = crop_windows(hd_holes(box), margin=8, min_size=256)
        assert window.height == 256 and window.width == 256, (box, window)
        assert window.top >= 0 and window.left >= 0 and window.bottom <= HD_H and window.right <= HD_W
        top, left, height, width = box
        assert window.top <= top and top + height <= window.bottom and window.left <= left
        assert left + width <= window.right
    # A minimum larger than the image: the whole side; a large hole: its box plus the margin.
    (window,) = crop_windows(hd_holes((100, 100, 50, 50)), margin=8, min_size=1000)
    assert (window.height, window.width) == (HD_H, HD_W)
    (window,) = crop_windows(hd_holes((50, 40, 300, 400)), margin=8, min_size=64)
    assert tuple(window) == (42, 32, 358, 448)
    assert crop_windows(np.zeros((HD_H, HD_W), dtype=bool)) == []


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


def test_crop_uses_the_training_size_recorded_in_the_generator_file(tmp_path):
    spy = Spy()
    spy.metadata = {"image_size": 128}  # what load_generator() sets from a generator file's metadata
    inpaint(spy, rgba_image(HD_W, HD_H), hd_holes((200, 300, 10, 10)), strategy="crop", crop_margin=16)
    assert spy.shapes == [(1, 4, 128, 128)]
    export_generator(small_generator(base_channels=8), tmp_path / "g.pt", metadata={"image_size": 96})
    from dmfn_lightning.inpainting.hd import training_size

    assert training_size(load_generator(tmp_path / "g.pt")) == 96
    assert training_size(Spy()) == 256  # nothing recorded: the paper's 256


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "tiles"}, r"strategy must be one of full, resize, crop, got 'tiles'"),
        ({"strategy": "full", "working_size": 512}, r"strategy 'full'.*working size \(512\)"),
        ({"strategy": "crop", "crop_margin": -4}, r"crop_margin must be .*>= 0, got -4"),
        ({"strategy": "crop", "crop_margin": 1.5}, r"crop_margin .* got 1.5"),
    ],
)
def test_bad_strategy_values_are_one_line_errors(kwargs, message):
    with pytest.raises(InpaintError, match=message) as info:
        inpaint(Forbidden(), rgba_image(40, 30), np.ones((30, 40), dtype=bool), **kwargs)
    assert "\n" not in str(info.value)


def test_crop_memory_guard_names_the_window(monkeypatch):
    import dmfn_lightning.core.devices as devices
    from dmfn_lightning.core.errors import InpaintMemoryError

    monkeypatch.setattr(devices, "available_memory", lambda device: 2**20)  # 1 MiB free, for check_memory
    with pytest.raises(InpaintMemoryError, match=r"crop window 256x256: .*256x256 image"):
        inpaint(Forbidden(), rgba_image(HD_W, HD_H), hd_holes((100, 100, 10, 10)), strategy="crop")


def test_cli_strategy_crop(generator_file, generator, tmp_path):
    rgba_image(HD_W, HD_H, seed=5).save(tmp_path / "photo.png")
    hole = hd_holes((30, 40, 20, 30), (330, 520, 30, 40))
    Image.fromarray(hole.astype(np.uint8) * 255).save(tmp_path / "mask.png")
    args = [*cli(generator_file, tmp_path / "photo.png", tmp_path / "out"), "--mask", str(tmp_path / "mask.png")]
    assert main([*args, "--strategy", "crop", "--crop-margin", "32", "--quiet"]) == 0
    out = np.asarray(Image.open(tmp_path / "out" / "photo.png"))
    src = np.asarray(load_image(tmp_path / "photo.png"))
    assert np.array_equal(out[~hole], src[~hole])
    expected = np.asarray(inpaint(generator, src, hole, strategy="crop", crop_margin=32))
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1


def test_cli_strategy_reaches_the_generator(generator_file, monkeypatch, tmp_path):
    import dmfn_lightning.inpaint as inpaint_cli

    spy = Spy()
    monkeypatch.setattr(inpaint_cli, "load_generator", lambda *args, **kwargs: spy)
    rgba_image(HD_W, HD_H).save(tmp_path / "photo.png")
    Image.fromarray(hd_holes((20, 20, 10, 10)).astype(np.uint8) * 255).save(tmp_path / "mask.png")
    args = [*cli(generator_file, tmp_path / "photo.png", tmp_path / "out"), "--mask", str(tmp_path / "mask.png")]
    for extra, expected in (
        ([], (1, 4, 400, 600)),
        (["--working-size", "200"], (1, 4, 132, 200)),  # --working-size alone keeps meaning resize
        (["--strategy", "resize"], (1, 4, 172, 256)),
        (["--strategy", "crop"], (1, 4, 256, 256)),
        (["--strategy", "crop", "--working-size", "100"], (1, 4, 100, 100)),
    ):
        spy.shapes.clear()
        assert main([*args, *extra, "--quiet"]) == 0
        assert spy.shapes == [expected], extra


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--strategy", "tiles"], "--strategy must be one of full, resize, crop, got 'tiles'"),
        (["--strategy", "full", "--working-size", "512"], "--working-size 512 needs --strategy resize or crop"),
        (["--strategy", "crop", "--crop-margin", "-3"], "--crop-margin must be a whole number of pixels >= 0, got -3"),
        (["--crop-margin", "64"], "--crop-margin 64 applies to --strategy crop only, not full"),
    ],
)
def test_cli_bad_strategy_values_are_one_line_errors(extra, message, generator_file, tmp_path, capsys):
    rgba_image(40, 30).save(tmp_path / "photo.png")
    args = [*cli(generator_file, tmp_path / "photo.png", tmp_path / "out"), "--mask-type", "center", *extra]
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    first, *rest = err.splitlines()
    assert first.startswith("error: ") and message in first and "Traceback" not in err
    assert rest == ["(set HYDRA_FULL_ERROR=1 for the full traceback)"]  # the message is one line
    assert not (tmp_path / "out").exists()
