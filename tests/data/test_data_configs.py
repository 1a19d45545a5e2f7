"""The data configs (conf/data/*.yaml): every one has the command-line keys and the DMFN_DATA root, the demo
instantiates with the mask group, and the paper datasets find their layouts and protocol counts under DMFN_DATA."""

from __future__ import annotations

import os

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from dmfn_lightning.data import CenterMask, DataError, DemoDataModule, DMFNDataModule, RandomBoxMask
from tests.fakes import fake_dataset_layouts

DATA_NAMES = ["paris", "places2", "celeba_hq", "ffhq", "folder", "demo"]


@pytest.fixture
def data_conf(compose_conf):
    """The real conf/ tree's data group ``name`` (with the random-box mask and seed 0 it interpolates)."""

    def compose_data(name: str, *overrides: str, mask: str = "random_box", seed: int = 0):
        return compose_conf(None, f"+data={name}", f"+mask={mask}", f"+seed={seed}", *overrides)

    return compose_data


@pytest.mark.parametrize("name", DATA_NAMES)
def test_every_data_yaml_has_the_cli_keys_and_env_roots(data_conf, name, tmp_path):
    # Composed, as Hydra sees it: the folder datasets inherit their keys from data/_dataset.yaml.
    raw = data_conf(name).data
    assert raw._target_.startswith("dmfn_lightning.data.")
    for key in ("batch_size", "image_size", "num_workers", "train_mask", "eval_mask", "seed"):
        assert key in raw, key
    assert OmegaConf.to_container(raw)["train_mask"] == "${mask}"
    if name != "demo":
        assert OmegaConf.to_container(raw)["root"] == "${oc.env:DMFN_DATA,./data}/" + name
        assert raw.image_size == 256 and raw.batch_size == 16
    else:
        assert raw.image_size == 128


def test_demo_yaml_instantiates_with_mask_group_and_overrides(data_conf, tmp_path, no_network):
    cfg = data_conf("demo", "data.batch_size=2", "data.image_size=48", mask="free_form", seed=5)
    dm = instantiate(cfg.data)
    assert isinstance(dm, DemoDataModule) and dm.seed == 5
    assert type(dm.train_mask).__name__ == "FreeFormMask" and isinstance(dm.eval_mask, CenterMask)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, 48, 48) and batch["mask"].shape == (2, 1, 48, 48)
    assert len(dm.datasets["train"]) == 64 and len(dm.datasets["val"]) == 8


def test_dataset_yamls_find_their_layouts_under_DMFN_DATA(data_conf, tmp_path, monkeypatch):
    data = tmp_path / "data"
    fake_dataset_layouts(data)
    monkeypatch.setenv("DMFN_DATA", str(data))
    expect = {  # split -> number of files
        "paris": {"train": 3, "val": 100, "test": 100},
        "places2": {"train": 3, "val": 100, "test": 100},
        "celeba_hq": {"train": 3, "val": 500, "test": 2000},
        "ffhq": {"train": 3, "val": 500, "test": 10000},
        "folder": {"train": 3, "val": 1, "test": 1},
    }
    for name, splits in expect.items():
        cfg = data_conf(name, "data.image_size=16", "data.num_workers=0", "data.check_headers=none")
        dm = instantiate(cfg.data)
        assert isinstance(dm, DMFNDataModule) and isinstance(dm.train_mask, RandomBoxMask)
        assert dm.root == str(data / name)
        for split, count in splits.items():
            assert len(dm.build_dataset(split).paths) == count, (name, split)
        assert dm.crop == ("center" if name in ("celeba_hq", "ffhq") else "random")
    released = instantiate(data_conf("paris", "data.crop=released", "data.check_headers=none").data)
    assert released.crop == "released" and released.build_dataset("train").crop == "released"
    assert released.build_dataset("val").crop == "center"  # evaluation stays centred
    with pytest.raises(Exception, match="crop must be one of random, center, released, got 'square'"):
        instantiate(data_conf("paris", "data.crop=square").data)  # Hydra wraps the DataError
    ffhq = instantiate(data_conf("ffhq", "data.check_headers=none").data)
    test_names = [p.stem for p in ffhq.build_dataset("test").paths]
    assert test_names[0] == "60000" and test_names[-1] == "69999"
    # CelebA-HQ's test split is the authors' list of 2,000 files, in their order; a missing one is named
    celeba = instantiate(data_conf("celeba_hq", "data.check_headers=none").data)
    test_names = [p.name for p in celeba.build_dataset("test").paths]
    assert test_names[:2] == ["img00000003.png", "img00000014.png"] and test_names[-1] == "img00029977.png"
    os.remove(data / "celeba_hq" / "celeba_hq_val" / "img00009175.png")
    with pytest.raises(DataError, match=r"data.test: .*1 of 2000 listed files do not exist.*img00009175\.png"):
        instantiate(data_conf("celeba_hq").data).build_dataset("test")
    # the protocol counts are enforced: Places2's test split must have 100 images
    with pytest.raises(DataError, match=r"data.test: .*found 100 images but this split must have exactly 99"):
        instantiate(data_conf("places2", "data.val.expected_count=99").data).build_dataset("test")
    # a missing Paris test image is named
    os.remove(data / "paris" / "paris_eval_gt" / "042_im.png")
    with pytest.raises(DataError, match=r"042_im\.png"):
        instantiate(data_conf("paris").data).setup("validate")
    # Paris test images are smaller than 256 and are upscaled, as released (header check on by default)
    os.symlink(data / "_src.png", data / "paris" / "paris_eval_gt" / "042_im.png")
    paris = instantiate(data_conf("paris", "data.image_size=32", "data.num_workers=0").data)
    paris.setup("validate")
    assert next(iter(paris.val_dataloader()))["image"].shape == (16, 3, 32, 32)
