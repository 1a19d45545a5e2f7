"""Training from shards: two DDP processes read disjoint samples that cover the epoch, a run resumed mid-epoch from
shards ends bit-identical to the uninterrupted one (and to the run on the folder), and a damaged shard stops the
training command with one error line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dmfn_lightning.train import compose_config, train
from tests.cli import run_module
from tests.data.shard_fakes import image_folder, write
from tests.integration.test_resume import N, _differences

REPO = Path(__file__).resolve().parents[2]
# As the resume tests: 64 px, one block, 8 training images in batches of 2 (four iterations an epoch).
RUN = [
    "+experiment=demo",
    "+debug=fast",
    "data=folder",
    "trainer.val_check_interval=2",
    "checkpoint.every_n_steps=1",
    "model.ema_decay=0.9",
    "inpaint_val_images=false",
]


@pytest.fixture(scope="module")
def sharded(tmp_path_factory) -> dict[str, Path]:
    """An image folder (8 train, 2 val images) and its shards (3 images a shard)."""
    base = tmp_path_factory.mktemp("sharded")
    folder = image_folder(base / "images", train=8, val=2)
    write(folder, base / "shards", max_bytes=10**9)
    return {"folder": folder, "shards": base / "shards", "cache": base / "cache"}


def _shard_args(data: dict[str, Path]) -> list[str]:
    return [
        f"data.root={data['folder']}",
        "data.format=shards",
        f"data.shards={data['shards']}",
        f"data.shard_cache={data['cache']}",
    ]


def _train(run_dir: Path, steps: int, *extra: str) -> Path:
    train(compose_config([*RUN, f"trainer.max_steps={steps}", *extra], run_dir))
    return run_dir / "checkpoints" / "last.ckpt"


@pytest.mark.slow
def test_a_run_resumed_mid_epoch_from_shards_ends_bit_identical(sharded, tmp_path):
    whole = _train(tmp_path / "whole", N, *_shard_args(sharded))
    _train(tmp_path / "resumed", 3, *_shard_args(sharded), "data.num_workers=2")  # stopped mid-epoch 0
    resumed = _train(tmp_path / "resumed", N, *_shard_args(sharded))
    assert _differences(whole, resumed) == []
    # and the same training as from the folder the shards were written from
    folder = _train(tmp_path / "folder", N, f"data.root={sharded['folder']}")
    assert _differences(whole, folder) == []


@pytest.mark.slow
def test_two_ddp_processes_read_disjoint_samples_that_cover_each_epoch(sharded, tmp_path):
    seen = tmp_path / "seen"
    ddp = [
        *RUN,
        *_shard_args(sharded),
        "strategy=ddp",
        "strategy.accelerator=cpu",
        "strategy.devices=2",
        "callbacks.ddp_consistency=null",
        "trainer.max_steps=4",  # two epochs: 8 samples, 2 ranks, batches of 2
        "+callbacks.record._target_=tests.integration.shard_callbacks.RecordIndices",
        f"+callbacks.record.folder={seen}",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    env = {**os.environ, "WANDB_MODE": "disabled", "DMFN_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "dmfn_lightning.train", *ddp], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [
        [[int(i) for i in line.split()] for line in (seen / f"rank{r}.txt").read_text().splitlines()] for r in (0, 1)
    ]
    assert [len(batches) for batches in ranks] == [4, 4]  # two batches an epoch on each rank
    for epoch in (0, 1):
        first, second = ([i for batch in batches[2 * epoch : 2 * epoch + 2] for i in batch] for batches in ranks)
        assert not set(first) & set(second), (epoch, first, second)
        assert sorted(first + second) == list(range(8)), (epoch, first, second)
    assert ranks[0][:2] != ranks[0][2:]  # a new order each epoch


def test_a_damaged_shard_stops_training_with_one_error_line(sharded, tmp_path):
    shards = tmp_path / "shards"
    write(sharded["folder"], shards, max_bytes=10**9)
    damaged = shards / "train" / "shard-000001.tar"
    damaged.write_bytes(damaged.read_bytes()[:-1] + b"\x01")
    args = [
        *RUN,
        f"data.root={sharded['folder']}",
        "data.format=shards",
        f"data.shards={shards}",
        f"data.shard_cache={tmp_path / 'cache'}",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    done = run_module("train", args, cwd=REPO, timeout=180)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr[-2000:]
    assert errors[0].startswith(
        f"error: data.train: {damaged}: shard is corrupt (its sha256 differs from index.json; copy it again, or "
        "write the shards again with python -m dmfn_lightning.data.shards write)"
    ), errors[0]
    assert "Traceback" not in done.stderr
    assert "DMFN_DATA" not in errors[0]  # the image-folder layout hint is not for shards
