"""data.masks: the hole generators' former import path still names the same classes, so configs and checkpoints
written before masks/ became its own layer instantiate unchanged."""

from __future__ import annotations

from hydra.utils import instantiate

import dmfn_lightning.masks as masks
from dmfn_lightning.data import masks as legacy


def test_the_legacy_path_names_the_same_classes():
    assert legacy.__all__ == [
        "CenterMask",
        "FreeFormMask",
        "IrregularFileMask",
        "MaskGenerator",
        "MixedMask",
        "RandomBoxMask",
    ]
    for name in legacy.__all__:
        assert getattr(legacy, name) is getattr(masks, name), name


def test_a_config_naming_the_legacy_target_instantiates_the_current_class():
    box = instantiate({"_target_": "dmfn_lightning.data.masks.RandomBoxMask", "delta": 8})
    assert type(box) is masks.RandomBoxMask and box.delta == (8.0, 8.0)
    assert type(instantiate({"_target_": "dmfn_lightning.data.masks.CenterMask"})) is masks.CenterMask
