"""evaluation.data: the Table 1 setting, box holes, the test split built for an evaluation (frozen mask augmentation,
batch overrides, errors naming $DMFN_DATA), and what a written manifest needs of the data.

(Named after its module's package, evaluation, as tests/data/test_data.py already holds the data layer's tests.)
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from dmfn_lightning.core.errors import ConfigError, DataError
from dmfn_lightning.evaluate import compose_config
from dmfn_lightning.evaluation.data import (
    build_datamodule,
    check_manifest_out_data,
    is_box_mask,
    is_table1_setting,
    manifest_settings,
    relative_image,
    table1_protocol,
)
from dmfn_lightning.masks import CenterMask, FreeFormMask, RandomBoxMask
from tests.conftest import eval_overrides


def test_the_table1_setting_is_the_exact_centre_box_at_256_px():
    assert is_table1_setting(CenterMask(), 256)
    assert not is_table1_setting(CenterMask(), 64)
    assert not is_table1_setting(CenterMask(shrink=True), 256)  # the released test code's jittered box
    assert not is_table1_setting(CenterMask(hole_size=0.25), 256)
    assert not is_table1_setting(RandomBoxMask(), 256) and not is_table1_setting(None, 256)
    assert table1_protocol(SimpleNamespace(eval_mask=CenterMask(), image_size=256))
    assert not table1_protocol(SimpleNamespace(eval_mask=CenterMask(), image_size=128))
    assert not table1_protocol(object())


def test_box_holes_get_no_by_hole_ratio_table():
    assert is_box_mask(CenterMask()) and is_box_mask(RandomBoxMask()) and not is_box_mask(FreeFormMask())


def test_the_test_split_as_an_evaluation_reads_it(eval_setup, tmp_path):
    overrides = [o for o in eval_overrides(eval_setup, tmp_path) if not o.startswith("batch_size=")]
    cfg = compose_config([*overrides, "batch_size=3", "num_workers=0", "mask=irregular_files", f"mask.root={tmp_path}"])
    assert cfg.data.eval_mask.augment is True  # the mask group's training default
    datamodule = build_datamodule(cfg)  # building reads no mask file
    assert datamodule.eval_batch_size == 3 and datamodule.num_workers == 0
    assert datamodule.eval_mask.augment is False  # irregular mask files are used as they are in an evaluation


def test_missing_data_names_dmfn_data(eval_setup, tmp_path):
    cfg = compose_config(eval_overrides(eval_setup, tmp_path, f"data.root={tmp_path / 'nowhere'}"))
    with pytest.raises(DataError, match=r"nowhere.*DMFN_DATA"):
        build_datamodule(cfg)


def test_manifests_need_an_image_folder_data_module_centre_cropped(eval_setup, tmp_path):
    datamodule = build_datamodule(compose_config(eval_overrides(eval_setup, tmp_path)))
    root, allow_upscale, source = manifest_settings(datamodule)
    assert root == Path(eval_setup["data"]) and allow_upscale is False and source is not None
    check_manifest_out_data(datamodule)  # the folder group's test split: centre crops at scale 1
    with pytest.raises(ConfigError, match="manifests need an image-folder data group"):
        manifest_settings(SimpleNamespace())
    random_crops = build_datamodule(compose_config(eval_overrides(eval_setup, tmp_path, "+data.val.crop=random")))
    with pytest.raises(ConfigError, match="manifest_out needs centre-cropped test images"):
        check_manifest_out_data(random_crops)


def test_relative_image_paths(tmp_path):
    root = tmp_path / "data"
    assert relative_image(str(root / "val" / "a.png"), root) == "val/a.png"
    assert relative_image(str(tmp_path / "elsewhere.png"), root) == str((tmp_path / "elsewhere.png").resolve())
    assert relative_image(str(root / "b.png"), None) == str((root / "b.png").resolve())
