"""core.holes: the one rule for which mask pixels are holes: levels relative to full scale (8-bit, 16-bit, floats,
0/1 masks), the brightest colour channel, the 50 % threshold, and transparency (painted layers); layouts of arrays
and tensors; images and files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dmfn_lightning.core.holes import HOLE_THRESHOLD, hole_from_array, hole_from_image, read_hole


def test_eight_bit_levels_are_holes_from_128_up():
    assert HOLE_THRESHOLD == 0.5
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    hole = hole_from_array(levels)
    assert hole.dtype == bool and hole.shape == (16, 16)
    assert np.flatnonzero(hole.ravel()).tolist() == list(range(128, 256))  # 127.5 = half of 255
    assert np.flatnonzero(hole_from_array(levels, threshold=0.25).ravel())[0] == 64  # 63.75 = a quarter of 255


def test_full_scale_of_16_bit_float_and_zero_one_masks():
    sixteen = np.array([[0, 255, 32767, 32768, 65535]], dtype=np.uint16)
    assert hole_from_array(sixteen).tolist() == [[False, False, False, True, True]]  # values above 255: 65535 scale
    low16 = np.array([[0, 127, 128, 255]], dtype=np.uint16)
    assert hole_from_array(low16).tolist() == [[False, False, True, True]]  # only 0..255 used: read as 8-bit
    floats = np.array([[0.0, 0.49, 0.5, 1.0]], dtype=np.float32)
    assert hole_from_array(floats).tolist() == [[False, False, True, True]]
    assert hole_from_array(np.array([[0.0, 100.0, 200.0]])).tolist() == [[False, False, True]]  # floats over 1: 0..255
    zero_one = np.array([[0, 1, 1, 0]], dtype=np.int64)
    assert hole_from_array(zero_one).tolist() == [[False, True, True, False]]  # 1 is full scale
    nan = np.array([[np.nan, 1.0, np.inf]])
    assert hole_from_array(nan).tolist() == [[False, True, False]]  # non-finite values are no holes


def test_the_brightest_colour_channel_decides_and_black_is_never_a_hole():
    rgb = np.zeros((1, 5, 3), dtype=np.uint8)
    rgb[0, 1] = (255, 0, 0)  # a red stroke
    rgb[0, 2] = (0, 0, 200)  # a blue stroke
    rgb[0, 3] = (100, 100, 100)  # dark grey
    rgb[0, 4] = (127, 127, 128)
    assert hole_from_array(rgb).tolist() == [[False, True, True, False, True]]


def test_layouts_of_arrays_and_tensors():
    hw = np.zeros((4, 6), dtype=np.uint8)
    hw[1:3, 2:5] = 255
    expected = hw > 0
    assert np.array_equal(hole_from_array(hw[..., None]), expected)  # [H, W, 1]
    assert np.array_equal(hole_from_array(hw[None]), expected)  # [1, H, W], the data layer's layout
    assert np.array_equal(hole_from_array(np.stack([hw] * 3)), expected)  # [3, H, W]
    assert np.array_equal(hole_from_array(torch.from_numpy(hw).float().div(255)[None, None]), expected)  # [1,1,H,W]
    assert np.array_equal(hole_from_array(torch.from_numpy(hw).to(torch.bfloat16) / 255), expected)
    assert np.array_equal(hole_from_array(expected), expected)  # bool: as it is
    with pytest.raises(ValueError, match=r"got shape \(2, 4, 6, 5\)"):
        hole_from_array(np.zeros((2, 4, 6, 5)))
    with pytest.raises(ValueError, match="bool, integer or float, got dtype <U1"):
        hole_from_array(np.array([["a"]]))
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\], got 0.0"):
        hole_from_array(hw, threshold=0.0)


def test_a_painted_layer_is_a_hole_wherever_it_is_painted():
    layer = np.zeros((1, 4, 4), dtype=np.uint8)
    layer[0, 1] = (0, 0, 0, 255)  # a black brush stroke: still a hole
    layer[0, 2] = (0, 0, 0, 10)  # its antialiased edge
    layer[0, 3] = (255, 255, 255, 0)  # transparent white: not painted
    assert hole_from_array(layer).tolist() == [[False, True, True, False]]
    layer[0, 1:3, :3] = (255, 0, 0)  # a red brush: the same
    assert hole_from_array(layer).tolist() == [[False, True, True, False]]
    # bright and dark painted pixels together (a black-and-white mask with transparent parts): only the bright ones
    mixed = np.zeros((1, 4, 4), dtype=np.uint8)
    mixed[0, :, 3] = (255, 255, 255, 0)
    mixed[0, 1] = (255, 255, 255, 255)
    mixed[0, 2] = (0, 0, 0, 255)
    assert hole_from_array(mixed).tolist() == [[False, True, False, False]]
    opaque = np.full((1, 3, 4), 255, dtype=np.uint8)
    opaque[0, :, :3] = [[0, 0, 0], [200, 200, 200], [10, 10, 10]]
    assert hole_from_array(opaque).tolist() == [[False, True, False]]  # a fully opaque alpha says nothing
    grey_alpha = np.array([[[0, 0], [0, 255], [255, 255]]], dtype=np.uint8)  # [H, W, 2]: grey + alpha
    assert hole_from_array(grey_alpha).tolist() == [[False, False, True]]  # painted black and white: the white
    grey_alpha[0, 2, 1] = 0  # the white pixel made transparent: the black stroke alone is the hole
    assert hole_from_array(grey_alpha).tolist() == [[False, True, False]]


def test_images_and_files_follow_the_same_rule(tmp_path):
    grey = np.array([[0, 127, 128, 255]], dtype=np.uint8)
    assert hole_from_image(Image.fromarray(grey)).tolist() == [[False, False, True, True]]
    assert hole_from_image(Image.fromarray(grey).convert("1")).tolist() == [[False, False, True, True]]
    assert hole_from_image(Image.fromarray(grey).convert("RGB")).tolist() == [[False, False, True, True]]
    rgba = Image.fromarray(np.array([[[0, 0, 0, 0], [0, 0, 0, 255]]], dtype=np.uint8), "RGBA")
    assert hole_from_image(rgba).tolist() == [[False, True]]
    sixteen = Image.fromarray(np.array([[0, 30000, 40000]], dtype=np.uint16))
    assert hole_from_image(sixteen).tolist() == [[False, False, True]]
    # the EXIF orientation is applied, so the mask lines up with the image as displayed
    wide = np.zeros((2, 4), dtype=np.uint8)
    wide[:, 0] = 255  # the left column
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(wide).save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    shown = read_hole(tmp_path / "rotated.jpg")
    assert shown.shape == (4, 2) and shown[0].all() and not shown[1:].any()  # the left column is now the top row
    Image.fromarray(grey).save(tmp_path / "mask.png")
    assert read_hole(tmp_path / "mask.png").tolist() == [[False, False, True, True]]
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(OSError):
        read_hole(tmp_path / "notes.png")
