"""Every ``_target_`` the configs name, and every one a checkpoint written by an earlier version stores, imports."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hydra.utils import get_object

CONF = Path(__file__).resolve().parents[2] / "conf"

# What a checkpoint's stored run config names and ``DMFNModule.from_config`` / a resume instantiates: the module,
# the loss, the networks, the data modules and the hole generators. These paths were written into checkpoints
# before the package was split into layer folders; they must keep importing so those checkpoints load and resume.
STORED_IN_CHECKPOINTS = (
    "dmfn_lightning.module.DMFNModule",
    "dmfn_lightning.losses.DMFNLoss",
    "dmfn_lightning.models.DMFNGenerator",
    "dmfn_lightning.models.GlobalLocalDiscriminator",
    "dmfn_lightning.models.VGG19Features",
    "dmfn_lightning.data.DMFNDataModule",
    "dmfn_lightning.data.demo.DemoDataModule",
    "dmfn_lightning.data.masks.CenterMask",
    "dmfn_lightning.data.masks.RandomBoxMask",
    "dmfn_lightning.data.masks.FreeFormMask",
    "dmfn_lightning.data.masks.IrregularFileMask",
    "dmfn_lightning.data.masks.MixedMask",
)


def _targets(node) -> list[str]:
    if isinstance(node, dict):
        found = [node["_target_"]] if isinstance(node.get("_target_"), str) else []
        return found + [t for value in node.values() for t in _targets(value)]
    if isinstance(node, list):
        return [t for value in node for t in _targets(value)]
    return []


def _config_targets() -> list[str]:
    targets = {t for path in CONF.rglob("*.yaml") for t in _targets(yaml.safe_load(path.read_text()))}
    return sorted(targets)


def test_the_configs_name_targets():
    targets = _config_targets()
    assert len(targets) > 20 and "dmfn_lightning.module.DMFNModule" in targets


@pytest.mark.parametrize("target", _config_targets())
def test_every_config_target_imports(target):
    assert callable(get_object(target))


@pytest.mark.parametrize("target", STORED_IN_CHECKPOINTS)
def test_targets_stored_in_old_checkpoints_still_import(target):
    assert callable(get_object(target))
