"""DMFNModule: rebuilding from a checkpoint never calls what the checkpoint names, beyond the package's own classes."""

from __future__ import annotations

import copy

import pytest
import torch

from dmfn_lightning.core.errors import CheckpointError
from dmfn_lightning.module import DMFNModule, check_rebuilt_config, run_config_of, trusted_targets
from dmfn_lightning.train import compose_config


@pytest.fixture
def demo_config(tmp_path) -> dict:
    overrides = ["+experiment=demo", "data.image_size=64", "model.generator.num_blocks=1", "logger=none"]
    return run_config_of(compose_config(overrides, tmp_path / "run"))


def _crafted(tmp_path, config: dict) -> str:
    path = tmp_path / "crafted.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"config": config}}, path)  # loads with weights_only=True
    return str(path)


def _writes(marker) -> dict:
    return {"_target_": "builtins.open", "_args_": [str(marker), "w"]}


@pytest.mark.parametrize(
    "where",
    ["model", "model.generator", "model.vgg", "loss", "optim.generator", "optim.scheduler"],
)
def test_a_checkpoint_naming_a_foreign_callable_is_refused(demo_config, tmp_path, where):
    marker = tmp_path / "MARKER"
    config = copy.deepcopy(demo_config)
    node = config
    *parents, leaf = where.split(".")
    for name in parents:
        node = node[name]
    node[leaf] = {**(node.get(leaf) or {}), **_writes(marker)}
    with pytest.raises(CheckpointError) as info:
        DMFNModule.load_from_checkpoint(_crafted(tmp_path, config))
    message = str(info.value)
    assert f"{where}._target_='builtins.open'" in message and "\n" not in message
    assert not marker.exists()


@pytest.mark.parametrize("target", ["shutil.copyfile", "torch.hub.load", "builtins.print", "os.system"])
def test_other_callables_are_refused_by_name(demo_config, tmp_path, target):
    config = copy.deepcopy(demo_config)
    config["loss"]["_target_"] = target
    with pytest.raises(CheckpointError, match=f"loss._target_='{target}'"):
        DMFNModule.load_from_checkpoint(_crafted(tmp_path, config))


def test_an_unresolved_interpolation_is_refused(demo_config, tmp_path):
    config = copy.deepcopy(demo_config)
    config["model"]["generator"]["base_channels"] = "${oc.env:HOME}"
    with pytest.raises(CheckpointError, match=r"unresolved interpolation at model\.generator\.base_channels"):
        DMFNModule.load_from_checkpoint(_crafted(tmp_path, config))


def test_the_shipped_configs_and_torch_optimizers_are_trusted(demo_config):
    check_rebuilt_config(demo_config, "demo")  # no error
    trusted = trusted_targets()
    assert {"dmfn_lightning.module.DMFNModule", "dmfn_lightning.losses.DMFNLoss", "torch.optim.Adam"} <= trusted
    assert {"torch.optim.SGD", "torch.optim.lr_scheduler.CosineAnnealingLR"} <= trusted  # an ablation may pick these
    assert not any(t.startswith(("builtins.", "os.", "shutil.", "torch.hub")) for t in trusted)


def test_a_trusted_config_with_another_optimizer_loads(demo_config, tmp_path):
    config = copy.deepcopy(demo_config)
    config["optim"]["generator"] = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1}
    module = DMFNModule.load_from_checkpoint(_crafted(tmp_path, config), strict=False)
    assert isinstance(module, DMFNModule)
