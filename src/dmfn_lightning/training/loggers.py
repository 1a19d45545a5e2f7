"""Experiment loggers. W&B never prompts and never hangs without network; the CSV log continues across resumes."""

from __future__ import annotations

import csv
import itertools
import os
from pathlib import Path

from pytorch_lightning.loggers import CSVLogger, WandbLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment
from pytorch_lightning.utilities import rank_zero_info, rank_zero_only


def _wandb_logged_in() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


def _hydra_job() -> tuple[str | None, str | None]:
    """(group, run name) for multirun jobs: the sweep directory's name and the job's overrides."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
    except (ImportError, ValueError):
        return None, None
    if hc.mode != RunMode.MULTIRUN:
        return None, None
    group = Path(hc.sweep.dir).name
    overrides = hc.job.override_dirname or f"job{hc.job.num}"
    return f"{hc.job.name}-{group}", overrides


class IterationWandbLogger(WandbLogger):
    """``WandbLogger`` whose charts all use the paper's ``iteration`` as their x axis.

    Lightning declares ``trainer/global_step`` as W&B's step metric; with manual optimization that counts both
    optimizer steps of an iteration. Here ``iteration`` is declared instead (``define_metric``) and added to every
    logged row that lacks it: Lightning passes its step for training and validation metrics, which counts batches,
    i.e. iterations, and :class:`dmfn_lightning.training.callbacks.ImagePanels` passes the iteration for its images.
    """

    STEP_METRIC = "iteration"

    @property
    def experiment(self):
        experiment = super().experiment
        if not getattr(self, "_iteration_axis_defined", False) and hasattr(experiment, "define_metric"):
            experiment.define_metric(self.STEP_METRIC)
            experiment.define_metric("*", step_metric=self.STEP_METRIC, step_sync=True)
            self._iteration_axis_defined = True
        return experiment

    def log_metrics(self, metrics, step: int | None = None) -> None:
        if step is not None and self.STEP_METRIC not in metrics:
            metrics = {**metrics, self.STEP_METRIC: step}
        super().log_metrics(metrics, step)


class _ContinuingWriter(ExperimentWriter):
    """Lightning's CSV writer, except that an existing ``metrics.csv`` is continued instead of deleted."""

    def __init__(self, log_dir: str) -> None:
        super().__init__(log_dir)
        self._replace_from_first_step = False
        if self._fs.isfile(self.metrics_file_path):  # new rows go under the file's own header
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys = list(csv.DictReader(file).fieldnames or [])

    def _check_log_dir_exists(self) -> None:
        """Lightning deletes ``metrics.csv`` here ("Previous log files ... will be deleted"); kept instead."""

    def set_aside(self) -> Path | None:
        """Move an existing ``metrics.csv`` to ``metrics.previous-N.csv`` (the first free N); where it went."""
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return None
        aside = next(
            path.with_name(f"metrics.previous-{n}.csv")
            for n in itertools.count(1)
            if not path.with_name(f"metrics.previous-{n}.csv").exists()
        )
        path.rename(aside)
        self.metrics_keys = []
        return aside

    def replace_from_first_step(self) -> None:
        """At the next save with rows, drop the file's rows from the first step saved on (see ContinuingCSVLogger)."""
        self._replace_from_first_step = True

    def save(self) -> None:
        if self.metrics and self._replace_from_first_step:
            self._replace_from_first_step = False
            if self._fs.isfile(self.metrics_file_path):
                self._drop_rows_from(min(int(row["step"]) for row in self.metrics))
        super().save()

    def _drop_rows_from(self, step: int) -> None:
        with self._fs.open(self.metrics_file_path, "r", newline="") as file:
            reader = csv.DictReader(file)
            header, rows = list(reader.fieldnames or []), list(reader)
        kept = [row for row in rows if not row.get("step") or int(float(row["step"])) < step]
        if len(kept) == len(rows):
            return
        with self._fs.open(self.metrics_file_path, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=header)
            writer.writeheader()
            writer.writerows(kept)


class ContinuingCSVLogger(CSVLogger):
    """Lightning's ``CSVLogger`` (``<save_dir>/<name>/<version>/metrics.csv``), whose file outlives a resume.

    Lightning's logger deletes an existing ``metrics.csv`` when it starts writing: a resumed run kept only its own
    rows. This one continues the file. :class:`~dmfn_lightning.training.trainer.IterationTrainer` tells it how the
    run starts (:meth:`begin_fit`):

    - resumed: rows from the first step the resumed run logs on are dropped from the file at its first write; the
      interrupted run wrote them after the checkpoint, and the resumed run logs those steps again. Each step is
      then in the file once, as in a run that was never interrupted; every earlier row is kept.
    - fresh start (``ckpt_path=null``) in a folder that has a log: the previous file is moved to
      ``metrics.previous-N.csv`` beside it (one line says so) and the new run starts its own.

    Not told (another Trainer), it only appends: nothing already written is ever removed.
    """

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(log_dir=self.log_dir)
        return self._experiment

    @rank_zero_only
    def begin_fit(self, resuming: bool) -> None:
        """Called before ``fit`` logs anything: whether this run resumes a checkpoint or starts fresh."""
        writer = self.experiment
        if resuming:
            writer.replace_from_first_step()
            return
        aside = writer.set_aside()
        if aside is not None:
            rank_zero_info(f"Moved the CSV log of a previous run to {aside}: this run starts fresh (ckpt_path=null)")


def build_wandb_logger(
    project: str = "dmfn_lightning",
    entity: str | None = None,
    group: str | None = None,
    tags: list[str] | None = None,
    log_model: bool = False,
    save_dir: str = "outputs",
    name: str | None = None,
) -> IterationWandbLogger:
    """A ``WandbLogger`` that is online when the user is logged in (or ``WANDB_MODE`` says so) and offline
    otherwise, with a printed ``wandb sync`` hint. Multirun jobs share a group named after the sweep and are
    named by their overridden keys. Image panels come from :class:`dmfn_lightning.training.callbacks.ImagePanels`.
    ``save_dir`` is the run directory by default (``conf/logger/wandb.yaml``): the W&B files of a run live beside
    its checkpoints and config, ``<run dir>/wandb/``."""
    mode = os.environ.get("WANDB_MODE")
    if mode is None:
        mode = "online" if _wandb_logged_in() else "offline"
    # Never an interactive login prompt, never a long network wait.
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ["WANDB_MODE"] = mode
    sweep_group, job_name = _hydra_job()
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    logger = IterationWandbLogger(
        project=project,
        entity=entity,
        group=group or sweep_group,
        name=name or job_name,
        tags=list(tags or []),
        log_model=log_model,
        save_dir=save_dir,
        mode=mode,
        settings=_settings(),
    )
    if mode in ("offline", "dryrun"):
        rank_zero_info(
            f"W&B is offline (not logged in). Runs are written under {save_dir}/wandb; upload them later with "
            f"`wandb sync {save_dir}/wandb/offline-run-*`."
        )
    return logger


def _settings():
    import wandb

    # Short timeouts: without network the run must start offline at once rather than wait.
    return wandb.Settings(init_timeout=30, silent=True)
