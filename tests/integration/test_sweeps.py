"""Sweeps (`-m`): job folders have bounded, readable names; the full overrides stay in each job's .hydra folder."""

from __future__ import annotations

import pytest
import yaml

from dmfn_lightning.core.config import MAX_JOB_DIR_NAME, _path_safe
from tests.cli import run_module

MILESTONES = "optim.scheduler.milestones=[" + ",".join(str(i * 1000) for i in range(1, 14)) + "]"


def test_a_short_override_name_is_kept_and_slashes_do_not_nest():
    assert _path_safe("model/block=rate2,loss=no_align") == "model.block=rate2,loss=no_align"


def test_a_long_override_name_is_cut_with_a_hash_of_the_whole():
    long_a = f"loss.dis_fm_weight=5.0,model.generator.upsample_init=bilinear,{MILESTONES}"
    long_b = long_a.replace("13000", "14000")  # differs only beyond the cut
    name_a, name_b = _path_safe(long_a), _path_safe(long_b)
    assert len(name_a.encode()) <= MAX_JOB_DIR_NAME and len(name_b.encode()) <= MAX_JOB_DIR_NAME
    assert name_a != name_b and name_a.startswith("loss.dis_fm_weight=5.0,model.generator.upsample_init=bilinear")
    assert _path_safe(long_a) == name_a  # the same overrides always give the same folder


@pytest.mark.slow
def test_a_sweep_with_long_overrides_runs_every_job(tmp_path):
    out = tmp_path / "sweep"
    args = ["-m", "+experiment=demo", "+debug=fast", "trainer.max_steps=1", "trainer.limit_val_batches=1"]
    args += [MILESTONES, "loss.dis_fm_weight=5.0,4.0", "model.generator.upsample_init=bilinear"]
    proc = run_module("train", [*args, f"hydra.sweep.dir={out}"], tmp_path, None, 600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(jobs) == 2 and all(len(p.name.encode()) <= MAX_JOB_DIR_NAME + 8 for p in jobs), [p.name for p in jobs]
    for job in jobs:
        assert (job / "checkpoints" / "last.ckpt").is_file()
        overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
        assert MILESTONES in overrides
