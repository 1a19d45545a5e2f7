"""One training per run folder: a live holder refuses a second one by name; a killed holder leaves the folder free."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dmfn_lightning.core.errors import RunFolderBusyError
from dmfn_lightning.core.run_lock import LOCK_NAME, RunLock, takes_run_lock
from tests.cli import run_module

HOLD = "import sys, time; from dmfn_lightning.core.run_lock import RunLock; RunLock(sys.argv[1]).acquire(); "
HOLD += "print('held', flush=True); time.sleep(600)"


def _holder(run_dir: Path) -> subprocess.Popen:
    """Another process holding ``run_dir``'s lock, as a running training does."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)


def _train_process(run_dir: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "disabled", "DMFN_OFFLINE": "1", "HYDRA_FULL_ERROR": "0"}
    command = [sys.executable, "-m", "dmfn_lightning.train", "+experiment=demo", "+debug=fast", *args]
    out = open(run_dir.parent / f"{run_dir.name}.holder.log", "w")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen([*command, f"hydra.run.dir={run_dir}"], env=env, stdout=out, stderr=out)


def test_a_held_folder_is_refused_naming_the_holder_and_free_once_the_holder_is_killed(tmp_path):
    holder = _holder(tmp_path)
    try:
        with pytest.raises(RunFolderBusyError) as refused:
            RunLock(tmp_path).acquire()
        message = str(refused.value)
        assert f"pid {holder.pid} on host {socket.gethostname()} since " in message
        assert message.endswith("wait for it or choose another hydra.run.dir")
    finally:
        _kill(holder)
    assert (tmp_path / LOCK_NAME).is_file()  # SIGKILL leaves the file behind; the lock went with the process
    with RunLock(tmp_path), pytest.raises(RunFolderBusyError, match=f"pid {os.getpid()} "):
        RunLock(tmp_path).acquire()  # one process, one holder too
    with RunLock(tmp_path):  # released on exit
        pass


def test_only_the_launching_process_of_a_ddp_run_takes_the_lock():
    assert takes_run_lock({})
    assert takes_run_lock({"LOCAL_RANK": "0", "SLURM_PROCID": "0", "NODE_RANK": "0"})
    for name in ("LOCAL_RANK", "RANK", "SLURM_PROCID", "NODE_RANK", "GROUP_RANK"):
        assert not takes_run_lock({name: "1"}), name


@pytest.mark.slow
def test_a_second_training_of_a_running_folder_fails_in_one_line_and_a_killed_one_leaves_it_free(tmp_path):
    run_dir = tmp_path / "run"
    # The first training: long enough to still run while the second starts (it saves last.ckpt every iteration).
    first = _train_process(run_dir, "trainer.max_steps=100000", "checkpoint.every_n_steps=1")
    try:
        deadline = time.monotonic() + 240
        while not (run_dir / "checkpoints" / "last.ckpt").is_file():
            assert first.poll() is None and time.monotonic() < deadline, (run_dir.parent / "run.holder.log").read_text()
            time.sleep(0.2)
        second = run_module("train", ["+experiment=demo", "+debug=fast", f"hydra.run.dir={run_dir}"], tmp_path)
        assert second.returncode == 2, second.stderr[-3000:]
        errors = [line for line in second.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "Traceback" not in second.stderr, second.stderr[-3000:]
        holder = f"error: {run_dir} is being trained by pid {first.pid} on host {socket.gethostname()} since "
        assert errors[0].startswith(holder), errors
        assert errors[0].endswith("; wait for it or choose another hydra.run.dir"), errors
        assert first.poll() is None  # the first one was not disturbed
    finally:
        _kill(first)  # no handler runs, nothing is cleaned up: as on a lost node
    resumed = run_module("train", ["+experiment=demo", "+debug=fast", f"hydra.run.dir={run_dir}"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
