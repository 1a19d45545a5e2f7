"""Train DMFN: ``python -m dmfn_lightning.train +experiment=paris`` (Hydra; see conf/train.yaml).

Thin by design: it validates the config, instantiates data module, model, loggers, callbacks and trainer from it,
and calls ``fit``. Step counts in the config are iterations (one G and one D update each); Lightning's
``global_step`` counts optimizer steps, two per iteration: :class:`~dmfn_lightning.training.trainer.IterationTrainer`
converts ``trainer.max_steps``, :mod:`dmfn_lightning.core.iterations` everything else.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities.exceptions import SIGTERMException
from torchvision.utils import save_image

from dmfn_lightning.config_checks import validate_batch_statistics, validate_train_config
from dmfn_lightning.core.config import compose, config_dir
from dmfn_lightning.core.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    DMFNError,
    OutputPathError,
    exit_on_user_error,
)
from dmfn_lightning.core.files import atomic_write_bytes
from dmfn_lightning.core.iterations import iterations_of
from dmfn_lightning.core.run_lock import RunLock, takes_run_lock
from dmfn_lightning.metrics.table import conventions
from dmfn_lightning.models.bundles import load_bundle, save_bundle
from dmfn_lightning.models.generator_files import (
    bundle_training,
    export_generator,
    init_from_release,
    is_bundle_reference,
    state_mismatch,
)
from dmfn_lightning.models.torch_files import safe_load
from dmfn_lightning.module import DMFNModule, run_config_of
from dmfn_lightning.training.callbacks import AtomicCheckpointIO, no_space_left, panel_rows
from dmfn_lightning.training.slurm_requeue import SlurmRequeue
from dmfn_lightning.training.sweep_report import SweepReport

log = logging.getLogger(__name__)
# ModelCheckpoint warns that manual optimization saves the post-step state: that is what resuming needs.
warnings.filterwarnings("ignore", message=r"Using ModelCheckpoint with manual optimization", category=UserWarning)


def compose_config(overrides: list[str] | None = None, run_dir: str | Path | None = None) -> DictConfig:
    """The training config composed in Python (tests, notebooks) as ``python -m dmfn_lightning.train`` would."""
    return compose("train", overrides, run_dir, job_name="train")


def resolve_ckpt_path(ckpt_path: str | None, run_dir: Path) -> str | None:
    """``last`` -> ``<run dir>/checkpoints/last.ckpt`` when it exists (auto-resume), else a fresh start."""
    if ckpt_path in (None, "", "null", "none"):
        return None
    if ckpt_path == "last":
        last = run_dir / "checkpoints" / "last.ckpt"
        return str(last) if last.is_file() else None
    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"ckpt_path={ckpt_path!r} does not exist (use ckpt_path=last or null to start fresh)")
    return str(path)


def check_resume_checkpoint(path: str, module) -> dict[str, Any]:
    """Refuse, with the reason, a checkpoint Lightning would choke on deep inside ``fit``: unreadable, unsafe,
    not a training checkpoint, or trained with another model configuration. Returns the checkpoint."""
    ckpt = safe_load(path)  # weights_only=True; missing/truncated/unsafe files become CheckpointError
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "optimizer_states" not in ckpt:
        raise CheckpointError(
            f"{path} is not a DMFN training checkpoint (no state_dict/optimizer_states); to fine-tune from a "
            "generator file, start fresh (ckpt_path=null)"
        )
    mismatch = state_mismatch(module.state_dict(), ckpt["state_dict"])
    if mismatch:
        raise CheckpointError(
            f"{path} was trained with another model configuration than this run ({mismatch}); "
            "use the same model/block, model.generator.* and model.ema_decay, or ckpt_path=null to start fresh"
        )
    return ckpt


# Settings that may differ between a run and its resume without changing what is trained: how long it runs, where
# it writes, how it logs and loads (data.num_workers: the data are a function of (seed, epoch, index), not of the
# workers), and what happens after fit.
_RESUME_FREE = (
    "ckpt_path",
    "trainer.max_steps",
    "trainer.enable_progress_bar",
    "trainer.log_every_n_steps",
    "trainer.val_check_interval",
    "trainer.limit_val_batches",
    "checkpoint.every_n_steps",
    "data.num_workers",
    "data.pin_memory",
    "data.persistent_workers",
    "logger",
    "paths",
    "callbacks",
    "init_from",
    "export_generator",
    "inpaint_val_images",
    "task_name",
    "run_name",
)
# Restored from the checkpoint over whatever the config says (the optimizers' param groups, the scheduler's
# milestones): a change here would be silently ignored, so it is refused.
_RESUME_RESTORED = ("optim",)


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def resume_changes(cfg: DictConfig, ckpt: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, checkpoint's value, this run's value)`` for every setting that differs from the run config stored
    in ``ckpt`` (none when the checkpoint has no config), leaving out the ones a resume may change freely."""
    stored = ((ckpt.get("hyper_parameters") or {}).get("config")) or {}
    if not stored:
        return []
    old, new = _flat(stored), _flat(run_config_of(cfg))
    changed = []
    for key in sorted(old.keys() | new.keys()):
        if any(key == free or key.startswith(free + ".") for free in _RESUME_FREE):
            continue
        if old.get(key, "<unset>") != new.get(key, "<unset>"):
            changed.append((key, old.get(key, "<unset>"), new.get(key, "<unset>")))
    return changed


