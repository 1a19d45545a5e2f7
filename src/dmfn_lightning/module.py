"""DMFNModule: the DMFN GAN as a LightningModule with manual optimization (one G step, then one D step).

The networks, the loss and the optimizers are injected (built by Hydra from ``conf/model``, ``conf/loss`` and
``conf/optim``), so the Table 2 and Table 3 ablations never touch this file.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from dmfn_lightning.core.config import config_targets, shipped_targets
from dmfn_lightning.core.errors import CheckpointError, DivergenceError
from dmfn_lightning.core.iterations import iterations_of
from dmfn_lightning.metrics import InpaintingMetrics
from dmfn_lightning.models import DMFNGenerator, GlobalLocalDiscriminator, VGG19Features, crop_local, safe_load
from dmfn_lightning.models.ema import EMA
from dmfn_lightning.models.inference import run_generator

# The frozen VGG19 (and the EMA copy) are in eval mode on purpose; Lightning's generic warning about it is noise.
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode", category=UserWarning)

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


def _build_optimizer(factory: OptimizerFactory, network: nn.Module, fuse: bool = True) -> torch.optim.Optimizer:
    """``factory(params=...)``; Adam/AdamW left at ``fused=None`` are built fused where the parameters' device
    supports it: one kernel per step instead of several per tensor, and a device-side skip of non-finite updates."""
    keywords = getattr(factory, "keywords", {}) or {}
    func = getattr(factory, "func", None)
    params = list(network.parameters())
    fusable = fuse and func in (torch.optim.Adam, torch.optim.AdamW) and keywords.get("fused") is None
    if fusable and params and all(p.is_floating_point() for p in params):
        device = params[0].device.type
        if device in ("cuda", "cpu") and all(p.device.type == device for p in params):
            return factory(params=params, fused=True)
    return factory(params=params)


def run_config_of(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config without Hydra's own node: what checkpoints store and loggers receive."""
    out: dict[str, Any] = {}
    for key in cfg:
        if key == "hydra":  # resolving it needs a live sweep (hydra.job.num) and it is not a training setting
            continue
        value = cfg[key]
        out[key] = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    return out


# The config nodes that from_config instantiates: what a checkpoint's stored config could make us call.
REBUILT_NODES = ("model", "loss", "optim")


def trusted_targets() -> frozenset[str]:
    """What a checkpoint's config may name in :data:`REBUILT_NODES`: the classes the shipped ``model``, ``loss`` and
    ``optim`` config groups name, and torch.optim's optimizers and learning-rate schedulers."""
    optimizers = {
        f"torch.optim.{name}"
        for name, value in vars(torch.optim).items()
        if isinstance(value, type) and issubclass(value, torch.optim.Optimizer)
    }
    schedulers = {
        f"torch.optim.lr_scheduler.{name}"
        for name, value in vars(torch.optim.lr_scheduler).items()
        if isinstance(value, type) and issubclass(value, torch.optim.lr_scheduler.LRScheduler)
    }
    return shipped_targets(*REBUILT_NODES) | optimizers | schedulers


def _strings(node: Any, key: str) -> list[tuple[str, str]]:
    if isinstance(node, Mapping):
        return [pair for name, child in node.items() for pair in _strings(child, f"{key}.{name}")]
    if isinstance(node, list | tuple):
        return [pair for index, child in enumerate(node) for pair in _strings(child, f"{key}[{index}]")]
    return [(key, node)] if isinstance(node, str) else []


