"""The Trainer of a DMFN run: Lightning's, with ``max_steps`` counted in the paper's iterations, Lightning's end
message in iterations too, and the CSV log told whether the run resumes."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytorch_lightning as pl

from dmfn_lightning.core.iterations import global_steps_of, iterations_of
from dmfn_lightning.training.loggers import ContinuingCSVLogger

# The loggers behind Lightning's rank_zero_info (whichever of the two packages was imported last provides it).
LIGHTNING_LOGGERS = ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero")


class IterationLogFilter(logging.Filter):
    """Rewrites Lightning's "`Trainer.fit` stopped: `max_steps=18` reached." (its optimizer steps, two per
    iteration) into "`Trainer.fit` stopped after 9 iterations (trainer.max_steps=9).": the count the user set."""

    STOPPED = re.compile(r"`Trainer\.fit` stopped: `max_steps=(\d+)` reached\.")

    def filter(self, record: logging.LogRecord) -> bool:
        found = self.STOPPED.fullmatch(record.getMessage())
        if found:
            iterations = iterations_of(int(found.group(1)))
            record.msg = f"`Trainer.fit` stopped after {iterations} iterations (trainer.max_steps={iterations})."
            record.args = ()
        return True


def install_iteration_log_filter() -> None:
    """Put :class:`IterationLogFilter` on Lightning's rank-zero loggers, once per process."""
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, IterationLogFilter) for f in logger.filters):
            logger.addFilter(IterationLogFilter())


class IterationTrainer(pl.Trainer):
    """``pytorch_lightning.Trainer`` whose ``max_steps`` argument counts the paper's iterations.

    Lightning counts every ``optimizer.step()`` in ``global_step``, two per DMFN iteration (G, then D); the config
    speaks in iterations, and this is where they are converted (``trainer.max_steps`` is Lightning's count). Every
    such trainer also installs :class:`IterationLogFilter`, and ``fit`` tells a
    :class:`~dmfn_lightning.training.loggers.ContinuingCSVLogger` whether the run resumes (``ckpt_path`` given) or
    starts fresh, before anything is logged.
    """

    def __init__(self, max_steps: int = -1, **kwargs: Any) -> None:
        install_iteration_log_filter()
        super().__init__(max_steps=global_steps_of(max_steps) if max_steps > 0 else max_steps, **kwargs)

    def fit(
        self,
        model: pl.LightningModule,
        train_dataloaders: Any = None,
        val_dataloaders: Any = None,
        datamodule: pl.LightningDataModule | None = None,
        ckpt_path: Any = None,
        weights_only: bool | None = None,
    ) -> None:
        for logger in self.loggers:
            if isinstance(logger, ContinuingCSVLogger):
                logger.begin_fit(resuming=ckpt_path is not None)
        super().fit(
            model,
            train_dataloaders=train_dataloaders,
            val_dataloaders=val_dataloaders,
            datamodule=datamodule,
            ckpt_path=ckpt_path,
            weights_only=weights_only,
        )
