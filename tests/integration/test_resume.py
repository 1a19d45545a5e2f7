"""A run stopped after k iterations and resumed ends bit-identical to the run that was never stopped.

Tiny runs (64 px, one block, 8 training samples in batches of 2: four iterations per epoch, validation every two
iterations). Every tensor of the final checkpoint is compared: generator, discriminator with its BatchNorm
statistics, the EMA copy, both optimizers and the schedulers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dmfn_lightning.train import compose_config, train
from tests.training.tiny_runs import differences

REPO = Path(__file__).resolve().parents[2]
N = 7
RUN = [
    "+experiment=demo",
    "+debug=fast",
    "data.train_length=8",
    "trainer.val_check_interval=2",
    "checkpoint.every_n_steps=1",
    "model.ema_decay=0.9",
]


def _train(run_dir: Path, steps: int, *extra: str) -> Path:
    train(compose_config([*RUN, f"trainer.max_steps={steps}", *extra], run_dir))
    return run_dir / "checkpoints" / "last.ckpt"


def _differences(a: Path, b: Path) -> list[str]:
    first, second = (torch.load(p, map_location="cpu", weights_only=True) for p in (a, b))
    assert first["global_step"] == second["global_step"] == 2 * N

    compared = ("state_dict", "optimizer_states", "lr_schedulers")
    found = [d for key in compared for d in differences(first[key], second[key], key)]
    assert any(k.startswith("generator_ema") for k in first["state_dict"]), "the EMA copy is not in the checkpoint"
    return found


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("whole"), N)


@pytest.mark.slow
@pytest.mark.parametrize(
    "k",
    [3, 4, 2],
    ids=["mid-epoch", "at-an-epoch-end", "right-after-a-validation"],
)
def test_a_resumed_run_ends_bit_identical(uninterrupted, tmp_path, k):
    _train(tmp_path, k)
    resumed = _train(tmp_path, N)
    assert _differences(uninterrupted, resumed) == []


@pytest.mark.slow
def test_resuming_with_data_loader_workers_is_exact(uninterrupted, tmp_path):
    _train(tmp_path, 3, "data.num_workers=2")
    resumed = _train(tmp_path, N, "data.num_workers=2")
    assert _differences(uninterrupted, resumed) == []


@pytest.mark.slow
def test_a_run_killed_between_checkpoints_resumes_exactly(uninterrupted, tmp_path):
    """SIGKILL after iteration 5 (checkpoints every 2 iterations: the last one holds 4), then the command again."""
    slow = ["+callbacks.slow._target_=tests.integration.resume_fakes.SlowAfter", "+callbacks.slow.iteration=4"]
    overrides = [*RUN, "checkpoint.every_n_steps=2", f"hydra.run.dir={tmp_path}", f"trainer.max_steps={N}"]
    env = {**os.environ, "WANDB_MODE": "disabled", "DMFN_OFFLINE": "1"}
    command = [sys.executable, "-m", "dmfn_lightning.train", *overrides, *slow, "+callbacks.slow.seconds=60"]
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = tmp_path / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if last.is_file() and torch.load(last, map_location="cpu", weights_only=True)["global_step"] >= 8:
                time.sleep(1.0)  # iteration 5 runs, then the callback holds the run before iteration 6
                break
            time.sleep(0.2)
        assert proc.poll() is None, f"the run ended before it was killed: {proc.stderr.read().decode()[-2000:]}"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 8
    resumed = _train(tmp_path, N, "checkpoint.every_n_steps=2")
    assert _differences(uninterrupted, resumed) == []


@pytest.mark.slow
def test_a_two_process_ddp_run_resumes_exactly(tmp_path):
    """Two CPU processes: each rank reads its own half of every epoch; a resume continues both halves."""
    ddp = [*RUN, "strategy=ddp", "strategy.accelerator=cpu", "strategy.devices=2", "callbacks.ddp_consistency=null"]
    env = {**os.environ, "WANDB_MODE": "disabled", "DMFN_OFFLINE": "1", "OMP_NUM_THREADS": "1"}

    def run(run_dir: Path, steps: int) -> Path:
        command = [sys.executable, "-m", "dmfn_lightning.train", *ddp, f"trainer.max_steps={steps}"]
        done = subprocess.run([*command, f"hydra.run.dir={run_dir}"], cwd=REPO, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
        return run_dir / "checkpoints" / "last.ckpt"

    whole = run(tmp_path / "whole", N)
    run(tmp_path / "resumed", 3)
    assert _differences(whole, run(tmp_path / "resumed", N)) == []
