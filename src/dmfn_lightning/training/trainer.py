"""The Trainer of a DMFN run: Lightning's, with ``max_steps`` counted in the paper's iterations."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

from dmfn_lightning.training.iterations import global_steps_of


class IterationTrainer(pl.Trainer):
    """``pytorch_lightning.Trainer`` whose ``max_steps`` argument counts the paper's iterations.

    Lightning counts every ``optimizer.step()`` in ``global_step``, two per DMFN iteration (G, then D); the config
    speaks in iterations, and this is where they are converted (``trainer.max_steps`` is Lightning's count).
    """

    def __init__(self, max_steps: int = -1, **kwargs: Any) -> None:
        super().__init__(max_steps=global_steps_of(max_steps) if max_steps > 0 else max_steps, **kwargs)
