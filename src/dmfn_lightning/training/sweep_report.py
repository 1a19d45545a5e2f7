"""A failed job does not stop a sweep (``-m``): it is reported at once, the other jobs run, and a summary ends it.

Hydra callback (registered in conf/train.yaml, ``hydra.callbacks.sweep_report``). In a sweep, the training
command lets a job's error reach Hydra, which records it in the job's ``JobReturn``; :meth:`SweepReport.on_job_end`
then prints one ``error:`` line naming the job number, its overrides and the error (a full traceback for an error
that is not the user's, or with ``HYDRA_FULL_ERROR=1``), writes it to ``<job dir>/job_error.json``, and marks the
job as handled, so that Hydra's sweeper goes on to the next job instead of re-raising the first failure at the end
(which would also skip ``on_multirun_end``). :meth:`SweepReport.on_multirun_end` lists the failed jobs and exits
with status 2 when every failure was a user error, 1 otherwise.

The record is a file because with a remote launcher (``hydra/launcher=slurm``) the jobs run in other processes than
the one that ends the sweep; their folders are on the shared file system the sweep folder is on.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from dmfn_lightning.core.errors import full_error_requested, user_error_cause
from dmfn_lightning.core.files import atomic_write_bytes

__all__ = ["ERROR_FILE", "SweepReport"]

ERROR_FILE = "job_error.json"


def _multirun(config: DictConfig) -> bool:
    return OmegaConf.select(config, "hydra.mode") == RunMode.MULTIRUN


def _job_dir(config: DictConfig) -> Path | None:
    output_dir = OmegaConf.select(config, "hydra.runtime.output_dir")
    return Path(str(output_dir)) if output_dir else None


class SweepReport(Callback):
    """Report each failed sweep job in one line, keep sweeping, and end with a summary and a non-zero status."""

    def __init__(self) -> None:
        self._failures: dict[int, dict[str, Any]] = {}
        self._ended = 0  # jobs this process ran (all of them with the local launcher)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._failures, self._ended = {}, 0
        # A sweep rerun in the same folder reports only its own failures.
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if sweep_dir.is_dir():
            for stale in sweep_dir.rglob(ERROR_FILE):
                stale.unlink(missing_ok=True)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        job_dir = _job_dir(config)
        if _multirun(config) and job_dir is not None:
            (job_dir / ERROR_FILE).unlink(missing_ok=True)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if not _multirun(config):
            return
        self._ended += 1
        if job_return.status != JobStatus.FAILED:
            return
        exc = job_return._return_value
        cause = user_error_cause(exc) if isinstance(exc, BaseException) else None
        if isinstance(exc, BaseException) and (cause is None or full_error_requested()):
            sys.stderr.write("".join(traceback.format_exception(exc)))
        record = {
            "job": int(OmegaConf.select(config, "hydra.job.num", default=-1)),
            "overrides": " ".join(job_return.overrides or []),
            "error": str(cause) if cause is not None else f"{type(exc).__name__}: {exc}",
            "user_error": cause is not None,
        }
        print(f"error: sweep job {record['job']} ({record['overrides']}) failed: {record['error']}", file=sys.stderr)
        self._failures[record["job"]] = record
        job_dir = _job_dir(config)
        if job_dir is not None:
            try:
                atomic_write_bytes(job_dir / ERROR_FILE, (json.dumps(record, indent=1) + "\n").encode())
            except OSError as write_error:
                print(
                    f"warning: could not record the failure in {job_dir / ERROR_FILE}: {write_error}", file=sys.stderr
                )
        # Handled: Hydra's sweeper would stop at the first failed job and never call on_multirun_end.
        job_return.status = JobStatus.COMPLETED
        job_return.return_value = None

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        failures = dict(self._failures)
        sweep_dir = Path(str(config.hydra.sweep.dir))
        for path in sweep_dir.rglob(ERROR_FILE) if sweep_dir.is_dir() else ():
            try:
                record = json.loads(path.read_text())
                failures.setdefault(int(record["job"]), record)
            except (OSError, ValueError, KeyError, TypeError):
                continue
        if not failures:
            return
        # With a remote launcher the jobs ran elsewhere: the number of jobs is not known here.
        of = self._ended if self._ended >= len(failures) else None
        count = f"{len(failures)} of {of} sweep jobs" if of else f"{len(failures)} sweep job(s)"
        lines = [f"error: {count} failed; the other jobs ran (their outputs are under {sweep_dir}):"]
        lines += [f"  job {job} ({r['overrides']}): {r['error']}" for job, r in sorted(failures.items())]
        print("\n".join(lines), file=sys.stderr)
        sys.exit(2 if all(r.get("user_error") for r in failures.values()) else 1)
