"""The process-wide random generators (torch, CUDA, NumPy, Python) as part of the checkpoint.

The training data do not use them (each sample's crop and hole come from a generator seeded by (seed, epoch,
index), :mod:`dmfn_lightning.data.sampling`), and neither does the DMFN step; they are saved so that code added
later (a dropout layer, a random augmentation, an ablation's noise) resumes exactly as well. Lightning writes
:meth:`RandomState.state_dict` into ``last.ckpt`` and hands it back on resume; the states are applied at the first
training batch of the resumed run, after Lightning has built its data iterators.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

__all__ = ["RandomState", "capture", "restore"]


def capture() -> dict[str, Any]:
    """The states of torch's CPU generator, every CUDA device's generator, NumPy's and Python's global ones."""
    # Tensors, lists and numbers only: checkpoints are read with torch.load(weights_only=True).
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    version, python_state, python_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [str(kind), torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(gauss)],
        "python": [int(version), list(python_state), python_gauss],
    }


def restore(state: dict[str, Any]) -> None:
    """Set the generators to ``state`` (from :func:`capture`); CUDA states only when this machine has CUDA."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    version, python_state, python_gauss = state["python"]
    random.setstate((version, tuple(python_state), python_gauss))


class RandomState(pl.Callback):
    """Saves the global random states with every checkpoint and restores them when a run resumes."""

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return capture()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, idx: int) -> None:
        if self._pending is not None:
            restore(self._pending)
            self._pending = None
