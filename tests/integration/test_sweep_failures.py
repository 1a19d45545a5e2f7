"""A failed sweep job is reported in one line and the sweep goes on; a summary and a non-zero status end it."""

from __future__ import annotations

import json

import pytest
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import RunMode
from omegaconf import OmegaConf

from dmfn_lightning.core.errors import ConfigError
from dmfn_lightning.training.sweep_report import ERROR_FILE, SweepReport
from tests.cli import run_module


@pytest.mark.slow
def test_a_job_refusing_its_config_does_not_stop_the_sweep(tmp_path):
    out = tmp_path / "sweep"
    # job 0 is refused by validate_train_config (image sizes are multiples of 64), job 1 trains
    args = ["-m", "+experiment=demo", "+debug=fast", "data.image_size=96,64", f"hydra.sweep.dir={out}"]
    proc = run_module("train", args, tmp_path, None, 600)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert (out / "1_data.image_size=64" / "checkpoints" / "last.ckpt").is_file(), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    refusal = "invalid config: data.image_size=96; allowed: a positive multiple of 64"
    assert errors[0].startswith("error: sweep job 0 (") and "data.image_size=96)" in errors[0], errors
    assert refusal in errors[0]
    assert errors[-1].startswith("error: 1 of 2 sweep jobs failed"), errors
    summary = proc.stderr.split(errors[-1])[1].strip().splitlines()
    assert len(summary) == 1 and summary[0].startswith("job 0 (") and refusal in summary[0], summary
    record = json.loads((out / "0_data.image_size=96" / ERROR_FILE).read_text())
    assert record["job"] == 0 and record["user_error"] and refusal in record["error"]
    assert not (out / "1_data.image_size=64" / ERROR_FILE).exists()


def _job(tmp_path, num: int):
    config = OmegaConf.create(
        {"hydra": {"mode": RunMode.MULTIRUN, "sweep": {"dir": str(tmp_path)}, "job": {"num": num}}}
    )
    config.hydra.runtime = {"output_dir": str(tmp_path / f"job{num}")}
    (tmp_path / f"job{num}").mkdir(exist_ok=True)
    return config


def _raised(error: Exception) -> Exception:
    try:  # as Hydra's run_job catches it: with its traceback
        raise error
    except Exception as caught:
        return caught


def test_a_crashed_job_is_reported_with_its_traceback_and_the_sweep_ends_with_status_1(tmp_path, capsys):
    report = SweepReport()
    report.on_multirun_start(_job(tmp_path, 0))
    for num, error in enumerate(
        [_raised(RuntimeError("CUDA error: device-side assert")), _raised(ConfigError("bad value")), None]
    ):
        config = _job(tmp_path, num)
        report.on_job_start(config, task_function=None)
        job = JobReturn(overrides=[f"seed={num}"], status=JobStatus.FAILED if error else JobStatus.COMPLETED)
        job.return_value = error
        report.on_job_end(config, job)
        assert job.status == JobStatus.COMPLETED  # handled: Hydra's sweeper goes on to the next job
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: CUDA error" in err  # not the user's: the whole story
    assert "error: sweep job 1 (seed=1) failed: bad value" in err
    fresh = SweepReport()  # a remote launcher: the jobs' reports are the files in their folders
    with pytest.raises(SystemExit) as ended:
        fresh.on_multirun_end(_job(tmp_path, 3))
    assert ended.value.code == 1
    summary = capsys.readouterr().err.splitlines()
    assert summary[0].startswith("error: 2 sweep job(s) failed")
    assert summary[1:] == [
        "  job 0 (seed=0): RuntimeError: CUDA error: device-side assert",
        "  job 1 (seed=1): bad value",
    ]
    with pytest.raises(SystemExit):
        report.on_multirun_end(_job(tmp_path, 4))
    assert capsys.readouterr().err.startswith("error: 2 of 3 sweep jobs failed")
    report.on_multirun_start(_job(tmp_path, 5))  # a rerun of the sweep in the same folder starts with a clean slate
    report.on_multirun_end(_job(tmp_path, 6))
    assert capsys.readouterr().err == ""