def check_resume_changes(path: str, cfg: DictConfig, ckpt: dict[str, Any]) -> None:
    """Say which settings a resume changes; refuse the ones the restored checkpoint would silently override."""
    changes = resume_changes(cfg, ckpt)
    restored = [c for c in changes if any(c[0].startswith(r + ".") for r in _RESUME_RESTORED)]
    if restored:
        shown = ", ".join(f"{key}={new!r} (the checkpoint has {old!r})" for key, old, new in restored)
        raise ConfigError(
            f"resuming from {path} with {shown}: the optimizers and the LR schedule are restored from the "
            "checkpoint, so this would be ignored; put the value back, or start a new run (ckpt_path=null or "
            "another hydra.run.dir) with init_from.generator/discriminator to keep the weights"
        )
    if changes:
        shown = "; ".join(f"{key}: {old!r} -> {new!r}" for key, old, new in changes)
        log.warning(f"Resuming from {path} with {len(changes)} changed setting(s), in effect from now on: {shown}")


def build_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    """Every callback of ``conf/callbacks`` (one file each), in order; ``callbacks.<name>=null`` drops one."""
    callbacks: list[pl.Callback] = []
    for name, spec in (cfg.get("callbacks") or {}).items():
        if spec is None:
            continue
        if "_target_" not in spec:
            raise ConfigError(
                f"invalid config: callbacks.{name}={OmegaConf.to_container(spec)} has no _target_; "
                f"set callbacks.{name}=null to drop it (put +debug=... after +experiment=... on the command line)"
            )
        callbacks.append(instantiate(spec))
    return callbacks


def build_trainer(cfg: DictConfig, run_dir: Path, callbacks, loggers) -> pl.Trainer:
    """The ``trainer`` group's Trainer on the ``strategy`` group's devices, writing into ``run_dir``."""
    strategy_cfg = cfg.strategy
    strategy = strategy_cfg.strategy
    if isinstance(strategy, DictConfig):
        strategy = instantiate(strategy)
    if not loggers:  # Lightning refuses a LearningRateMonitor without a logger to write to
        callbacks = [c for c in callbacks if not isinstance(c, pl.callbacks.LearningRateMonitor)]
    if not cfg.trainer.get("enable_progress_bar", True):
        # Lightning refuses a progress-bar callback when bars are disabled.
        callbacks = [c for c in callbacks if not isinstance(c, pl.callbacks.ProgressBar)]
    return instantiate(
        cfg.trainer,
        accelerator=strategy_cfg.accelerator,
        devices=strategy_cfg.devices,
        num_nodes=strategy_cfg.num_nodes,
        strategy=strategy,
        callbacks=callbacks,
        logger=loggers or False,
        default_root_dir=str(run_dir),
        plugins=[AtomicCheckpointIO()],
        # Lightning adds its own epoch-end ModelCheckpoint unless one is configured; LastCheckpoint owns last.ckpt.
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        _convert_="all",
    )


