"""core.config: where the Hydra config tree is found (the checkout's conf/, $DMFN_CONFIG_DIR, a clear error when it
is nowhere), the _target_ values a tree names, the writable-folder check of output keys, and the path_safe
resolver."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

import dmfn_lightning.core.config as config
from dmfn_lightning.core.config import check_writable_dir, config_dir, config_targets, shipped_targets
from dmfn_lightning.core.errors import ConfigError
from tests.readonly import unwritable_folder


def test_config_dir_is_the_tree_with_train_yaml_and_the_env_var_overrides_it(tmp_path, monkeypatch):
    monkeypatch.delenv("DMFN_CONFIG_DIR", raising=False)
    found = config_dir()
    assert found.is_absolute() and (found / "train.yaml").is_file() and (found / "loss" / "paper.yaml").is_file()
    copy = tmp_path / "my_conf"
    copy.mkdir()
    (copy / "train.yaml").write_text("defaults: []\n")
    monkeypatch.setenv("DMFN_CONFIG_DIR", str(copy))
    assert config_dir() == copy
    monkeypatch.setenv("DMFN_CONFIG_DIR", str(tmp_path / "empty"))  # without train.yaml: the search goes on
    assert config_dir() == found


def test_config_dir_nowhere_is_a_config_error_naming_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "_PACKAGE_DIR", tmp_path / "site-packages" / "dmfn_lightning")
    monkeypatch.setenv("DMFN_CONFIG_DIR", str(tmp_path / "elsewhere"))
    with pytest.raises(ConfigError) as info:
        config_dir()
    message = str(info.value)
    assert (
        str(tmp_path / "elsewhere") in message
        and str(tmp_path / "site-packages" / "dmfn_lightning" / "conf") in message
    )
    assert "DMFN_CONFIG_DIR" in message and "\n" not in message


def test_config_targets_walks_dicts_lists_and_omegaconf_trees():
    tree = {
        "_target_": "a.Top",
        "model": {"generator": {"_target_": "a.G", "n": 1}, "plain": {"x": 2}},
        "callbacks": [{"_target_": "a.C0"}, "text", {"inner": [{"_target_": "a.C1"}]}],
    }
    expected = [
        ("_target_", "a.Top"),
        ("model.generator._target_", "a.G"),
        ("callbacks[0]._target_", "a.C0"),
        ("callbacks[2].inner[0]._target_", "a.C1"),
    ]
    assert list(config_targets(tree)) == expected
    assert list(config_targets(OmegaConf.create(tree))) == expected
    assert list(config_targets({"a": 1, "b": [1, 2]})) == []


def test_shipped_targets_are_the_targets_of_the_conf_tree():
    assert shipped_targets("loss") == frozenset({"dmfn_lightning.losses.DMFNLoss"})
    model = shipped_targets("model")
    assert {"dmfn_lightning.models.DMFNGenerator", "dmfn_lightning.models.VGG19Features"} <= model
    everything = shipped_targets()
    assert model | shipped_targets("loss") <= everything


def test_check_writable_dir_creates_the_folder_or_names_the_key(tmp_path):
    target = tmp_path / "runs" / "one"
    assert check_writable_dir(target, "output_dir") == target and target.is_dir()
    assert list(target.iterdir()) == []  # the write probe is removed
    occupied = tmp_path / "taken"
    occupied.write_text("x")
    with pytest.raises(ConfigError) as info:
        check_writable_dir(occupied, "output_dir")
    assert (
        str(info.value) == f"output_dir={str(occupied)!r} is an existing file, not a folder; choose another output_dir"
    )
    with pytest.raises(ConfigError, match=r"^cannot create hydra\.run\.dir=.*; choose another hydra\.run\.dir$"):
        check_writable_dir(occupied / "sub", "hydra.run.dir")
    locked = unwritable_folder(tmp_path)
    with pytest.raises(ConfigError, match=r"^cannot create output_dir=.* \(.+\); choose another output_dir$"):
        check_writable_dir(locked / "run", "output_dir")
    with pytest.raises(ConfigError, match=r"output_dir=.* is not writable \(.*\); choose a writable output_dir$"):
        check_writable_dir(locked, "output_dir")


def test_path_safe_resolver_flattens_group_overrides():
    node = OmegaConf.create({"overrides": "model/block=rate2,loss=no_align", "name": "${path_safe:${overrides}}"})
    assert node.name == "model.block=rate2,loss=no_align"
