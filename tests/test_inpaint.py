"""The inpainting command line (dmfn_lightning.inpaint): folders, mask files and generated masks, the strategies,
and bad input as one-line errors. The library it runs on is tested in tests/inpainting/ (the API, the HD strategies,
image and mask files, photo folders), the generated masks in tests/masks/ and the refusal of unsafe or pickled
checkpoint files in tests/models/test_torch_files.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dmfn_lightning.inpaint import build_parser, main
from dmfn_lightning.inpainting.api import inpaint
from dmfn_lightning.inpainting.image_io import load_image, load_mask
from dmfn_lightning.masks import generate_mask, photo_mask_kinds
from dmfn_lightning.models import DMFNGenerator, export_generator, load_generator
from tests.inpainting.photo_fakes import Spy, rgba_image, small_generator


@pytest.fixture(scope="module")
def generator() -> DMFNGenerator:
    return small_generator(base_channels=16)


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory, generator) -> Path:
    return export_generator(generator, tmp_path_factory.mktemp("ckpt") / "generator.pt")


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


def test_cli_mask_types_are_the_registry_kinds_for_photos():
    (action,) = [a for a in build_parser()._actions if "--mask-type" in a.option_strings]
    assert tuple(action.choices) == photo_mask_kinds()
    assert tuple(action.choices)[:3] == ("center", "random_box", "free_form")  # kinds added later come after


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
    """Item 5: the peak is estimated from the size and compared with the free memory, before the network runs
    (the API's side: tests/inpainting/test_api.py)."""
    import dmfn_lightning.core.devices as devices

    monkeypatch.setattr(devices, "available_memory", lambda device: 64 * 2**20)  # 64 MiB free, for check_memory
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
    import dmfn_lightning.inpaint as inpaint_cli
    from tests.readonly import unwritable_folder

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
    """Item 9: non-finite predictions fail the CLI; nothing is written (the API: tests/inpainting/test_api.py)."""
    path = nan_generator_file(tmp_path)
    rgba_image(32, 24).save(tmp_path / "photo.png")
    with pytest.raises(SystemExit) as info:
        main([*cli(path, tmp_path / "photo.png", tmp_path / "out"), "--mask-type", "center", "--quiet"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "NaN or infinite" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "photo.png").exists()


def test_random_box_on_a_very_thin_image_never_gives_an_empty_hole(generator_file, tmp_path, capsys):
    """Item 11: a 3x5000 image with --mask-type random_box: an error naming the type and what to do, or a real hole,
    never a silent no-op (the generator's side: tests/masks/test_registry.py)."""
    rgba_image(5000, 3).save(tmp_path / "thin.png")
    args = [*cli(generator_file, tmp_path / "thin.png", tmp_path / "out"), "--mask-type", "random_box", "--quiet"]
    try:
        code = main(args)
    except SystemExit as err:
        message = capsys.readouterr().err
        assert err.code == 2 and "random_box" in message and "--mask-type" in message
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


# ------------------------------------------------------------------------------------ HD strategies

HD_W, HD_H = 600, 400


def hd_holes(*boxes: tuple[int, int, int, int]) -> np.ndarray:
    """A bool [400, 600] mask with the given (top, left, height, width) boxes as holes."""
    hole = np.zeros((HD_H, HD_W), dtype=bool)
    for top, left, height, width in boxes:
        hole[top : top + height, left : left + width] = True
    return hole


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
        (["--working-size", "4"], "--working-size must be a whole number of pixels >= 8, got 4"),
        (["--strategy", "crop", "--working-size", "0"], "--working-size must be a whole number of pixels >= 8, got 0"),
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
    assert rest == []  # one line; no Hydra hint: this command is not a Hydra program (issue case 20)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------ inputs kept, sizes, seeds, folders


def one_line_refusal(capsys, args: list[str]) -> str:
    """``main(args)`` must exit 2 with one ``error:`` line and no traceback; returns that line."""
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def test_cli_never_overwrites_a_mask(generator_file, tmp_path, capsys):
    """Issue case 3: ``--output m.png`` overwrote the mask and ``--mask masks/ --output masks/`` every mask; only
    the input image was protected. Both are refused before anything is loaded, and the masks keep their bytes."""
    images, masks = make_folder(tmp_path)
    rgba_image(40, 30).save(tmp_path / "p.png")
    Image.fromarray(np.full((30, 40), 255, dtype=np.uint8)).save(tmp_path / "m.png")
    before = {p: p.read_bytes() for p in [tmp_path / "m.png", *masks.iterdir()]}
    line = one_line_refusal(capsys, [*cli(generator_file, tmp_path / "p.png", tmp_path / "m.png"), "--mask",
                                     str(tmp_path / "m.png")])  # fmt: skip
    assert "would overwrite the mask file" in line and "m.png" in line and "--output" in line
    line = one_line_refusal(capsys, [*cli(generator_file, images, masks), "--mask", str(masks)])
    assert "would overwrite the mask file" in line and "a.png" in line
    assert all(p.read_bytes() == data for p, data in before.items())
    # another output folder is fine
    assert main([*cli(generator_file, images, tmp_path / "out"), "--mask", str(masks), "--quiet"]) == 0


class _TrainingModule:
    """What training hands to export_generator: the module, with its evaluation generator and its run config."""

    def __init__(self, generator: DMFNGenerator, image_size: int) -> None:
        self.eval_generator = generator
        self.run_config = {
            "data": {"_target_": "dmfn_lightning.data.DMFNDataModule", "root": "/data/paris", "image_size": image_size},
            "mask": {"_target_": "dmfn_lightning.masks.RandomBoxMask"},
        }


@pytest.mark.parametrize("kind", ["generator.pt", "last.ckpt"])
def test_resize_uses_the_training_size_recorded_in_the_file(kind, generator, monkeypatch, tmp_path, capsys):
    """Issue case 8: generator.pt recorded only {iteration, vgg_weights}, so a 64 px generator ran --strategy resize
    at 256. The training size is recorded when the file is written (generator.pt) or read from the run config
    (a Lightning checkpoint's hyper_parameters.config), and the image is resized to 64."""
    import dmfn_lightning.inpaint as inpaint_cli

    if kind == "generator.pt":
        path = export_generator(_TrainingModule(generator, 64), tmp_path / kind)
    else:
        path = tmp_path / kind
        state = {f"generator.{k}": v for k, v in generator.state_dict().items()}
        config = _TrainingModule(generator, 64).run_config
        torch.save({"state_dict": state, "global_step": 8, "hyper_parameters": {"config": config}}, path)
    shapes: list[tuple[int, ...]] = []

    def loading(*args, **kwargs):
        loaded = load_generator(*args, **kwargs)
        loaded.register_forward_pre_hook(lambda module, inputs: shapes.append(tuple(inputs[0].shape)))
        return loaded

    monkeypatch.setattr(inpaint_cli, "load_generator", loading)
    rgba_image(HD_W, HD_H).save(tmp_path / "photo.png")
    Image.fromarray(hd_holes((20, 20, 30, 30)).astype(np.uint8) * 255).save(tmp_path / "mask.png")
    args = [*cli(path, tmp_path / "photo.png", tmp_path / "out"), "--mask", str(tmp_path / "mask.png")]
    assert main([*args, "--strategy", "resize", "--quiet"]) == 0
    assert shapes == [(1, 4, 44, 64)]  # the longer side at 64 (not 256: 172x256)
    assert "warning" not in capsys.readouterr().err
    assert load_generator(path).metadata["image_size"] == 64


def test_a_file_without_its_training_size_is_said_once(generator_file, tmp_path, capsys):
    """Issue case 8: an older file without the size keeps working at 256, with one warning line."""
    rgba_image(HD_W, HD_H).save(tmp_path / "photo.png")
    Image.fromarray(hd_holes((20, 20, 30, 30)).astype(np.uint8) * 255).save(tmp_path / "mask.png")
    args = [*cli(generator_file, tmp_path / "photo.png", tmp_path / "out"), "--mask", str(tmp_path / "mask.png")]
    assert main([*args, "--strategy", "crop", "--quiet"]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "does not record" in line]
    assert len(warned) == 1 and warned[0].startswith("warning: ") and "256" in warned[0]


def test_negative_seed_is_named(generator_file, tmp_path, capsys):
    """Issue case 16: --seed -1 --mask-type free_form blamed the image size; the seed is checked and named."""
    rgba_image(40, 30).save(tmp_path / "photo.png")
    args = [*cli(generator_file, tmp_path / "photo.png", tmp_path / "out"), "--mask-type", "free_form"]
    with pytest.raises(SystemExit) as info:
        main([*args, "--seed", "-1"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --seed: must be a whole number >= 0, got '-1'" in err
    assert "image" not in err.splitlines()[-1] and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    assert main([*args, "--seed", "5", "--quiet"]) == 0


def test_subfolders_of_the_image_folder_are_skipped_with_a_warning(generator_file, tmp_path, capsys):
    """Issue case 20: inpainting a folder ignored its subfolders without saying so."""
    images, _ = make_folder(tmp_path)
    rgba_image(40, 30).save(images / "ignored.png")
    (images / "2023").mkdir()
    rgba_image(40, 30).save(images / "2023" / "deep.png")
    (images / "raw").mkdir()
    out = tmp_path / "out"
    assert main([*cli(generator_file, images, out), "--mask-type", "center", "--quiet"]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "subfolder" in line]
    assert len(warned) == 1 and warned[0].startswith("warning: skipping 2 subfolder(s)") and "2023, raw" in warned[0]
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png", "ignored.png"]