def build_module(cfg: DictConfig) -> DMFNModule:
    """The module the config describes; with random VGG19 weights and ``loss_if_random_vgg`` set, that loss profile.

    Random-feature perceptual terms teach the generator texture noise, so a run that wants a usable result without
    the ImageNet file (the offline demo) names a profile without them (``loss/no_vgg``). Whether the weights are
    random is only known once VGG19Features has looked for the file (it may download it), so the module is built
    first and its loss swapped. ``cfg.loss`` is replaced in place: the checkpoint's hyperparameters, the loggers,
    results.json and the summary then all record the loss that actually trained. ``loss.*`` overrides given on the
    command line still apply on top of the profile, as with ``loss=<profile>`` on the command line.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import MissingConfigException
    from omegaconf import open_dict

    def loss_profile(name: str) -> DictConfig:
        task = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
        overrides = [o for o in task if o.lstrip("+~").startswith("loss.")]
        try:
            if GlobalHydra.instance().is_initialized():  # inside @hydra.main, whose search path is ours
                return hydra_compose(f"loss/{name}", overrides=overrides).loss
            with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
                return hydra_compose(f"loss/{name}", overrides=overrides).loss
        except MissingConfigException:
            options = ", ".join(sorted(p.stem for p in (config_dir() / "loss").glob("*.yaml")))
            raise ConfigError(f"invalid config: loss_if_random_vgg={name!r}; allowed: null, {options}") from None

    profile_name = cfg.get("loss_if_random_vgg")
    # Composed before the (slow) module build, so that a misspelt profile fails at once, online or offline.
    profile = loss_profile(profile_name) if profile_name else None
    module = DMFNModule.from_config(cfg)
    if profile is not None and module.vgg.weights_used == "random":
        with open_dict(cfg):
            cfg.loss = profile
        module.loss = instantiate(cfg.loss)
        module.run_config = run_config_of(cfg)
        module.save_hyperparameters({"config": module.run_config}, logger=False)
        weights = ", ".join(f"{k}={v}" for k, v in cfg.loss.items() if k != "_target_")
        log.warning(
            f"VGG19 has RANDOM weights, so this run trains with loss={profile_name} (loss_if_random_vgg), not the "
            f"configured loss: random-feature perceptual terms teach texture noise. Loss: {weights}. "
            "With the ImageNet VGG19 file in place the configured loss is used."
        )
    init_from = cfg.get("init_from") or {}
    if init_from.get("generator") or init_from.get("discriminator"):
        loaded = init_from_release(module, init_from.get("generator"), init_from.get("discriminator"))
        if loaded:
            log.info("Initialised from " + ", ".join(f"{net}={path}" for net, path in loaded.items()))
        if init_from.get("discriminator") == "auto" and "discriminator" not in loaded:
            log.info(f"init_from.generator={init_from.get('generator')} holds no discriminator: D starts fresh")
    return module


def print_summary(cfg: DictConfig, module, datamodule, run_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    def count(m: torch.nn.Module) -> str:
        return f"{sum(p.numel() for p in m.parameters()):,}"

    table = Table(title="dmfn_lightning.train", show_header=False)
    table.add_row("run dir", str(run_dir))
    table.add_row("generator", f"{count(module.generator)} params, block={cfg.model.generator.block}")
    table.add_row("discriminator", f"{count(module.discriminator)} params")
    table.add_row("VGG19 weights", str(module.vgg.weights_used))
    sizes = getattr(datamodule, "sizes", None)
    if callable(sizes):
        sizes = sizes()
    table.add_row("data", f"{cfg.data._target_.rsplit('.', 1)[-1]} {sizes or ''}")
    table.add_row("image size / batch", f"{cfg.data.image_size} / {cfg.data.batch_size}")
    table.add_row("loss", ", ".join(f"{k}={v}" for k, v in cfg.loss.items() if k != "_target_"))
    table.add_row("iterations", f"{cfg.trainer.max_steps} (Lightning global_step x2)")
    Console(stderr=True).print(table)


def setup_datamodule(cfg: DictConfig, stage: str = "fit"):
    """Instantiate and set up the data module now: a missing folder must cost seconds, not a built model."""
    datamodule = instantiate(cfg.data)
    try:
        datamodule.prepare_data()
        datamodule.setup(stage)
    except DataError as exc:
        if cfg.data.get("format") == "shards":
            raise  # a shard error names the shard and what to do; the folder layout hint below would mislead
        root = cfg.data.get("root")
        hint = (
            f" Datasets are looked up under $DMFN_DATA (now {os.environ.get('DMFN_DATA', 'unset: ./data')}); "
            f"point to yours with DMFN_DATA=/path or data.root=/path (this config expects {root}). "
            "The expected layout of each dataset is in the README (Reproducing the paper)."
            if root
            else ""
        )
        raise DataError(f"{exc}.{hint}") from exc
    return datamodule


_BUNDLE_NETWORK_KEYS = {
    "generator": ("block", "num_blocks", "base_channels", "upsample_init"),
    "discriminator": ("base_channels", "spectral_norm"),
}


def adopt_bundle_networks(cfg: DictConfig) -> list[str]:
    """Build the networks a fine-tune starts from as its bundle says: when ``init_from.generator`` is a weights
    bundle, its ``config.json`` sets ``model.generator``'s block, blocks, channels and upsample init (and, when
    the discriminator comes from it too, ``model.discriminator``'s channels and spectral norm), so that its
    weights fit. Returns the ``key: old -> new`` changes (logged)."""
    from omegaconf import open_dict

    reference = (cfg.get("init_from") or {}).get("generator")
    if not reference or not is_bundle_reference(reference):
        return []
    bundle = load_bundle(reference)
    sources = {"generator": bundle.config.get("generator") or {}}
    if cfg.init_from.get("discriminator") in ("auto", reference) and bundle.config.get("discriminator"):
        sources["discriminator"] = bundle.config["discriminator"]
        size = sources["discriminator"].get("image_size")
        if size is not None and size != cfg.data.image_size:
            # Checked here, before the data and the networks are built: D's linear layers are sized for its images.
            raise ConfigError(
                f"init_from.generator={reference} holds a discriminator for {size} px images but data.image_size="
                f"{cfg.data.image_size}: train at data.image_size={size}, or start D fresh with "
                "init_from.discriminator=null"
            )
    changes = []
    with open_dict(cfg):
        for net, keys in _BUNDLE_NETWORK_KEYS.items():
            for key in keys:
                if key not in sources.get(net, {}):
                    continue
                new, old = sources[net][key], cfg.model[net].get(key)
                if new != old:
                    cfg.model[net][key] = new
                    changes.append(f"model.{net}.{key}: {old} -> {new}")
    if changes:
        log.info(f"Networks as the bundle {reference} has them: " + ", ".join(changes))
    return changes


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one training job from a composed config; returns the final metrics and output paths."""
    validate_train_config(cfg)
    adopt_bundle_networks(cfg)
    run_dir = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path.cwd()
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = resolve_ckpt_path(cfg.ckpt_path, run_dir)  # a missing file must stop us before any work
    pl.seed_everything(cfg.seed, workers=True)
    if cfg.trainer.get("deterministic"):
        torch.use_deterministic_algorithms(True, warn_only=True)

    datamodule = setup_datamodule(cfg)
    sizes = getattr(datamodule, "sizes", None)
    validate_batch_statistics(cfg.data.image_size, cfg.data.batch_size, (sizes() if callable(sizes) else sizes) or {})
    module = build_module(cfg)
    if module.vgg.weights_used == "random":
        log.warning("VGG19 uses RANDOM weights for this run (recorded in the checkpoint as vgg_weights=random)")
    loggers = [] if cfg.get("logger") in (None, {}) else [instantiate(cfg.logger)]
    for logger in loggers:
        logger.log_hyperparams({**run_config_of(cfg), "vgg_weights": module.vgg.weights_used})
    callbacks = build_callbacks(cfg)
    trainer = build_trainer(cfg, run_dir, callbacks, loggers)
    if trainer.is_global_zero:
        print_summary(cfg, module, datamodule, run_dir)
    if ckpt_path:
        ckpt = check_resume_checkpoint(ckpt_path, module)
        check_resume_changes(ckpt_path, cfg, ckpt)
        done = iterations_of(int(ckpt.get("global_step", 0)))
        if cfg.trainer.max_steps > 0 and done >= cfg.trainer.max_steps:
            # A rerun of a finished run: nothing to train, and its results must stay as they are.
            log.info(
                f"{run_dir} already finished: {ckpt_path} is at iteration {done} of trainer.max_steps="
                f"{cfg.trainer.max_steps}; nothing to do (raise trainer.max_steps to train further)"
            )
            _finish_wandb(loggers)
            return _finished_result(run_dir, done)
        log.info(f"Resuming from {ckpt_path} at iteration {done}")
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except SIGTERMException:
        # LastCheckpoint has saved last.ckpt; exit as "terminated" so schedulers don't count it as done.
        log.warning("Stopped by SIGTERM; rerun the same command (ckpt_path=last) to continue.")
        raise SystemExit(128 + signal.SIGTERM) from None
    finally:
        _finish_wandb(loggers)

    result: dict[str, Any] = {
        "run_dir": str(run_dir),
        "iteration": iterations_of(trainer.global_step),
        "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
    }
    if trainer.is_global_zero:
        # What experiments/collect.py tabulates: final metrics beside the settings that define the ablation.
        # A resumed run keeps the results of the runs before it (history), so nothing it reported is lost.
        previous = _read_results(run_dir)
        history = [*previous.get("history", []), *([_entry(previous)] if previous.get("metrics") else [])]
        summary = {
            **result,
            "block": cfg.model.generator.block,
            "loss": OmegaConf.to_container(cfg.loss, resolve=True),
            "overrides": _job_overrides(),
            "history": history,
        }
        atomic_write_bytes(run_dir / "results.json", json.dumps(summary, indent=1, default=str).encode())
    if trainer.is_global_zero and cfg.export_generator:
        path = export_generator(
            module,  # its evaluation generator (EMA when enabled), with the training size and data it recorded
            run_dir / "generator.pt",
            metadata={"iteration": result["iteration"], "vgg_weights": module.vgg.weights_used},
        )
        result["generator"] = str(path)
        log.info(f"Exported the generator to {path}")
        result["bundle"] = str(write_run_bundle(module, cfg, run_dir / "bundle", result))
        log.info(f"Wrote the weights bundle (safetensors, config.json, model card) to {result['bundle']}")
    if trainer.is_global_zero and cfg.inpaint_val_images:
        result["inpainted"] = str(inpaint_validation_images(module, datamodule, run_dir / "inpainted"))
    return result


