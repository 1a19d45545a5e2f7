"""Reading images and masks and writing results (dmfn_lightning.inpainting.image_io)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dmfn_lightning.core.errors import InpaintError, OutputPathError
from dmfn_lightning.inpainting.image_io import load_image, load_mask, save_png


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


def test_a_pipe_is_not_called_missing(tmp_path):
    """Issue case 15: a FIFO is not a file to decode; it exists, so it is not "missing" either."""
    import os

    os.mkfifo(tmp_path / "pipe")
    for load, what in ((load_image, "image"), (lambda p: load_mask(p, (4, 4)), "mask")):
        with pytest.raises(InpaintError, match=rf"{what} '.*pipe' is not a regular file \(a pipe"):
            load(tmp_path / "pipe")


def test_save_png_writes_the_image_or_names_the_file(tmp_path):
    image = Image.fromarray(np.arange(24, dtype=np.uint8).reshape(2, 4, 3), "RGB")
    path = save_png(image, tmp_path / "out.png")
    assert path == tmp_path / "out.png" and sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]
    with Image.open(path) as saved:
        assert saved.format == "PNG" and np.array_equal(np.asarray(saved), np.asarray(image))
    (tmp_path / "taken").mkdir()
    with pytest.raises(OutputPathError, match="taken"):
        save_png(image, tmp_path / "taken")
