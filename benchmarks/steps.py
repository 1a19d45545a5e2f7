"""The training iteration, three ways, on a fixed batch:

* :func:`bench_lightning`: ``DMFNModule`` under a Lightning ``Trainer``, built from the config as ``train`` builds
  it (any ``trainer.precision``, ``model.channels_last``, ``model.compile``, ``model/block``);
* :func:`module_step`: the module's own ``DMFNModule.training_step``, called from a plain Python loop with
  :class:`BareTrainer` standing in for the ``Trainer`` (the module's optimizers and schedulers, ``backward`` =
  ``loss.backward()``, logging off). Same code, same math as under the Trainer, without Lightning's loop, hooks,
  optimizer wrappers and logging: the Lightning-overhead reference;
* :func:`authors_step`: the authors' released training loop, straight-line: generator forward, every generator loss
  with D(real) computed inside the G step, G step, then D(real) again and D(fake) for the D step, D step, and
  every loss read back with ``.item()`` for the log each iteration, as the release does; plain
  ``torch.optim.Adam`` (lr 2e-4, betas (0.5, 0.999)). It reuses our networks and losses (the same math, see
  tests/integration/test_released.py) but nothing of Lightning or of our step's savings. This is the "vs authors"
  reference.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import torch

from benchmarks.common import (
    Plan,
    Sizes,
    autocast,
    compose_train_config,
    enable_tf32,
    fixed_batch,
    flops_of,
    peak_rss_mib,
    precision_label,
    tf32_flags,
    train_overrides,
)
from benchmarks.probe import Phases


class BareTrainer:
    """The few ``Trainer`` attributes that ``DMFNModule.training_step`` reads, and nothing else.

    Attached as the module's trainer, it lets the module's own step run outside Lightning's loop: ``optimizers()``
    returns the bare torch optimizers (no ``LightningOptimizer`` wrapper), ``manual_backward`` calls
    ``loss.backward()``, ``lr_schedulers()`` returns the schedulers (the step steps them itself), no iteration is a
    logging one (``should_update_logs`` is False, as on the iterations between ``trainer.log_every_n_steps``), and
    ``barebones`` makes ``LightningModule.log`` return at once, so nothing is logged. There is no precision plugin:
    run the step inside :func:`benchmarks.common.autocast` for bf16.
    """

    barebones = True  # LightningModule.log returns straight away (with a warning, filtered in module_step)
    global_step = 0

    def __init__(self, optimizers: list, schedulers: list) -> None:
        self.optimizers = list(optimizers)
        self.lr_scheduler_configs = [SimpleNamespace(scheduler=s) for s in schedulers]
        self.strategy = SimpleNamespace(_lightning_optimizers=self.optimizers, backward=self._backward)
        self._logger_connector = SimpleNamespace(should_update_logs=False)

    @staticmethod
    def _backward(loss: torch.Tensor, optimizer, *args, **kwargs) -> None:
        loss.backward(*args, **kwargs)


def attach_bare_trainer(module) -> BareTrainer:
    """Build ``module``'s optimizers and schedulers (``configure_optimizers``) and attach a :class:`BareTrainer`."""
    configured = module.configure_optimizers()
    optimizers, scheds = configured if isinstance(configured, tuple) else (configured, [])
    schedulers = [s["scheduler"] if isinstance(s, dict) else s for s in scheds]
    host = BareTrainer(optimizers, schedulers)
    module.trainer = host
    return host


def module_step(module, batch: dict[str, torch.Tensor], opt_g=None, opt_d=None, ctx: Callable | None = None) -> None:
    """One iteration: ``module.training_step`` itself, on a module with a :class:`BareTrainer` attached (it steps
    the module's own optimizers and schedulers; ``opt_g``/``opt_d`` are accepted for the loop's common signature)."""
    ctx = ctx or contextlib.nullcontext
    with ctx(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*self.log\\(\\)")  # barebones: logging is off on purpose
        module.training_step(batch, 0)


def authors_step(module, batch: dict[str, torch.Tensor], opt_g, opt_d, ctx: Callable | None = None) -> dict:
    """One iteration of the authors' released loop (see the module docstring); returns its log dict of floats."""
    from dmfn_lightning.models import DMFNGenerator, crop_local

    ctx = ctx or contextlib.nullcontext
    image, mask, bbox = batch["image"], batch["mask"], batch["bbox"]
    d = module.discriminator
    # G step: D frozen; D(real) evaluated here for the relativistic loss and the feature matching
    d.requires_grad_(False)
    opt_g.zero_grad()
    with ctx():
        output = DMFNGenerator.composite(module.generator(DMFNGenerator.make_input(image, mask)), image, mask)
        target_feats = [f.detach() for f in module.vgg(image)]
        output_feats = module.vgg(output)
        fake_logits, fake_feats = d(output, crop_local(output, bbox))
        real_logits, real_feats = d(image, crop_local(image, bbox))
        g_total, g_terms = module.loss.generator_loss(
            output,
            image,
            output_feats,
            target_feats,
            fake_logits,
            real_logits.detach(),
            fake_feats,
            [f.detach() for f in real_feats],
        )
    g_total.backward()
    opt_g.step()
    # D step: D(real) again, D(fake) on the detached output
    d.requires_grad_(True)
    opt_d.zero_grad()
    with ctx():
        real_d, _ = d(image, crop_local(image, bbox))
        fake_d, _ = d(output.detach(), crop_local(output.detach(), bbox))
        d_total, d_terms = module.loss.discriminator_loss(real_d, fake_d)
    d_total.backward()
    opt_d.step()
    # the release's log_dict: every term as a Python float, every iteration (one host sync each on a GPU)
    log = {f"l_g_{k}": v.item() for k, v in g_terms.items()}
    log.update({f"l_d_{k}": v.item() for k, v in d_terms.items()})
    log["D_real"] = torch.mean(real_d.detach()).item()
    log["D_fake"] = torch.mean(fake_d.detach()).item()
    return log


# ---------------------------------------------------------------------------------------------- runners
def _describe_optimizer(optimizer) -> str:
    """e.g. ``Adam{'foreach': None, 'fused': True}``: which implementation stepped the parameters."""
    inner = getattr(optimizer, "optimizer", optimizer)  # Lightning's LightningOptimizer wraps the torch one
    flags = {k: v for k, v in inner.defaults.items() if k in ("fused", "foreach")}
    return f"{type(inner).__name__}{flags}"


def _loss_description(cfg) -> dict[str, Any]:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg.loss, resolve=True)


