"""data.demo: the offline demo data module over scikit-image's bundled photos (split by source photo, fixed
validation crops)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dmfn_lightning.data import DataError, DemoDataModule
from dmfn_lightning.data.demo import TRAIN_PHOTOS, VAL_PHOTOS


def test_demo_datamodule_builds_offline_with_configured_batches(no_network, tmp_path):
    dm = DemoDataModule(image_size=64, batch_size=4, train_length=16, val_crops=8, seed=0)
    dm.setup("fit")
    assert dm.sizes["train"] == {"files": 6, "samples": 16, "batches": 4, "skipped": 0}
    assert dm.sizes["val"] == {"files": 2, "samples": 8, "batches": 2, "skipped": 0}
    train = list(dm.train_dataloader())
    assert [b["image"].shape for b in train] == [(4, 3, 64, 64)] * 4
    val = list(dm.val_dataloader())
    assert [b["image"].shape for b in val] == [(4, 3, 64, 64)] * 2
    train_sources = {Path(p).name for b in train for p in b["path"]}
    val_sources = {Path(p).name for b in val for p in b["path"]}
    assert not train_sources & val_sources  # split by source photo
    assert {Path(p).stem for p in dm.datasets["val"].paths} == {"chelsea", "coffee"}
    assert not set(TRAIN_PHOTOS) & set(VAL_PHOTOS)
    # the validation set is fixed: a second module gives the same crops and holes
    again = DemoDataModule(image_size=64, batch_size=4, train_length=16, val_crops=8, seed=0)
    again.setup("validate")
    assert all(
        torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
        for a, b in zip(val, again.val_dataloader())
    )
    # 8 different crops, all in [-1, 1]
    images = torch.cat([b["image"] for b in val])
    assert len({round(float(x), 4) for x in images.mean(dim=(1, 2, 3))}) == 8
    assert images.min() >= -1 and images.max() <= 1
    with pytest.raises(DataError, match="both the training and the validation"):
        DemoDataModule(train_photos=["chelsea"], val_photos=["chelsea"])
