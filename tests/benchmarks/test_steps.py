"""The benchmark's plain loop times the module's own training step, not a copy of it that could drift."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # the benchmarks package lives at the top of the checkout, not in the wheel
    sys.path.insert(0, str(REPO))

from benchmarks import steps  # noqa: E402
from benchmarks.common import SIZES, Plan, compose_train_config, fixed_batch, train_overrides  # noqa: E402
from dmfn_lightning import train as train_mod  # noqa: E402
from dmfn_lightning.module import DMFNModule  # noqa: E402

TINY = SIZES["tiny"]


def _tiny_module(plan: Plan, tag: str) -> tuple[DMFNModule, object]:
    cfg = compose_train_config(train_overrides(TINY, "cpu", plan, []), tag)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*RANDOM weights")  # the benchmark's random VGG19, on purpose
        module = train_mod.build_module(cfg)
    return module, cfg


def test_plain_loop_calls_the_module_training_step(monkeypatch):
    calls = []
    original = DMFNModule.training_step

    def spy(self, batch, batch_idx):
        calls.append(batch_idx)
        return original(self, batch, batch_idx)

    monkeypatch.setattr(DMFNModule, "training_step", spy)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*RANDOM weights")
        out = steps.bench_loop("plain", TINY, "cpu", Plan(0, 1))
    # one timed iteration, then one more under the FLOP counter
    assert len(calls) == 2 and out["step_s"]["n"] == 1 and out["flops"] > 0


def test_plain_loop_step_equals_one_iteration_under_the_trainer(tmp_path):
    """Same seed, same batch: one iteration of the benchmark's plain loop and one under Lightning's Trainer leave
    identical weights and buffers (BatchNorm statistics included, so an extra D forward would show)."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader

    plan = Plan(0, 1)
    batch = fixed_batch(TINY.image_size, TINY.batch)

    bare, _ = _tiny_module(plan, "test_bare")
    bare.train()
    steps.attach_bare_trainer(bare)
    steps.module_step(bare, batch)

    fitted, cfg = _tiny_module(plan, "test_trainer")
    trainer = train_mod.build_trainer(cfg, tmp_path, [], [])
    pl.seed_everything(0)
    trainer.fit(fitted, train_dataloaders=DataLoader([batch], batch_size=None))
    assert fitted.iteration == 1

    expected = fitted.state_dict()
    got = bare.state_dict()
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, rtol=0, atol=1e-7, msg=key)


def test_bare_trainer_logs_nothing_and_reads_no_loss_back():
    """The plain loop is the no-logging reference: no iteration is a logging one, so the step makes no host sync."""
    module, _ = _tiny_module(Plan(0, 1), "test_sync")
    host = steps.attach_bare_trainer(module)
    assert module._logging_iteration() is False
    assert module.optimizers() == host.optimizers and module.lr_schedulers() == [
        c.scheduler for c in host.lr_scheduler_configs
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.Tensor, "item", lambda self: pytest.fail("training_step read a tensor back"))
        steps.module_step(module, fixed_batch(TINY.image_size, TINY.batch))
