"""One mask rule everywhere: coloured, soft, alpha and 0/1 masks mean the same holes through the
CLI, the Python API, the web app's callback and the irregular mask files of training (dmfn_lightning.core.holes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from dmfn_lightning.inpaint import main
from dmfn_lightning.inpainting.api import inpaint
from dmfn_lightning.inpainting.image_io import load_mask
from dmfn_lightning.masks import IrregularFileMask
from dmfn_lightning.models import DMFNGenerator, export_generator

W, H = 40, 30
KINDS = ("coloured", "soft", "alpha", "zero_one")


def region(top: int, left: int, height: int, width: int) -> np.ndarray:
    out = np.zeros((H, W), dtype=bool)
    out[top : top + height, left : left + width] = True
    return out


A, B, C = region(2, 2, 8, 10), region(15, 5, 6, 12), region(5, 25, 20, 8)


def mask_image(kind: str) -> tuple[Image.Image, np.ndarray]:
    """(mask image, the holes it must give)."""
    if kind == "coloured":  # a red and a blue stroke on black: both are holes (grey levels 76 and 29)
        rgb = np.zeros((H, W, 3), dtype=np.uint8)
        rgb[A] = (255, 0, 0)
        rgb[B] = (0, 0, 255)
        rgb[C] = (60, 60, 60)  # dark grey: below 50 %, not a hole
        return Image.fromarray(rgb, "RGB"), A | B
    if kind == "soft":  # 8-bit grey levels cut at 50 % (128 and above)
        gray = np.zeros((H, W), dtype=np.uint8)
        gray[A], gray[B], gray[C] = 200, 100, 128
        return Image.fromarray(gray, "L"), A | C
    if kind == "alpha":  # black strokes on a transparent layer, with a faint antialiased edge: every painted pixel
        rgba = np.zeros((H, W, 4), dtype=np.uint8)
        rgba[A | B, 3] = 255
        rgba[C, 3] = 40
        return Image.fromarray(rgba, "RGBA"), A | B | C
    gray = np.zeros((H, W), dtype=np.uint8)  # 0/1 values straight from numpy: 1 is a hole
    gray[B | C] = 1
    return Image.fromarray(gray, "L"), B | C


def photo() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 200, (H, W, 3), dtype=np.uint8), "RGB")  # never pure white


def white_generator() -> DMFNGenerator:
    """A real generator (it can be saved and loaded) that predicts white everywhere: the filled pixels are
    exactly the ones that turn 255, so the hole that was used can be read off the output."""
    torch.manual_seed(0)
    generator = DMFNGenerator(num_blocks=1, base_channels=8).eval()
    last = generator.decoder[-1].conv
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(20.0)  # tanh(20) == 1.0 in float32
    return generator


def filled(result: Image.Image) -> np.ndarray:
    return (np.asarray(result.convert("RGB")) == 255).all(axis=-1)


@pytest.fixture(scope="module")
def masks(tmp_path_factory) -> dict[str, tuple[Path, np.ndarray]]:
    root = tmp_path_factory.mktemp("masks")
    out = {}
    for kind in KINDS:
        image, expected = mask_image(kind)
        folder = root / kind
        folder.mkdir()
        image.save(folder / f"{kind}.png")
        out[kind] = (folder / f"{kind}.png", expected)
    return out


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory) -> Path:
    return export_generator(white_generator(), tmp_path_factory.mktemp("gen") / "generator.pt")


@pytest.mark.parametrize("kind", KINDS)
def test_mask_rule_in_load_mask(kind, masks):
    path, expected = masks[kind]
    np.testing.assert_array_equal(load_mask(path, (W, H)), expected)
    np.testing.assert_array_equal(load_mask(Image.open(path), (W, H)), expected)
    np.testing.assert_array_equal(load_mask(np.asarray(Image.open(path)), (W, H)), expected)


@pytest.mark.parametrize("kind", KINDS)
def test_mask_rule_in_the_python_api(kind, masks):
    path, expected = masks[kind]
    generator, image = white_generator(), photo()
    np.testing.assert_array_equal(filled(inpaint(generator, image, path)), expected)
    np.testing.assert_array_equal(filled(inpaint(generator, image, np.asarray(Image.open(path)))), expected)
    tensor = torch.from_numpy(np.asarray(Image.open(path)).copy())
    np.testing.assert_array_equal(filled(inpaint(generator, image, tensor)), expected)


@pytest.mark.parametrize("kind", KINDS)
def test_mask_rule_in_the_cli(kind, masks, generator_file, tmp_path):
    path, expected = masks[kind]
    photo().save(tmp_path / "photo.png")
    out = tmp_path / "out"
    args = ["--checkpoint", str(generator_file), "--image", str(tmp_path / "photo.png"), "--mask", str(path)]
    assert main([*args, "--output", str(out), "--device", "cpu", "--quiet"]) == 0
    np.testing.assert_array_equal(filled(Image.open(out / "photo.png")), expected)


@pytest.mark.parametrize("kind", KINDS)
def test_mask_rule_in_the_web_app(kind, masks):
    from dmfn_lightning import app  # the callback needs no Gradio

    path, expected = masks[kind]
    image = photo()
    editor = {"background": image.convert("RGBA"), "layers": [], "composite": None}
    res = app.inpaint_request(white_generator(), editor, str(path))
    np.testing.assert_array_equal(res.hole, expected)
    np.testing.assert_array_equal(filled(res.image), expected)
    # the same picture painted as a brush layer of the editor gives the same holes
    layer_res = app.inpaint_request(white_generator(), {**editor, "layers": [Image.open(path)]})
    np.testing.assert_array_equal(layer_res.hole, expected)


@pytest.mark.parametrize("kind", KINDS)
def test_mask_rule_in_irregular_mask_files(kind, masks):
    path, expected = masks[kind]
    generator = IrregularFileMask(root=path.parent, augment=False)
    mask, _ = generator(H, W, np.random.default_rng(0))
    np.testing.assert_array_equal(mask[0].numpy() > 0.5, expected)


def test_soft_float_mask_uses_the_same_threshold_in_inpaint_and_load_mask():
    soft = np.zeros((H, W), dtype=np.float32)
    soft[A], soft[B], soft[C] = 0.8, 0.3, 0.5
    expected = A | C  # cut at 0.5, the same level as 128/255 in a file
    np.testing.assert_array_equal(load_mask(soft, (W, H)), expected)
    np.testing.assert_array_equal(filled(inpaint(white_generator(), photo(), soft)), expected)
    np.testing.assert_array_equal(filled(inpaint(white_generator(), photo(), torch.from_numpy(soft))), expected)
    image = Image.fromarray((soft * 255).round().astype(np.uint8), "L")
    np.testing.assert_array_equal(load_mask(image, (W, H)), expected)


def test_bool_masks_and_custom_modules_are_unchanged():
    class White(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(()))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.ones(x.shape[0], 3, *x.shape[2:]) + self.weight

    np.testing.assert_array_equal(filled(inpaint(White(), photo(), A | B)), A | B)
