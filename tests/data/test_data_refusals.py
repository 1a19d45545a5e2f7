"""Data refusals: symlink loops and links into another split, images too small for the crop, the documented
file-list override of ``data=folder``."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from PIL import Image

from dmfn_lightning.core.config import config_dir
from dmfn_lightning.core.errors import DataError
from dmfn_lightning.data import DMFNDataModule, ImageDataset, list_images
from dmfn_lightning.train import compose_config


def _images(folder: Path, names: list[str], size: int = 24) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(names))
    paths = []
    for name in names:
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / name)
        paths.append(folder / name)
    return paths


def _splits(root: Path, size: int = 24) -> tuple[list[Path], list[Path]]:
    train = _images(root / "train", [f"t{i}.png" for i in range(4)], size)
    val = _images(root / "val", ["v0.png", "v1.png"], size)
    return train, val


def test_a_symlink_loop_is_skipped_with_one_warning(tmp_path):
    # `ln -s .. train/loop`: listed 244 files (80 of them validation images), without a word
    train, _ = _splits(tmp_path)
    os.symlink("..", tmp_path / "train" / "loop")
    with pytest.warns(UserWarning) as record:
        files = list_images(str(tmp_path / "train"))
    assert files == train
    loops = [str(w.message) for w in record if "symlinked folder" in str(w.message)]
    assert len(loops) == 1 and "skipped 1 symlinked folder(s)" in loops[0] and "loop -> .." in loops[0], loops


def test_links_to_other_places_are_followed_once(tmp_path):
    train, _ = _splits(tmp_path / "data")
    extra = _images(tmp_path / "elsewhere" / "photos", ["e0.png", "e1.png"])
    os.symlink(tmp_path / "elsewhere" / "photos", tmp_path / "data" / "train" / "more")
    os.symlink(tmp_path / "elsewhere" / "photos", tmp_path / "data" / "train" / "more_again")  # the same folder
    os.symlink(tmp_path / "data" / "train", tmp_path / "elsewhere" / "photos" / "back")  # a loop through it
    with pytest.warns(UserWarning, match=r"skipped 2 symlinked folder\(s\)"):
        files = list_images(str(tmp_path / "data" / "train"))
    more = tmp_path / "data" / "train" / "more"
    assert files == sorted([*[more / p.name for p in extra], *train])


def test_a_link_into_another_split_is_refused(tmp_path):
    _splits(tmp_path)
    os.symlink(tmp_path / "val", tmp_path / "train" / "extra")
    dm = DMFNDataModule(train=str(tmp_path / "train"), val=str(tmp_path / "val"), image_size=16, num_workers=0)
    with pytest.raises(DataError) as err:
        dm.setup("fit")
    message = str(err.value)
    assert "\n" not in message
    assert "data.train and data.val share 2 image file(s)" in message
    assert str(tmp_path / "train" / "extra") in message and "through a symlinked folder" in message


def test_a_train_folder_holding_the_test_folder_is_refused_but_one_folder_for_both_is_allowed(tmp_path):
    _splits(tmp_path)
    dm = DMFNDataModule(train=str(tmp_path), val=None, test=str(tmp_path / "val"), image_size=16, num_workers=0)
    with pytest.raises(DataError, match=r"data.train and data.test share 2 image file\(s\)"):
        dm.setup(None)
    same = DMFNDataModule(train=str(tmp_path / "val"), val=str(tmp_path / "val"), image_size=16, num_workers=0)
    same.setup("fit")  # the same folder on purpose (e.g. overfitting a few images): not a leak to refuse
    assert same.sizes["train"]["files"] == same.sizes["val"]["files"] == 2


def _bad_images(folder: Path) -> None:
    _images(folder, ["small0.png", "small1.png"], size=20)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")


def test_too_small_images_are_counted_apart_from_undecodable_ones(tmp_path):
    # the final error said "every image failed to decode" for images that decode fine but are too small
    _bad_images(tmp_path / "train")
    ds = ImageDataset(str(tmp_path / "train"), image_size=32, train=True, on_bad_image="skip")
    with warnings.catch_warnings(), pytest.raises(DataError) as err:
        warnings.simplefilter("ignore")
        ds[0]
    message = str(err.value)
    assert "\n" not in message and "failed to decode (" in message
    assert "none of the 3 images is usable" in message
    assert "2 smaller than the 32x32 crop of data.image_size=32" in message
    assert "data.allow_upscale=true" in message and "1 failed to decode" in message


def test_header_checks_count_too_small_images_apart(tmp_path):
    _bad_images(tmp_path / "train")
    with warnings.catch_warnings(), pytest.raises(DataError) as err:
        warnings.simplefilter("ignore")
        ImageDataset(str(tmp_path / "train"), image_size=32, on_bad_image="skip", check_headers=True)
    assert "2 smaller than the 32x32 crop" in str(err.value) and "1 failed to decode" in str(err.value)


def test_the_documented_file_list_override_composes_and_lists(tmp_path):
    # conf/data/folder.yaml documents data.train.list=/abs/train.txt; it failed with "Key 'list' is not in struct"
    documented = "data.train.list=/abs/train.txt"
    assert documented in (config_dir() / "data" / "folder.yaml").read_text()
    train, val = _splits(tmp_path / "folder", size=64)
    listed = tmp_path / "train.txt"
    listed.write_text(f"{train[2]}\nt0.png\n")  # an absolute line and one relative to data.train.root
    overrides = ["+experiment=demo", "+debug=fast", "data=folder", f"data.root={tmp_path / 'folder'}"]
    cfg = compose_config([*overrides, documented.replace("/abs/train.txt", str(listed))], tmp_path / "run")
    assert cfg.data.train.list == str(listed) and cfg.data.val.list is None
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    assert datamodule.datasets["train"].paths == [train[2], train[0]]
    assert datamodule.datasets["val"].paths == val