def parent_record(reference: str | None) -> dict[str, Any] | None:
    """What a run started from ``init_from.generator`` records of its parent: a bundle's config and provenance
    (:meth:`~dmfn_lightning.models.bundles.Bundle.parent_record`), or the file's path."""
    if not reference:
        return None
    if is_bundle_reference(reference):
        return load_bundle(reference).parent_record(str(reference))
    return {"reference": str(reference)}


def write_run_bundle(module: DMFNModule, cfg: DictConfig, path: Path, result: dict[str, Any]) -> Path:
    """The run's weights bundle: its evaluation generator (EMA when enabled) and discriminator as safetensors,
    the run's training facts and its final validation metrics (with their conventions) in config.json and the
    model card, and the parent bundle when the run was a fine-tune (``init_from.generator``)."""
    metrics = {k.removeprefix("val/"): v for k, v in result["metrics"].items() if k.startswith("val/")}
    evaluation = None
    if metrics:
        described = conventions()
        evaluation = {
            "setting": f"validation split at the end of training ({cfg.data.image_size} px, holes from "
            f"{str(OmegaConf.select(cfg, 'data.eval_mask._target_', default='CenterMask')).rsplit('.', 1)[-1]})",
            "metrics": metrics,
            "conventions": {k: described[k] for k in metrics if k in described},
        }
    training = bundle_training(
        module.run_config,
        iterations=result["iteration"],
        vgg_weights=module.vgg.weights_used,
        ema=module.generator_ema is not None,
    )
    provenance = {"source": f"dmfn_lightning.train run {path.parent}"}
    parent = parent_record((cfg.get("init_from") or {}).get("generator"))
    if parent is not None:
        provenance["parent"] = parent
    return save_bundle(
        path,
        module.eval_generator,
        discriminator=module.discriminator,
        training=training,
        provenance=provenance,
        evaluation=evaluation,
    )


