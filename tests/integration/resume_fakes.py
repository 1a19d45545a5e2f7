"""A callback for the kill-and-resume test: it slows a run down after a given iteration, so the test can kill it
between two checkpoints without racing it."""

from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl


class SlowAfter(pl.Callback):
    def __init__(self, iteration: int, seconds: float) -> None:
        self.iteration, self.seconds = iteration, seconds

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step // 2 > self.iteration:
            time.sleep(self.seconds)
