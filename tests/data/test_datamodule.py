"""data.datamodule: DMFNDataModule's batches and sizes, under a Lightning Trainer, skipped files counted across
workers, disjoint samples per distributed rank, and evaluation images and holes that are a pure function of index and
seed."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DistributedSampler

from dmfn_lightning.data import DMFNDataModule, RandomBoxMask, collate_samples
from tests.data.data_fakes import bad_folder, save_image


def test_datamodule_batches_follow_the_contract_and_report_sizes(tmp_path):
    for i in range(10):
        save_image(tmp_path / "train" / f"{i}.jpg", size=(48, 40))
    for i in range(3):
        save_image(tmp_path / "val" / f"{i}.png", size=(40, 40))
    dm = DMFNDataModule(
        root=str(tmp_path),
        train="train",
        val={"root": "val"},
        image_size=32,
        batch_size=4,
        eval_batch_size=2,
        num_workers=0,
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"image", "mask", "bbox", "index", "path"}
    assert batch["image"].shape == (4, 3, 32, 32) and batch["image"].dtype == torch.float32
    assert batch["mask"].shape == (4, 1, 32, 32) and batch["mask"].dtype == torch.float32
    assert batch["bbox"].shape == (4, 4) and batch["bbox"].dtype == torch.int64
    assert batch["index"].shape == (4,) and batch["index"].dtype == torch.int64
    assert isinstance(batch["path"], list) and len(batch["path"]) == 4
    assert dm.sizes == {
        "train": {"files": 10, "samples": 10, "batches": 2, "skipped": 0},
        "val": {"files": 3, "samples": 3, "batches": 2, "skipped": 0},
    }
    assert "train: 10 samples from 10 files" in dm.describe()
    dm.setup("test")  # test defaults to val (same dataset object)
    assert dm.datasets["test"] is dm.datasets["val"]
    assert [len(b["path"]) for b in dm.test_dataloader()] == [2, 1]


def test_datamodule_runs_under_a_lightning_trainer(tmp_path):
    for i in range(4):
        save_image(tmp_path / "train" / f"{i}.png", size=(40, 36))
        save_image(tmp_path / "val" / f"{i}.png", size=(36, 36))

    class Probe(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.seen: list[tuple] = []

        def training_step(self, batch, _):
            self.seen.append(("train", tuple(batch["image"].shape), tuple(batch["bbox"].shape)))
            return (self.w * batch["image"].mean()).sum()

        def validation_step(self, batch, _):
            self.seen.append(("val", tuple(batch["image"].shape), tuple(batch["bbox"].shape)))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    dm = DMFNDataModule(
        train=str(tmp_path / "train"), val=str(tmp_path / "val"), image_size=32, batch_size=2, num_workers=0
    )
    model = Probe()
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=dm)
    assert model.seen.count(("train", (2, 3, 32, 32), (2, 4))) == 2
    assert model.seen.count(("val", (2, 3, 32, 32), (2, 4))) == 2


def test_skip_counter_is_shared_with_dataloader_workers(tmp_path):
    bad_folder(tmp_path / "bad")
    dm = DMFNDataModule(
        train=str(tmp_path / "bad"), val=None, image_size=16, batch_size=2, num_workers=2, persistent_workers=False
    )
    dm.setup("fit")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the warning is emitted in the worker process
        batches = list(dm.train_dataloader())
    assert sum(len(b["path"]) for b in batches) == 4
    assert all(not p.endswith("a_truncated.jpg") for b in batches for p in b["path"])
    assert dm.skipped_count == 1 and dm.skipped_paths[0].endswith("a_truncated.jpg")
    assert dm.sizes["train"]["skipped"] == 1
    with pytest.warns(UserWarning, match=r"1 bad image\(s\) were skipped: .*a_truncated.jpg"):
        dm.teardown("fit")


def test_distributed_ranks_get_disjoint_samples_and_different_streams(tmp_path):

    save_image(tmp_path / "img.png", size=(48, 32))
    (tmp_path / "list.txt").write_text("img.png\n" * 16)
    results = {}
    for rank in (0, 1):
        dm = DMFNDataModule(
            train={"root": str(tmp_path), "list": str(tmp_path / "list.txt")},
            val=None,
            image_size=32,
            batch_size=4,
            num_workers=0,
            seed=3,
        )
        dm.trainer = SimpleNamespace(global_rank=rank, world_size=2)  # what Lightning provides under DDP
        dm.setup("fit")
        loader = dm.train_dataloader()
        # The training sampler shards by rank itself; being a DistributedSampler, Lightning leaves it in place
        assert isinstance(loader.sampler, DistributedSampler)
        assert loader.collate_fn is collate_samples and loader.batch_size == 4
        batches = list(loader)
        results[rank] = (
            torch.cat([b["index"] for b in batches]).tolist(),
            torch.cat([b["mask"] for b in batches]),
        )
    idx0, m0 = results[0]
    idx1, m1 = results[1]
    assert sorted(idx0 + idx1) == list(range(16)) and not set(idx0) & set(idx1)
    assert not any(torch.equal(a, b) for a, b in zip(m0, m1))


def test_eval_masks_and_images_are_a_pure_function_of_index_and_seed(tmp_path):
    for i in range(6):
        save_image(tmp_path / "val" / f"{i}.png", size=(40 + 4 * i, 36))
    save_image(tmp_path / "train" / "t.png", size=(40, 40))

    def loader(seed: int, workers: int):
        dm = DMFNDataModule(
            train=str(tmp_path / "train"),
            val=str(tmp_path / "val"),
            image_size=32,
            eval_batch_size=4,
            num_workers=workers,
            persistent_workers=False,
            eval_mask=RandomBoxMask(),  # random generator: determinism must come from the per-index seed
            seed=seed,
        )
        dm.setup("test")
        return dm.test_dataloader()

    def collect(dl):
        batches = list(dl)
        return torch.cat([b["image"] for b in batches]), torch.cat([b["mask"] for b in batches])

    dl = loader(seed=0, workers=0)
    first, second = collect(dl), collect(dl)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    # a fresh module, and worker processes, give the same holes
    assert torch.equal(collect(loader(seed=0, workers=2))[1], first[1])
    assert torch.equal(collect(loader(seed=0, workers=0))[0], first[0])
    # the holes differ between samples and with another seed
    assert len({tuple(m.flatten().tolist()) for m in first[1]}) == 6
    assert not torch.equal(collect(loader(seed=1, workers=0))[1], first[1])
    # the default evaluation hole is the exact centre box
    dm = DMFNDataModule(train=str(tmp_path / "train"), val=str(tmp_path / "val"), image_size=32, num_workers=0)
    dm.setup("validate")
    batch = next(iter(dm.val_dataloader()))
    assert batch["bbox"].tolist() == [[8, 8, 16, 16]] * 6
    assert batch["mask"][:, :, 8:24, 8:24].eq(1).all() and batch["mask"].sum() == 6 * 16 * 16