@torch.no_grad()
def inpaint_validation_images(module, datamodule, out_dir: Path) -> Path:
    """Write ``masked | output | ground truth`` PNGs for every validation image (the demo's last stage)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    module.eval()
    for batch in datamodule.val_dataloader():
        batch = {k: v.to(module.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        output = module.complete(batch).float()
        rows = panel_rows(batch["image"], batch["mask"], output).unflatten(0, (-1, 3))
        for index, row in zip(batch["index"].tolist(), rows):
            save_image(row, out_dir / f"val_{index:03d}.png", nrow=3, padding=2)
    return out_dir


def _read_results(run_dir: Path) -> dict[str, Any]:
    try:
        results = json.loads((run_dir / "results.json").read_text())
    except (OSError, ValueError):
        return {}
    return results if isinstance(results, dict) else {}


def _entry(results: dict[str, Any]) -> dict[str, Any]:
    return {"iteration": results.get("iteration"), "metrics": results.get("metrics", {})}


def _finished_result(run_dir: Path, iteration: int) -> dict[str, Any]:
    """What a finished run reported (its results.json, untouched), for a rerun that has nothing to do."""
    previous = _read_results(run_dir)
    result: dict[str, Any] = {
        "run_dir": str(run_dir),
        "iteration": iteration,
        "metrics": previous.get("metrics", {}),
        "finished_before": True,
    }
    if (run_dir / "generator.pt").is_file():
        result["generator"] = str(run_dir / "generator.pt")
    if (run_dir / "bundle").is_dir():
        result["bundle"] = str(run_dir / "bundle")
    return result


def _job_overrides() -> list[str]:
    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def _finish_wandb(loggers) -> None:
    # Multirun jobs run in one process: without finish() the next job would log into this run.
    if any(isinstance(lg, WandbLogger) for lg in loggers):
        import wandb

        wandb.finish()


def _in_sweep() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _sweep_reported() -> bool:
    """Whether :class:`~dmfn_lightning.training.sweep_report.SweepReport` is among this sweep's Hydra callbacks."""
    target = f"{SweepReport.__module__}.{SweepReport.__qualname__}"
    callbacks = HydraConfig.get().callbacks or {}
    return any(spec is not None and spec.get("_target_") == target for spec in callbacks.values())


