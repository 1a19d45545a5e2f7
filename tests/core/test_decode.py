"""core.decode: every image file becomes 8-bit RGB (grey, palette, RGBA/LA on white, CMYK, 16-bit and float images
rescaled, not clipped) with its EXIF orientation applied; header-only sizes; undecodable files named."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dmfn_lightning.core.decode import IMAGE_FILE_EXTENSIONS, read_size, to_rgb
from dmfn_lightning.core.errors import DataError
from dmfn_lightning.data import ImageDataset, load_rgb
from tests.data.data_fakes import save_image, truncated_jpeg


def test_modes_are_converted_to_rgb(tmp_path):
    gray = load_rgb(save_image(tmp_path / "g.png", np.full((4, 4), 77, np.uint8)))
    assert gray.mode == "RGB" and np.asarray(gray)[0, 0].tolist() == [77, 77, 77]
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)
    rgba[:2, :, 3] = 255
    out = np.asarray(load_rgb(save_image(tmp_path / "a.png", rgba)))
    assert out[0, 0].tolist() == [10, 20, 30]  # opaque
    assert out[3, 0].tolist() == [255, 255, 255]  # transparent -> composited on white
    pal = Image.fromarray(np.full((4, 4, 3), (0, 128, 255), np.uint8)).convert("P", palette=Image.ADAPTIVE)
    pal.save(tmp_path / "p.png")
    assert np.asarray(load_rgb(tmp_path / "p.png"))[0, 0].tolist() == [0, 128, 255]
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))  # pure red
    cmyk.save(tmp_path / "c.jpg", quality=100)
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    r, g, b = np.asarray(load_rgb(tmp_path / "c.jpg"))[0, 0].tolist()
    assert r > 240 and g < 15 and b < 15
    g16 = np.array([[0, 257 * 100, 32768, 65535]], np.uint16)
    img16 = load_rgb(save_image(tmp_path / "g16.png", g16))
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    assert np.asarray(img16)[0, :, 0].tolist() == [0, 100, 128, 255]  # rescaled, not clipped at 255
    la = Image.fromarray(np.full((4, 4), 50, np.uint8)).convert("LA")
    la.save(tmp_path / "la.png")
    assert np.asarray(load_rgb(tmp_path / "la.png"))[0, 0].tolist() == [50, 50, 50]


def test_exif_orientation_is_honoured(tmp_path):
    # stored 64 wide x 32 high: left half red, right half blue; EXIF 6 = rotate 90 degrees clockwise to display
    arr = np.zeros((32, 64, 3), np.uint8)
    arr[:, :32] = (255, 0, 0)
    arr[:, 32:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    Image.fromarray(arr).save(path, exif=exif, quality=100)
    img = load_rgb(path)
    assert img.size == (32, 64)  # displayed: 32 wide, 64 high
    shown = np.asarray(img).astype(int)
    assert shown[2, 16, 0] > 200 and shown[2, 16, 2] < 50  # top is red (was the left)
    assert shown[61, 16, 2] > 200 and shown[61, 16, 0] < 50  # bottom is blue
    # through the dataset: the centre square of the *displayed* image, top half red, bottom half blue
    sample = ImageDataset([path], image_size=32)[0]
    image = sample["image"]
    assert image.shape == (3, 32, 32)
    assert image[0, :12].mean() > 0.9 and image[2, :12].mean() < -0.9
    assert image[2, 20:].mean() > 0.9 and image[0, 20:].mean() < -0.9


def test_a_16_bit_png_keeps_all_256_levels_after_rescaling(tmp_path):
    ramp = (np.arange(256, dtype=np.uint16) * 257).reshape(16, 16)  # v * 257: the 16-bit value of 8-bit level v
    Image.fromarray(ramp).save(tmp_path / "ramp16.png")
    assert Image.open(tmp_path / "ramp16.png").mode == "I;16"
    out = np.asarray(load_rgb(tmp_path / "ramp16.png"))
    assert out.dtype == np.uint8 and out.shape == (16, 16, 3)
    assert out[..., 0].ravel().tolist() == list(range(256))  # 65535 is white, 257 * v is level v: nothing clipped
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])


def test_an_rgba_png_is_composited_on_white_by_its_alpha(tmp_path):
    rgba = np.zeros((1, 4, 4), np.uint8)
    rgba[..., :3] = (200, 100, 0)
    rgba[..., 3] = (0, 64, 128, 255)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "layer.png")
    out = np.asarray(load_rgb(tmp_path / "layer.png"))[0].tolist()
    # c * a + 255 * (1 - a), a = alpha / 255: transparent is white, opaque keeps its colour
    assert out == [[255, 255, 255], [241, 216, 191], [227, 177, 127], [200, 100, 0]]


def test_float_images_are_read_on_the_unit_or_the_8_bit_scale():
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0, 0.25]], np.float32), "F")
    assert np.asarray(to_rgb(unit))[0, :, 0].tolist() == [0, 128, 255, 64]
    levels = Image.fromarray(np.array([[0.0, 100.0, 255.0, 300.0]], np.float32), "F")
    assert np.asarray(to_rgb(levels))[0, :, 0].tolist() == [0, 100, 255, 255]  # above 255: clipped
    rgb = Image.new("RGB", (2, 2), (1, 2, 3))
    assert to_rgb(rgb) is rgb  # already 8-bit RGB: returned as is


def test_read_size_follows_the_exif_rotation_and_bad_files_are_named(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees to display
    Image.new("RGB", (64, 32)).save(tmp_path / "rotated.jpg", exif=exif)
    Image.new("RGB", (64, 32)).save(tmp_path / "plain.png")
    assert read_size(tmp_path / "rotated.jpg") == (32, 64) and read_size(tmp_path / "plain.png") == (64, 32)
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(DataError, match=r"notes\.png: cannot read image header \(UnidentifiedImageError"):
        read_size(tmp_path / "notes.png")
    truncated_jpeg(tmp_path / "t.jpg")  # the first half of a 64 x 64 JPEG: the header survives, the data not
    assert read_size(tmp_path / "t.jpg") == (64, 64)
    with pytest.raises(DataError, match=r"t\.jpg: cannot decode image \(OSError"):
        load_rgb(tmp_path / "t.jpg")
    assert ".png" in IMAGE_FILE_EXTENSIONS and ".tiff" in IMAGE_FILE_EXTENSIONS