def bench_loop(kind: str, sizes: Sizes, device: str, plan: Plan, precision: str = "fp32") -> dict[str, Any]:
    """``kind="plain"`` (``DMFNModule.training_step`` in a plain loop, :func:`module_step`) or ``"authors"`` (the
    released loop, :func:`authors_step`); no Lightning loop either way."""
    from dmfn_lightning import train as train_mod

    tf32 = None
    if device == "cuda":
        # The authors' loop keeps PyTorch's defaults (and cuDNN autotuning, as the release sets); ours: TF32 on.
        tf32 = enable_tf32() if kind == "plain" else tf32_flags()
        torch.backends.cudnn.benchmark = True
    cfg = compose_train_config(train_overrides(sizes, device, plan, []), kind)
    torch.manual_seed(0)
    module = train_mod.build_module(cfg).to(device)
    module.train()
    schedulers: list = []
    if kind == "plain":
        # The module's own training_step; it steps its optimizers and schedulers itself.
        host = attach_bare_trainer(module)
        opt_g, opt_d = host.optimizers
        step = module_step
    elif kind == "authors":
        opt_g = torch.optim.Adam(module.generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(module.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
        schedulers = [
            torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[50_000], gamma=0.5) for opt in (opt_g, opt_d)
        ]
        step = authors_step
    else:
        raise ValueError(f"unknown loop {kind!r}")
    batch = fixed_batch(sizes.image_size, sizes.batch, device)

    def ctx():
        return autocast(device, precision)

    phases = Phases(plan, device)
    try:
        for i in range(plan.total):
            phases.before(i)
            step(module, batch, opt_g, opt_d, ctx)
            for scheduler in schedulers:
                scheduler.step()
            phases.after(i)
        phases.finish()
    except BaseException:
        phases.abort()
        raise
    out = phases.results()
    out.update(
        {
            "loop": kind,
            "images": sizes.batch,
            "precision": precision,
            "precision_label": precision_label(precision, device, tf32),
            "tf32": tf32,
            "loss": _loss_description(cfg),
            "optimizer": _describe_optimizer(opt_g),
            "peak_rss_mib": peak_rss_mib(),
        }
    )
    if kind == "plain":
        # The work of one iteration, counted once (the FLOP counter runs one more step outside the timing).
        out["flops"] = flops_of(lambda: step(module, batch, opt_g, opt_d, ctx))
    return out


def bench_lightning(sizes: Sizes, device: str, plan: Plan, extra: list[str], precision: str) -> dict[str, Any]:
    """``DMFNModule`` under a ``Trainer`` on a fixed batch; ``extra`` are Hydra overrides of the variant."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, Dataset

    from benchmarks.host_syncs import recording_logger
    from dmfn_lightning import train as train_mod

    tf32 = enable_tf32() if device == "cuda" else None
    cfg = compose_train_config(train_overrides(sizes, device, plan, extra), "lightning")
    pl.seed_everything(0)
    module = train_mod.build_module(cfg)
    fixed = fixed_batch(sizes.image_size, sizes.batch, device)
    phases = Phases(plan, device)
    recorder = phases.recorder

    class Repeat(Dataset):  # the same batch every step: the data pipeline is benchmarked separately
        def __len__(self) -> int:
            return plan.total

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return fixed

    step = module.training_step

    def training_step(*args, **kwargs):
        recorder.in_step = True  # syncs inside training_step are told apart from Lightning's own
        try:
            return step(*args, **kwargs)
        finally:
            recorder.in_step = False

    module.training_step = training_step

    class PhaseCallback(pl.Callback):
        def __init__(self) -> None:
            self.index = 0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            phases.before(self.index)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            phases.after(self.index)
            self.index += 1

        def on_train_end(self, trainer, pl_module) -> None:
            phases.finish()

        def on_exception(self, trainer, pl_module, exception) -> None:
            phases.abort()

    # A logger that writes nothing marks the one logging iteration of the sync-count window (Plan.logged_iteration)
    loggers = [recording_logger(recorder)] if plan.sync_iters else []
    trainer = train_mod.build_trainer(cfg, cfg_run_dir(cfg), [PhaseCallback()], loggers)
    loader = DataLoader(Repeat(), batch_size=None)
    start = time.perf_counter()
    trainer.fit(module, train_dataloaders=loader)
    out = phases.results()
    opt_g = trainer.optimizers[0]
    out.update(
        {
            "images": sizes.batch,
            "precision": precision,
            "precision_label": precision_label(precision, device, tf32),
            "tf32": tf32,
            "overrides": extra,
            "loss": _loss_description(cfg),
            "optimizer": _describe_optimizer(opt_g),
            "fit_s": time.perf_counter() - start,
            "peak_rss_mib": peak_rss_mib(),
        }
    )
    return out


def cfg_run_dir(cfg):
    from pathlib import Path

    return Path(cfg.hydra.run.dir)
