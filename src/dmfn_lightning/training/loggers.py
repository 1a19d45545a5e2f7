"""Experiment loggers. W&B never prompts and never hangs without network."""

from __future__ import annotations

import os
from pathlib import Path

from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities import rank_zero_info


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