def check_rebuilt_config(config: Mapping[str, Any], source: str | Path) -> None:
    """Refuse a checkpoint's run config that would make :meth:`DMFNModule.from_config` call anything but
    :func:`trusted_targets` (a checkpoint from the internet must never choose what gets called); raises
    :class:`CheckpointError` naming the key. Stored configs are resolved before saving, so an interpolation
    (``${...}``, which could read the environment) is refused too."""
    trusted = trusted_targets()
    for node in REBUILT_NODES:
        subtree = config.get(node) or {}
        for key, target in config_targets(subtree, node):
            if target not in trusted:
                raise CheckpointError(
                    f"{source}: refused: its run config names {key}={target!r}, which is not a class of this "
                    "package's model/loss/optim configs nor a torch.optim optimizer or scheduler; a checkpoint may "
                    "not choose what gets called (rebuild the module with DMFNModule.from_config from a config you "
                    "trust and load the checkpoint's state_dict)"
                )
        for key, text in _strings(subtree, node):
            if "${" in text:
                raise CheckpointError(
                    f"{source}: refused: its run config has an unresolved interpolation at {key}={text!r}; checkpoints "
                    "written by this package store resolved values"
                )


class DMFNModule(pl.LightningModule):
    """Generator, global-local discriminator and frozen VGG19 trained with the DMFN objective (eq. 10).

    One ``training_step`` is one iteration of the paper: a generator update on the composited output with all
    generator losses, then a discriminator update on real vs the detached fake. Lightning counts each
    ``optimizer.step()`` in ``global_step`` (two per iteration); :attr:`iteration` is the paper's count.
    """

    def __init__(
        self,
        generator: DMFNGenerator,
        discriminator: GlobalLocalDiscriminator,
        vgg: VGG19Features,
        loss: nn.Module,
        optimizer_g: OptimizerFactory,
        optimizer_d: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        ema_decay: float | None = None,
        grad_clip_norm: float | None = None,
        max_nonfinite_steps: int = 20,
        channels_last: bool = False,
        compile: bool = False,
        val_lpips: bool | str = "auto",
        run_config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        self.vgg = vgg
        self.loss = loss
        self.generator_ema = EMA(generator, ema_decay) if ema_decay else None
        self._optimizer_g, self._optimizer_d, self._scheduler = optimizer_g, optimizer_d, scheduler
        self.grad_clip_norm = grad_clip_norm
        self.max_nonfinite_steps = max_nonfinite_steps
        self.use_channels_last = channels_last
        self.use_compile = compile
        self.val_lpips = val_lpips
        self.run_config = dict(run_config or {})
        self.nonfinite_streak = 0  # host copy of _nonfinite_streak_t, refreshed on logging iterations
        self._nonfinite_streak_t: Tensor | None = None
        self.val_metrics = None  # built in setup(): metric backbones stay out of the checkpoint
        self._compiled = False

    # ------------------------------------------------------------ from config
    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | DictConfig) -> DMFNModule:
        """Build the module the config's ``model`` node names, with its loss and optimizers, from a composed run
        config (``conf/train.yaml``). The resolved config is kept as the hyperparameter ``config``, so every
        checkpoint carries what is needed to rebuild the networks (:meth:`load_from_checkpoint`)."""
        cfg = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(dict(cfg))
        module = instantiate(
            cfg.model,
            loss=instantiate(cfg.loss),
            optimizer_g=instantiate(cfg.optim.generator),
            optimizer_d=instantiate(cfg.optim.discriminator),
            scheduler=instantiate(cfg.optim.scheduler) if cfg.optim.get("scheduler") else None,
        )
        # Set afterwards: passed through instantiate, the config's own _target_ keys would be instantiated too.
        module.run_config = run_config_of(cfg)
        module.save_hyperparameters({"config": module.run_config}, logger=False)
        return module

    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls,
        checkpoint_path: str | Path,
        map_location: str | torch.device | None = "cpu",
        strict: bool = True,
        overrides: list[str] | None = None,
    ) -> DMFNModule:
        """Rebuild a trained module from a training checkpoint (``last.ckpt``, ``best-*.ckpt``), as in Lightning.

        The networks are rebuilt from the run config stored in the checkpoint (``overrides``, a Hydra-style dot
        list such as ``["model.vgg.weights=random"]``, changes it first), then every weight is loaded. A run that
        trained with random VGG19 features is rebuilt with random ones (the frozen VGG19 is not in checkpoints).
        Checkpoints are read with ``weights_only=True``: an unsafe or foreign file is refused with the reason, and
        so is a run config naming anything but this package's classes and torch.optim (:func:`check_rebuilt_config`).
        """
        checkpoint = safe_load(checkpoint_path, map_location=map_location or "cpu")
        config = (checkpoint.get("hyper_parameters") or {}).get("config") if isinstance(checkpoint, dict) else None
        if not config and isinstance(checkpoint, dict):
            config = (checkpoint.get("dmfn") or {}).get("config")
        if not config or "state_dict" not in checkpoint:
            raise CheckpointError(
                f"{checkpoint_path} is not a DMFN training checkpoint with its run config (no hyper_parameters.config "
                "and state_dict); load a generator file with dmfn_lightning.models.load_generator instead"
            )
        check_rebuilt_config(config, checkpoint_path)
        cfg = OmegaConf.create(config)
        if (checkpoint.get("dmfn") or {}).get("vgg_weights") == "random":
            cfg.model.vgg.weights = "random"
        if overrides:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
        module = cls.from_config(cfg)
        module.load_state_dict(checkpoint["state_dict"], strict=strict)
        return module

    # ------------------------------------------------------------------ setup
    @property
    def iteration(self) -> int:
        """Completed G+D iterations (the paper's step count)."""
        return iterations_of(self.global_step)

    @property
    def eval_generator(self) -> nn.Module:
        """The generator used for validation and export: the EMA copy when enabled."""
        return self.generator_ema.shadow if self.generator_ema is not None else self.generator

    def setup(self, stage: str) -> None:
        if self.val_metrics is None:
            # Held in a plain list so the metric (and any LPIPS backbone) is not a registered submodule:
            # checkpoints stay small and loadable whatever the metric's weights.
            self.val_metrics = [InpaintingMetrics(lpips=self.val_lpips).to(self.device)]
        if self.use_channels_last:
            self.to(memory_format=torch.channels_last)

    def configure_model(self) -> None:
        if self.use_compile and not self._compiled:
            self.generator.compile()
            self.discriminator.compile()
            self._compiled = True

    def configure_optimizers(self):
        # Built from each network's own parameters, never self.parameters() (VGG and EMA must not be optimised).
        # With a GradScaler (16-mixed) Lightning cannot clip the gradients of a fused optimizer, and the scaler owns
        # the optimizer's skip flag: no fusing there.
        plugin = getattr(self._trainer, "precision_plugin", None) if self._trainer is not None else None
        fuse = getattr(plugin, "scaler", None) is None
        opt_g = _build_optimizer(self._optimizer_g, self.generator, fuse)
        opt_d = _build_optimizer(self._optimizer_d, self.discriminator, fuse)
        if self._scheduler is None:
            return [opt_g, opt_d]
        schedulers = [
            {"scheduler": self._scheduler(optimizer=opt_g), "name": "lr/generator"},
            {"scheduler": self._scheduler(optimizer=opt_d), "name": "lr/discriminator"},
        ]
        return [opt_g, opt_d], schedulers

    # --------------------------------------------------------------- training
    def _prepare(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        image, mask, bbox = batch["image"], batch["mask"], batch["bbox"]
        if self.use_channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
            mask = mask.contiguous(memory_format=torch.channels_last)
        return image, mask, bbox

    def _skips_on_device(self, optimizer) -> bool:
        """Whether ``optimizer`` can skip a non-finite update from a device-side flag (no host sync).

        Fused Adam/AdamW/SGD read ``found_inf`` on the device and leave parameters, moments and step count untouched
        when it is set. With a GradScaler (``16-mixed``) the scaler owns that flag, so the guard falls back to
        checking the loss on the host.
        """
        inner = getattr(optimizer, "optimizer", optimizer)
        precision_plugin = getattr(self._trainer, "precision_plugin", None) if self._trainer is not None else None
        return bool(inner.defaults.get("fused")) and getattr(precision_plugin, "scaler", None) is None

    def _step_optimizer(self, optimizer, loss: Tensor) -> Tensor:
        """Backward + (clip) + step, skipping the update when ``loss`` is not finite. Returns ``isfinite(loss)``."""
        finite = torch.isfinite(loss)
        optimizer.zero_grad(set_to_none=True)
        on_device = self.max_nonfinite_steps and self._skips_on_device(optimizer)
        # Without a fused optimizer the skip needs the flag on the host: one sync per update.
        if self.max_nonfinite_steps and not on_device and not bool(finite):
            return finite
        self.manual_backward(loss)
        if self.grad_clip_norm:
            self.clip_gradients(optimizer, gradient_clip_val=self.grad_clip_norm, gradient_clip_algorithm="norm")
        inner = getattr(optimizer, "optimizer", optimizer)
        if on_device:
            inner.found_inf = (~finite).float()
        try:
            optimizer.step()
        finally:
            if on_device:
                del inner.found_inf
        return finite

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        image, mask, bbox = self._prepare(batch)

        # Without a VGG-reading term (loss=no_vgg) both VGG19 forwards are skipped: a quarter of a CPU iteration.
        uses_vgg = self.loss.uses_vgg_features
        with torch.no_grad():
            target_feats = self.vgg(image) if uses_vgg else []
        # D(real) is the same for the G and the D step (D is only updated after both use it): computed once,
        # with its graph kept for the D update and detached for the G losses.
        real_patch = crop_local(image, bbox)
        real_logits, real_dis_feats = self.discriminator(image, real_patch)

        # Generator step: D's parameters are frozen so the G backward does not touch them.
        self.toggle_optimizer(opt_g)
        prediction = self.generator(DMFNGenerator.make_input(image, mask))
        output = DMFNGenerator.composite(prediction, image, mask)
        output_feats = self.vgg(output) if uses_vgg else []
        fake_patch = crop_local(output, bbox)
        fake_logits, fake_dis_feats = self.discriminator(output, fake_patch)
        g_total, g_terms = self.loss.generator_loss(
            output,
            image,
            output_feats,
            target_feats,
            fake_logits,
            real_logits.detach(),
            fake_dis_feats,
            [f.detach() for f in real_dis_feats],
        )
        # The ground-truth features are not part of the backward graph: freeing them first lowers the peak.
        del target_feats, output_feats
        g_finite = self._step_optimizer(opt_g, g_total)
        self.untoggle_optimizer(opt_g)

        # Discriminator step on real vs the detached fake.
        self.toggle_optimizer(opt_d)
        fake_logits_d, _ = self.discriminator(output.detach(), fake_patch.detach())
        d_total, d_terms = self.loss.discriminator_loss(real_logits, fake_logits_d)
        d_finite = self._step_optimizer(opt_d, d_total)
        self.untoggle_optimizer(opt_d)

        self._after_iteration(g_finite, d_finite)
        self._log_training(g_terms, d_terms, real_logits, fake_logits_d)

    def _logging_iteration(self) -> bool:
        """Whether Lightning writes logged metrics after this iteration: the only iterations allowed a host sync."""
        try:
            return bool(self.trainer._logger_connector.should_update_logs)
        except (AttributeError, RuntimeError, NotImplementedError):  # not attached to a fitting Trainer
            return True

    def _after_iteration(self, g_finite: Tensor, d_finite: Tensor) -> None:
        for scheduler in self.lr_schedulers() or []:
            scheduler.step()
        if self.generator_ema is not None:
            self.generator_ema.update(self.generator)
        if not self.max_nonfinite_steps:
            return
        # The streak of non-finite iterations is counted on the device and read on logging iterations only.
        both = g_finite & d_finite
        streak = self._nonfinite_streak_t
        streak = torch.zeros((), device=both.device) if streak is None else streak.to(both.device)
        self._nonfinite_streak_t = torch.where(both, torch.zeros_like(streak), streak + 1)
        if not self._logging_iteration():
            return
        self.nonfinite_streak = int(self._nonfinite_streak_t.item())
        if self.nonfinite_streak:
            self.log("train/nonfinite_streak", float(self.nonfinite_streak), on_step=True)
        if self.nonfinite_streak >= self.max_nonfinite_steps:
            raise DivergenceError(
                f"training diverged: {self.nonfinite_streak} iterations in a row with a non-finite loss "
                f"(model.max_nonfinite_steps={self.max_nonfinite_steps}) at iteration {self.iteration}. "
                "The last good state is in checkpoints/last.ckpt; lower the learning rate or enable "
                "model.grad_clip_norm."
            )

    def _log_training(self, g_terms, d_terms, real_logits: Tensor, fake_logits: Tensor) -> None:
        logs = {f"train/g_{k}": v.detach() for k, v in g_terms.items()}
        logs.update({f"train/d_{k}": v.detach() for k, v in d_terms.items()})
        logs["train/d_real"] = real_logits.detach().mean()
        logs["train/d_fake"] = fake_logits.detach().mean()
        # Tensors go to the logger as-is: no .item() on the hot path; Lightning syncs only when it writes.
        self.log_dict(logs, on_step=True, on_epoch=False, prog_bar=False)
        self.log("iteration", float(self.iteration), on_step=True, prog_bar=False)  # already counts this one
        # No prog_bar metrics: Lightning converts them to Python numbers after every batch (a host sync per
        # iteration); the bar counts iterations and train/g_total is in the logs.

    # ------------------------------------------------------------- validation
    @torch.no_grad()
    def complete(self, batch: Mapping[str, Tensor]) -> Tensor:
        """``I_out`` (eq. 1) of the evaluation generator (the EMA copy when enabled) for a batch, through the
        inference engine that the CLI, the web app and ``evaluate`` also use."""
        image, mask, _ = self._prepare(batch)
        return run_generator(self.eval_generator, image, mask)

    def _evaluation_step(self, batch: Mapping[str, Tensor], stage: str) -> None:
        output = self.complete(batch)
        image, mask = batch["image"], batch["mask"]
        metrics = self.val_metrics[0]
        if metrics.device != output.device:
            metrics.to(output.device)
        metrics.update(output.float(), image.float(), mask.float())
        self.log(
            f"{stage}/reconstruction",
            (output - image).abs().mean(),
            on_epoch=True,
            sync_dist=True,
            batch_size=image.shape[0],
        )

    def _evaluation_epoch_end(self, stage: str) -> None:
        metrics = self.val_metrics[0]
        values = metrics.compute()  # torchmetrics reduces its states across DDP ranks
        self.log_dict({f"{stage}/{k}": v for k, v in values.items()}, prog_bar=True, sync_dist=False)
        metrics.reset()

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        self._evaluation_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._evaluation_epoch_end("val")

    def test_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        """``Trainer.test``: the Table 1 metrics (PSNR, SSIM, LPIPS when available, L1) on the test split."""
        self._evaluation_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._evaluation_epoch_end("test")

    # ------------------------------------------------------------ checkpoint
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["dmfn"] = {
            "generator": dict(self.generator.config),
            "iteration": self.iteration,
            "vgg_weights": self.vgg.weights_used,
            "config": self.run_config,
        }

    def state_dict(self, *args, **kwargs):
        # The frozen VGG19 is rebuilt from its own weights file; keeping 80 MB of it in every checkpoint is waste.
        state = super().state_dict(*args, **kwargs)
        prefix = kwargs.get("prefix", "")
        for key in [k for k in state if k.startswith(f"{prefix}vgg.")]:
            del state[key]
        return state

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        state_dict = dict(state_dict)
        for key, value in self.vgg.state_dict(prefix="vgg.").items():
            state_dict.setdefault(key, value)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)
