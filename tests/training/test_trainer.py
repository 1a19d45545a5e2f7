"""training.trainer: IterationTrainer takes max_steps in the paper's iterations and gives Lightning the doubled
count, so a run of N iterations makes N generator and N discriminator steps."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from dmfn_lightning.training.trainer import IterationTrainer

QUIET = {
    "logger": False,
    "enable_checkpointing": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
    "accelerator": "cpu",
}


class _TwoOptimizers(pl.LightningModule):
    """A G step then a D step per batch, as DMFNModule does (manual optimization)."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.g = torch.nn.Linear(2, 1)
        self.d = torch.nn.Linear(2, 1)
        self.batches = 0

    def training_step(self, batch, batch_idx):
        self.batches += 1
        for optimizer, net in zip(self.optimizers(), (self.g, self.d)):
            optimizer.zero_grad()
            self.manual_backward(net(batch[0]).pow(2).mean())
            optimizer.step()

    def configure_optimizers(self):
        return torch.optim.SGD(self.g.parameters(), lr=0.1), torch.optim.SGD(self.d.parameters(), lr=0.1)


def test_max_steps_counts_iterations():
    assert IterationTrainer(max_steps=5, **QUIET).max_steps == 10
    assert IterationTrainer(max_steps=1, **QUIET).max_steps == 2
    assert IterationTrainer(**QUIET).max_steps == -1  # no limit stays no limit
    assert IterationTrainer(max_steps=-1, **QUIET).max_steps == -1


def test_a_run_of_three_iterations_makes_three_g_and_three_d_steps():
    module = _TwoOptimizers()
    trainer = IterationTrainer(max_steps=3, max_epochs=-1, **QUIET)
    trainer.fit(module, DataLoader(TensorDataset(torch.randn(10, 2)), batch_size=1))
    assert module.batches == 3 and trainer.global_step == 6