def _train_job(cfg: DictConfig) -> float | None:
    """One training job: its run folder locked against a second training (under DDP by the launching process
    only), SLURM's requeue signal turned into a fresh last.ckpt and a requeue, a full disk named."""
    run_dir = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path.cwd()  # as train()
    key = "hydra.sweep.dir" if _in_sweep() else "hydra.run.dir"
    validate_train_config(cfg)  # before the lock file is made: a run dir inside the data must stay untouched
    with RunLock(run_dir, key) if takes_run_lock() else nullcontext(), SlurmRequeue():
        try:
            result = train(cfg)
        except Exception as exc:
            # checkpoints say so themselves (AtomicCheckpointIO); this is for every other file of the run
            full = None if isinstance(exc, DMFNError) else no_space_left(exc)
            if full is None:
                raise
            where = full.filename or "the run folder"
            raise OutputPathError(f"no space left writing {where}; free space or choose another {key}") from exc
    metric = cfg.checkpoint.monitor
    return result["metrics"].get(metric) if metric else None


@hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")
def _main(cfg: DictConfig) -> float | None:
    if _in_sweep() and _sweep_reported():
        # A failed job reaches Hydra, SweepReport reports it in one line and the sweep goes on to the next job.
        return _train_job(cfg)
    return exit_on_user_error(_train_job)(cfg)


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
