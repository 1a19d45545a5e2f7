"""SLURM's warning signal before the time limit: a fresh last.ckpt, then ``scontrol requeue`` (no cluster needed).

A tiny training runs as a subprocess with the SLURM environment of a one-task job; ``scontrol`` is a fake on PATH
that records its arguments. The signal is submitit's (``--signal=USR2@<signal_delay_s>``, conf/hydra/launcher).
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

from dmfn_lightning.core.errors import ConfigError
from dmfn_lightning.training.slurm_requeue import requeue_signal, slurm_job_id

JOB_ID = "4242"
SLURM_ENV = {
    "SLURM_JOB_ID": JOB_ID,
    "SLURM_JOB_NAME": "dmfn",
    "SLURM_NTASKS": "1",
    "SLURM_NTASKS_PER_NODE": "1",
    "SLURM_JOB_NUM_NODES": "1",
    "SLURM_NODELIST": "localhost",
    "SLURM_PROCID": "0",
    "SLURM_LOCALID": "0",
    "SLURM_NODEID": "0",
}
# What submitit's job process does before it runs the task: its own USR2 handler requeues at once, saving nothing.
SUBMITIT = """
import runpy, signal, subprocess, sys
def checkpoint_and_try_requeue(signum, frame):
    subprocess.check_call(["scontrol", "requeue", "4242"])
    sys.exit(-1)
signal.signal(signal.SIGUSR2, checkpoint_and_try_requeue)
signal.signal(signal.SIGTERM, lambda signum, frame: None)  # submitit's bypass
sys.argv = ["dmfn_lightning.train", *sys.argv[1:]]
runpy.run_module("dmfn_lightning.train", run_name="__main__")
"""


def _fake_scontrol(folder: Path) -> Path:
    folder.mkdir()
    script = folder / "scontrol"
    script.write_text('#!/bin/sh\necho "$@" >> "$FAKE_SCONTROL_LOG"\n')
    script.chmod(0o755)
    return folder / "calls.txt"


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["srun", "submitit"])
def test_the_requeue_signal_saves_last_ckpt_and_requeues_the_job(launcher, tmp_path):
    calls = _fake_scontrol(tmp_path / "bin")
    run_dir = tmp_path / "run"
    env = {**os.environ, **SLURM_ENV, "WANDB_MODE": "disabled", "DMFN_OFFLINE": "1", "HYDRA_FULL_ERROR": "0"}
    env |= {"PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}", "FAKE_SCONTROL_LOG": str(calls)}
    env.pop("SUBMITIT_PREEMPT_SIGNAL", None)
    # Far from its end, no periodic last.ckpt, no validation: only the signal can make it save.
    args = ["+experiment=demo", "+debug=fast", "trainer.max_steps=100000", "checkpoint.every_n_steps=100000"]
    args += ["trainer.val_check_interval=100000", f"hydra.run.dir={run_dir}"]
    start = (
        [sys.executable, "-c", SUBMITIT] if launcher == "submitit" else [sys.executable, "-m", "dmfn_lightning.train"]
    )
    log = tmp_path / "train.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([*start, *args], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 300
            # Lightning says so when fit installs its signal handlers (SLURM detected from the environment).
            while "SLURM auto-requeueing enabled" not in log.read_text():
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
            time.sleep(1)
            proc.send_signal(signal.SIGUSR2)
            returncode = proc.wait(240)
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    assert returncode == 128 + signal.SIGTERM, text[-3000:]  # stopped, not finished: schedulers see a failure
    last = run_dir / "checkpoints" / "last.ckpt"
    assert last.is_file(), text[-3000:]
    state = torch.load(last, map_location="cpu", weights_only=False)
    assert 2 <= state["global_step"] < 200000  # at least one whole iteration, saved between iterations
    assert not (run_dir / "results.json").exists()
    assert calls.read_text().splitlines() == [f"requeue {JOB_ID}"], text[-3000:]  # once: ours, after the save


def test_the_signal_and_job_id_come_from_the_environment():
    assert requeue_signal({}) == signal.SIGUSR2
    assert requeue_signal({"SUBMITIT_PREEMPT_SIGNAL": "USR1"}) == signal.SIGUSR1
    with pytest.raises(ConfigError, match="SUBMITIT_PREEMPT_SIGNAL='TERM'"):
        requeue_signal({"SUBMITIT_PREEMPT_SIGNAL": "TERM"})  # scancel sends it too
    assert slurm_job_id({"SLURM_JOB_ID": "7"}) == "7"
    assert slurm_job_id({"SLURM_JOB_ID": "7", "SLURM_ARRAY_JOB_ID": "5", "SLURM_ARRAY_TASK_ID": "2"}) == "5_2"
    assert slurm_job_id({}) is None
