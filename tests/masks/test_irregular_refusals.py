"""IrregularFileMask refusals: a mask folder without any hole, empty masks among others, symlinked folders."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dmfn_lightning.core.errors import DataError
from dmfn_lightning.data import DMFNDataModule
from dmfn_lightning.masks import IrregularFileMask, MixedMask, RandomBoxMask


def _mask(path: Path, hole: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros((32, 32), np.uint8)
    if hole:
        pixels[8:24, 4:20] = 255
    Image.fromarray(pixels).save(path)
    return path


def test_a_folder_of_masks_without_holes_is_refused(tmp_path):
    # all-black masks trained with g_reconstruction=0.0 and d_real == d_fake, without a word
    for i in range(3):
        _mask(tmp_path / "black" / f"m{i}.png", hole=False)
    with pytest.raises(DataError) as err:
        IrregularFileMask(tmp_path / "black")(32, 32, np.random.default_rng(0))
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{tmp_path / 'black'}: none of the 3 mask images has a hole")
    assert "threshold=0.5" in message and "mask.invert=true" in message


def test_the_data_module_refuses_them_at_setup(tmp_path):
    # in the main process, before any training step (a DataLoader worker would wrap the message in a traceback)
    _mask(tmp_path / "black" / "m0.png", hole=False)
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "img.png")
    masks = MixedMask([RandomBoxMask(), IrregularFileMask(tmp_path / "black")])
    dm = DMFNDataModule(train=str(tmp_path), val=None, image_size=32, num_workers=0, train_mask=masks)
    with pytest.raises(DataError, match=r"none of the 1 mask images has a hole"):
        dm.setup("fit")


def test_empty_masks_among_others_are_warned_about_once(tmp_path):
    _mask(tmp_path / "some" / "a_empty.png", hole=False)
    _mask(tmp_path / "some" / "b_hole.png", hole=True)
    _mask(tmp_path / "some" / "c_empty.png", hole=False)
    generator = IrregularFileMask(tmp_path / "some", augment=False)
    rng = np.random.default_rng(0)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        ratios = [float(generator(32, 32, rng)[0].mean()) for _ in range(12)]
    assert 0.0 in ratios and max(ratios) > 0  # empty masks are still drawn, as the folder says
    empty = [str(w.message) for w in record if "without a hole" in str(w.message)]
    assert len(empty) == 1 and "a_empty.png" in empty[0] and "threshold=0.5" in empty[0], empty


def test_symlinked_mask_folders_are_followed_but_loops_skipped(tmp_path):
    _mask(tmp_path / "masks" / "m0.png", hole=True)
    _mask(tmp_path / "nvidia" / "m1.png", hole=True)
    os.symlink(tmp_path / "nvidia", tmp_path / "masks" / "nvidia")  # masks kept elsewhere: followed
    os.symlink("..", tmp_path / "masks" / "loop")  # back to the parent: skipped
    with pytest.warns(UserWarning, match=r"mask folder .*: skipped 1 symlinked folder\(s\)"):
        files = IrregularFileMask(tmp_path / "masks").files
    assert files == [tmp_path / "masks" / "m0.png", tmp_path / "masks" / "nvidia" / "m1.png"]
