"""The HD strategies' geometry (dmfn_lightning.inpainting.hd): crop windows around holes, merging, the training size
recorded in a generator file, and the crop margin's check. What the generator sees is in test_api.py."""

from __future__ import annotations

import numpy as np
import pytest

from dmfn_lightning.core.errors import InpaintError
from dmfn_lightning.inpainting.api import inpaint
from dmfn_lightning.inpainting.hd import (
    DEFAULT_CROP_MARGIN,
    STRATEGIES,
    Window,
    check_crop_margin,
    crop_windows,
    hole_boxes,
    merge_windows,
    other_size_note,
    training_size,
)
from dmfn_lightning.models import export_generator, load_generator
from tests.inpainting.photo_fakes import HD_H, HD_W, Spy, hd_holes, rgba_image, small_generator


def test_crop_windows_far_apart_two_overlapping_one():
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


def test_crop_uses_the_training_size_recorded_in_the_generator_file(tmp_path):
    spy = Spy()
    spy.metadata = {"image_size": 128}  # what load_generator() sets from a generator file's metadata
    inpaint(spy, rgba_image(HD_W, HD_H), hd_holes((200, 300, 10, 10)), strategy="crop", crop_margin=16)
    assert spy.shapes == [(1, 4, 128, 128)]
    export_generator(small_generator(base_channels=8), tmp_path / "g.pt", metadata={"image_size": 96})
    assert training_size(load_generator(tmp_path / "g.pt")) == 96
    with pytest.warns(UserWarning, match="does not record the image size"):
        assert training_size(Spy()) == 256  # nothing recorded: the paper's 256
    spy.metadata = {"image_size": True}  # a recorded bool is no size
    with pytest.warns(UserWarning, match="does not record the image size"):
        assert training_size(spy) == 256


def test_a_file_without_its_training_size_says_so_once(tmp_path):
    """Issue case 8: a file that does not record its training size (written before it was recorded) keeps loading
    and falls back to 256, saying so once per generator; one that records it is used without a word."""
    import warnings

    old = small_generator(base_channels=8)
    old.metadata = {"iteration": 3, "vgg_weights": "imagenet"}  # what training used to record
    said: list[str] = []
    assert training_size(old, warn=said.append) == 256
    assert training_size(old, warn=said.append) == 256
    assert len(said) == 1 and "does not record the image size" in said[0] and "256" in said[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert training_size(old) == 256  # already said for this generator: silent
        fresh = small_generator(base_channels=8)
        assert training_size(fresh) == training_size(fresh) == 256
    assert [str(w.message) for w in caught] == [said[0]]  # the default way to say it: one warnings.warn
    recorded = small_generator(base_channels=8)
    recorded.metadata = {"image_size": 64}
    assert training_size(recorded, warn=said.append) == 64 and len(said) == 1


def test_check_crop_margin_names_the_setting_as_the_caller_does():
    assert check_crop_margin(0) == 0 and check_crop_margin(np.int16(48)) == 48
    assert DEFAULT_CROP_MARGIN == 128 and STRATEGIES == ("full", "resize", "crop")
    for bad in (-1, 1.5, True, "64", None):
        with pytest.raises(InpaintError, match=rf"--crop-margin must be a whole number of pixels >= 0, got {bad!r}"):
            check_crop_margin(bad, "--crop-margin")


def test_running_at_another_size_than_the_recorded_one_is_said_in_one_line():
    generator = small_generator()
    generator.metadata = {"image_size": 64}
    note = other_size_note(generator, "resize", 96, [(200, 150)])
    assert note.startswith("the generator was trained on 64x64 images; --working-size 96 runs it at 96 px")
    assert other_size_note(generator, "resize", 64, [(200, 150)]) is None  # at the training size
    assert other_size_note(generator, "resize", None, [(200, 150)]) is None  # resize defaults to it
    note = other_size_note(generator, "full", None, [(64, 48), (200, 150), (120, 90)])
    assert "runs it at each photo's own size (up to 200x150 here)" in note and "resize works at 64 px" in note
    assert other_size_note(generator, "full", None, [(64, 64), (64, 40)]) is None  # long side 64: as trained
    assert other_size_note(generator, "crop", None, [(2000, 1500)]) is None  # windows at full detail on purpose
    generator.metadata = {}
    assert other_size_note(generator, "full", None, [(200, 150)]) is None  # nothing recorded: nothing to compare
