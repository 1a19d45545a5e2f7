"""A callback for the sharded DDP test: each rank appends the sample indices of its training batches to a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl


class RecordIndices(pl.Callback):
    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def on_train_batch_start(self, trainer: pl.Trainer, module: Any, batch: dict, batch_idx: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / f"rank{trainer.global_rank}.txt", "a") as f:
            f.write(" ".join(str(i) for i in batch["index"].tolist()) + "\n")
