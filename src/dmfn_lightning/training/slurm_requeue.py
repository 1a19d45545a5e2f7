"""SLURM's warning before a time limit or a preemption: a fresh ``last.ckpt``, then a requeue. One owner of the signal.

SLURM sends the signal of ``--signal=<SIG>@<seconds>`` that long before it kills a job. With the submitit launcher
(conf/hydra/launcher/slurm.yaml) that is ``USR2`` (``$SUBMITIT_PREEMPT_SIGNAL`` chooses another), ``signal_delay_s``
seconds ahead. Left alone, submitit's handler would requeue the job at once without saving anything, and Lightning's
``SLURMEnvironment`` listens on ``USR1`` only, saving an ``hpc_ckpt_*.ckpt`` mid-step that ``ckpt_path=last`` never
reads. While a training runs under SLURM (``$SLURM_JOB_ID`` set), :class:`SlurmRequeue` owns that signal instead:

- during ``fit`` it hands the signal to Lightning's SIGTERM handling, which stops training at the end of the current
  iteration; ``training.callbacks.LastCheckpoint`` saves ``last.ckpt`` there, as for any SIGTERM, and the training
  command exits with status 143;
- before or after ``fit`` (nothing new to save) it stops the command at once;
- once the command has stopped, global rank 0 runs ``scontrol requeue <job id>``. The requeued job reruns the same
  command, which resumes from ``last.ckpt`` (``ckpt_path=last``).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from collections.abc import Mapping
from types import FrameType, TracebackType

from dmfn_lightning.core.errors import ConfigError

__all__ = ["REQUEUE_SIGNALS", "SlurmRequeue", "requeue_signal", "slurm_job_id"]

log = logging.getLogger(__name__)

# SIGTERM and SIGINT also come from scancel and Ctrl+C, which must not requeue; the user signals mean only this.
REQUEUE_SIGNALS = ("USR1", "USR2")
DEFAULT_SIGNAL = "USR2"  # submitit's default (SUBMITIT_PREEMPT_SIGNAL): it writes --signal=USR2@<signal_delay_s>


def requeue_signal(env: Mapping[str, str] | None = None) -> signal.Signals:
    """The signal SLURM sends before the end: ``$SUBMITIT_PREEMPT_SIGNAL`` (the name submitit gives sbatch), else
    ``USR2``."""
    env = os.environ if env is None else env
    name = (env.get("SUBMITIT_PREEMPT_SIGNAL") or DEFAULT_SIGNAL).upper().removeprefix("SIG")
    if name not in REQUEUE_SIGNALS:
        raise ConfigError(
            f"SUBMITIT_PREEMPT_SIGNAL={env.get('SUBMITIT_PREEMPT_SIGNAL')!r} cannot announce a requeue; "
            f"allowed: {', '.join(REQUEUE_SIGNALS)} (TERM and INT also mean scancel and Ctrl+C)"
        )
    return signal.Signals[f"SIG{name}"]


def slurm_job_id(env: Mapping[str, str] | None = None) -> str | None:
    """The id ``scontrol requeue`` takes: ``<array job>_<task>`` for an array task, else ``$SLURM_JOB_ID``."""
    env = os.environ if env is None else env
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID") or None


class SlurmRequeue:
    """``with SlurmRequeue(): train(cfg)``: under SLURM, the requeue signal saves ``last.ckpt`` and requeues the job.

    Outside SLURM it does nothing. Every rank installs the handler (SLURM signals every task of the job); only
    global rank 0 (``$SLURM_PROCID``) asks for the requeue. The handler it replaces (submitit's) is put back on exit.
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = dict(os.environ if env is None else env)
        self.job_id = slurm_job_id(self.env)
        self.signum: signal.Signals | None = requeue_signal(self.env) if self.job_id else None
        self.received = False
        self._previous: object = None
        self._sigterm_before: object = None

    def __enter__(self) -> SlurmRequeue:
        if self.signum is not None and threading.current_thread() is not threading.main_thread():
            self.signum = None  # Python takes signal handlers in the main thread only
        if self.signum is not None:
            self._sigterm_before = signal.getsignal(signal.SIGTERM)
            self._previous = signal.signal(self.signum, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = True
        sigterm = signal.getsignal(signal.SIGTERM)
        if callable(sigterm) and sigterm is not self._sigterm_before:
            # Lightning's fit installed its SIGTERM handler: it stops after this iteration, last.ckpt is saved.
            log.warning(
                f"{signal.Signals(signum).name}: SLURM ends this job soon; saving last.ckpt after this iteration, "
                f"then requeueing job {self.job_id}"
            )
            sigterm(signal.SIGTERM, frame)
        else:
            log.warning(f"{signal.Signals(signum).name}: SLURM ends this job soon; stopping to requeue it")
            raise SystemExit(128 + signum)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.signum is None:
            return
        signal.signal(self.signum, self._previous if self._previous is not None else signal.SIG_DFL)
        # Requeue a command that stopped for the signal; one that finished anyway, or failed, has nothing to resume.
        if self.received and isinstance(exc, SystemExit) and self.env.get("SLURM_PROCID", "0") in ("", "0"):
            self.requeue()

    def requeue(self) -> bool:
        """``scontrol requeue <job id>``; a failure is logged (rerun the same command to resume), not raised."""
        try:
            done = subprocess.run(["scontrol", "requeue", str(self.job_id)], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.error(f"could not requeue SLURM job {self.job_id} ({exc}); resubmit it: it resumes from last.ckpt")
            return False
        if done.returncode != 0:
            log.error(
                f"scontrol requeue {self.job_id} failed ({done.stderr.strip() or done.returncode}); resubmit the "
                "job: it resumes from last.ckpt"
            )
            return False
        log.warning(f"Requeued SLURM job {self.job_id}: it resumes from last.ckpt")
        return True
