"""Callbacks: image panels of fixed validation samples, checkpoints on interruption, atomic checkpoint writes,
best checkpoints that survive resumes and restarts, and a progress bar that counts the paper's iterations."""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import math
import re
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.types import _PATH
from pytorch_lightning.callbacks import ModelCheckpoint, RichProgressBar
from pytorch_lightning.plugins.io import TorchCheckpointIO
from pytorch_lightning.utilities import rank_zero_info
from pytorch_lightning.utilities.exceptions import SIGTERMException
from torchvision.utils import make_grid, save_image

from dmfn_lightning.core.errors import DivergenceError, OutputPathError
from dmfn_lightning.core.iterations import iterations_of
from dmfn_lightning.models.torch_files import atomic_torch_save, safe_load

_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


def no_space_left(exc: BaseException | None) -> OSError | None:
    """The "no space left on device" (or "disk quota exceeded") error behind ``exc``, if any.

    A full disk under ``torch.save`` surfaces as torch's ``RuntimeError: [enforce fail at inline_container.cc] .
    unexpected pos ...``, raised while handling the ``OSError``; this follows that chain."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file and renames it: killing the process mid-save leaves the
    previous ``last.ckpt`` intact and loadable. Reads them with ``torch.load(weights_only=True)`` (Lightning's
    default unpickles whatever the file holds, which can run code): a resume never executes a checkpoint. A full
    disk stops training with one line (:class:`~dmfn_lightning.core.errors.OutputPathError`), the previous file
    intact."""

    def load_checkpoint(self, path: _PATH, map_location: Any | None = None, weights_only: bool | None = None) -> Any:
        # weights_only is ignored on purpose: no caller may switch unpickling on.
        return safe_load(path, map_location=map_location if map_location is not None else "cpu")

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"AtomicCheckpointIO takes no storage_options, got {storage_options!r}")
        existed = Path(path).is_file()
        try:
            atomic_torch_save(checkpoint, path)
        except Exception as exc:
            if no_space_left(exc) is None:
                raise
            kept = "the previous checkpoint is intact" if existed else "nothing was written"
            raise OutputPathError(
                f"no space left writing {path} ({kept}); free space or choose another hydra.run.dir"
            ) from exc


class LastCheckpoint(pl.Callback):
    """Owns ``<dirpath>/last.ckpt``: the newest training state, always under that one name.

    Saved every ``every_n_steps`` iterations, after the last iteration (``max_steps``), at the end of training, and
    when training stops early (SIGTERM from SLURM preemption or ``kill``, Ctrl+C, the divergence guard). Lightning
    raises these between iterations, so the saved state is consistent and a requeued run (``ckpt_path=last``)
    continues from it, losing at most ``every_n_steps`` iterations to a SIGKILL. Writes go through
    :class:`AtomicCheckpointIO` (temporary file, then rename), so a reader never sees a half-written file.
    Lightning's ``ModelCheckpoint(save_last=True)`` is not used for this: when the file already exists (any resumed
    run) it writes ``last-v1.ckpt``, ``last-v2.ckpt``... and leaves ``last.ckpt`` stale.

    When a validation follows the iteration (always so with the paper's defaults, 2000/2000), the save waits until
    that validation has ended and :class:`BestCheckpoints` has recorded the file it wrote: the checkpoint then holds
    the validation's results and the best files so far. A run resumed from it does not validate that iteration
    again (Lightning skips a validation the checkpoint already holds), and keeps every best file.

    The last iteration is saved when it ends (or after its validation), not at ``on_train_end``: by then Lightning
    has closed the epoch, and a run that stopped mid-epoch would resume at the start of the next one, skipping the
    rest of its epoch. Saved in the iteration, a run stopped anywhere resumes as if it had never stopped.
    """

    FILENAME = "last.ckpt"

    def __init__(self, dirpath: str | Path, every_n_steps: int | None = None) -> None:
        if every_n_steps is not None and int(every_n_steps) < 1:
            raise ValueError(f"every_n_steps={every_n_steps} must be >= 1 iterations or None")
        self.dirpath = Path(dirpath)
        self.every_n_steps = int(every_n_steps) if every_n_steps is not None else None
        self._saved_global_step: int | None = None
        self._after_validation = False  # a save is due once the validation of this iteration has ended

    @property
    def path(self) -> Path:
        return self.dirpath / self.FILENAME

    def save(self, trainer: pl.Trainer) -> Path:
        # every rank calls it: it synchronises under DDP, rank 0 writes. weights_only=False: the full training state
        # (said explicitly, or Lightning logs a misleading "`weights_only` was not set" line at every save)
        trainer.save_checkpoint(self.path, weights_only=False)
        self._saved_global_step = trainer.global_step
        self._after_validation = False
        return self.path

    def _due(self, trainer: pl.Trainer) -> bool:
        return (
            not trainer.sanity_checking and trainer.global_step > 0 and trainer.global_step != self._saved_global_step
        )

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # A resumed run starts at the state last.ckpt holds: nothing new to save until the next iteration.
        self._saved_global_step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        every = self.every_n_steps
        last = 0 < trainer.max_steps <= trainer.global_step
        scheduled = last or (bool(every) and iterations_of(trainer.global_step) % every == 0)
        # _after_validation still set: the validation expected after the previous iteration did not come; save now
        if not (scheduled or self._after_validation) or not self._due(trainer):
            return
        if scheduled and validation_follows(trainer):
            self._after_validation = True
        else:
            self.save(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning runs checkpoint callbacks after all others: BestCheckpoints saves last once its file is recorded.
        if not any(isinstance(c, BestCheckpoints) for c in trainer.callbacks):
            self.save_after_validation(trainer)

    def save_after_validation(self, trainer: pl.Trainer) -> None:
        """The save that waited for this iteration's validation, if any (called when that validation has ended)."""
        if self._after_validation and not trainer.sanity_checking and self._due(trainer):
            self.save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._due(trainer):
            self.save(trainer)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, (SIGTERMException, KeyboardInterrupt, DivergenceError)):
            return
        if self._due(trainer):
            self.save(trainer)
        rank_zero_info(
            f"{type(exception).__name__}: saved {self.path} at iteration {iterations_of(trainer.global_step)}"
        )


def validation_follows(trainer: pl.Trainer) -> bool:
    """Whether Lightning validates right after the training batch that has just ended (asked in
    ``on_train_batch_end``): its own test, ``_TrainingEpochLoop._should_check_val_fx``, which it asks again a moment
    later. Without that private method (another Lightning version) the answer is no: the caller then saves at once,
    as before validation-aware saving existed."""
    loop = trainer.fit_loop
    should_check = getattr(loop.epoch_loop, "_should_check_val_fx", None)
    fetcher = getattr(loop, "_data_fetcher", None)
    if should_check is None or fetcher is None:
        return False
    return bool(should_check(fetcher))


class BestCheckpoints(ModelCheckpoint):
    """Keeps the ``save_top_k`` best checkpoints by a validation metric as ``best-iterNNNNNNN.ckpt``.

    The set of best files is part of the training state: ``last.ckpt`` lists them (it is written after the
    validation of its iteration, see :class:`LastCheckpoint`) and a resumed run restores that list. When a run
    starts, every ``best-*.ckpt`` of the folder that its state does not list is dealt with in one line:

    - resumed from this folder's checkpoint, a file of a later iteration than the checkpoint's was written by the
      interrupted run after its last save; the resumed run computes those iterations again and writes that file
      again, so it is deleted (the folder keeps at most ``save_top_k`` best files);
    - any other file is not this run's: a previous run's in a fresh start (``ckpt_path=null``), or one written by an
      older version of this library, whose ``last.ckpt`` preceded the validation. It is never deleted: it is moved,
      with the others, into ``previous-N/`` beside them (the first free N), and the new run starts its own.
    """

    PREFIX = "best-"
    ASIDE = "previous-"

    def __init__(self, dirpath: str | Path, monitor: str | None, mode: str = "max", save_top_k: int = 1) -> None:
        if monitor is None:  # nothing to rank by: keep no best file (Lightning would keep the latest instead)
            save_top_k = 0
        super().__init__(
            dirpath=dirpath,
            filename=self.PREFIX + "iter{iteration:07.0f}",
            auto_insert_metric_name=False,
            monitor=monitor,
            mode=mode,
            save_top_k=save_top_k,
            save_last=False,
            enable_version_counter=False,
        )

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if self is [c for c in trainer.callbacks if isinstance(c, BestCheckpoints)][-1]:
            for callback in trainer.callbacks:
                if isinstance(callback, LastCheckpoint):
                    callback.save_after_validation(trainer)

    def _iteration(self, path: Path) -> int | None:
        found = re.fullmatch(rf"{re.escape(self.PREFIX)}iter(\d+)\.ckpt", path.name)
        return int(found.group(1)) if found else None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        if not trainer.is_global_zero or self.dirpath is None or not Path(self.dirpath).is_dir():
            return
        dirpath = Path(self.dirpath)
        known = {Path(p).resolve() for p in self.best_k_models}
        unknown = [p for p in sorted(dirpath.glob(f"{self.PREFIX}*.ckpt")) if p.resolve() not in known]
        resumed_from = Path(trainer.ckpt_path) if trainer.ckpt_path else None
        if resumed_from is not None and resumed_from.resolve().parent == dirpath.resolve():
            iteration = iterations_of(trainer.global_step)
            later = [p for p in unknown if (self._iteration(p) or 0) > iteration]
            for path in later:
                path.unlink(missing_ok=True)
            if later:
                rank_zero_info(
                    f"Removed {', '.join(p.name for p in later)} from {dirpath}: written after the checkpoint this "
                    f"run resumed from (iteration {iteration}), by the interrupted run; this run writes them again"
                )
            unknown = [p for p in unknown if p not in later]
        if not unknown:
            return
        aside = next(
            dirpath / f"{self.ASIDE}{n}" for n in itertools.count(1) if not (dirpath / f"{self.ASIDE}{n}").exists()
        )
        aside.mkdir()
        for path in unknown:
            path.rename(aside / path.name)
        why = (
            "this run starts fresh (ckpt_path=null)"
            if resumed_from is None
            else f"the checkpoint this run resumed from ({resumed_from}) does not list them"
        )
        count = f"{len(unknown)} best checkpoint{'s' if len(unknown) > 1 else ''}"
        names = ", ".join(p.name for p in unknown)
        rank_zero_info(f"Moved {count} that are not this run's ({names}) to {aside}: {why}")


def panel_rows(image: torch.Tensor, mask: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """``[3N, 3, H, W]`` in [0, 1]: for each sample, masked input (holes white) | output | ground truth."""
    masked = image * (1 - mask) + mask
    rows = torch.stack([masked, output, image], dim=1).flatten(0, 1)
    return (rows.clamp(-1, 1) + 1) / 2


class ImagePanels(pl.Callback):
    """Every ``every_n_steps`` iterations (and at the end of training), inpaint the first ``num_samples``
    validation images (fixed samples, fixed holes) and save ``masked input | output | ground truth`` rows as
    ``<run dir>/images/iter_XXXXXX.png``; also sent to W&B / TensorBoard when those loggers are active."""

    def __init__(self, every_n_steps: int = 500, num_samples: int = 4) -> None:
        if every_n_steps < 1 or num_samples < 1:
            raise ValueError(f"every_n_steps={every_n_steps} and num_samples={num_samples} must be >= 1")
        self.every_n_steps = every_n_steps
        self.num_samples = num_samples
        self._samples: dict[str, torch.Tensor] | None = None
        self.last_path: Path | None = None

    def _fixed_samples(self, trainer: pl.Trainer) -> dict[str, torch.Tensor] | None:
        if self._samples is None:
            datamodule = trainer.datamodule
            if datamodule is None:
                return None
            images, masks, bboxes = [], [], []
            dataset = datamodule.val_dataloader().dataset
            for i in range(min(self.num_samples, len(dataset))):
                item = dataset[i]
                images.append(item["image"])
                masks.append(item["mask"])
                bboxes.append(torch.as_tensor(item["bbox"]))
            self._samples = {
                "image": torch.stack(images),
                "mask": torch.stack(masks),
                "bbox": torch.stack(bboxes),
            }
        return self._samples

    @torch.no_grad()
    def render(self, trainer: pl.Trainer, pl_module) -> Path | None:
        samples = self._fixed_samples(trainer)
        if samples is None:
            return None
        batch = {k: v.to(pl_module.device) for k, v in samples.items()}
        was_training = pl_module.training
        pl_module.eval()
        output = pl_module.complete(batch).float().cpu()
        pl_module.train(was_training)
        image, mask = samples["image"], samples["mask"]
        grid = make_grid(panel_rows(image, mask, output), nrow=3, padding=2)
        iteration = iterations_of(trainer.global_step)
        out_dir = Path(trainer.default_root_dir) / "images"
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"iter_{iteration:06d}.png"
        save_image(grid, path)
        self.last_path = path
        for logger in trainer.loggers:
            if hasattr(logger, "log_image"):  # WandbLogger
                logger.log_image(
                    "val/panels",
                    [str(path)],
                    step=iteration,
                    caption=["masked input | output | ground truth"],
                )
            elif hasattr(getattr(logger, "experiment", None), "add_image"):  # TensorBoard
                logger.experiment.add_image("val/panels", grid, global_step=iteration)
        return path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        iteration = iterations_of(trainer.global_step)
        if trainer.is_global_zero and iteration % self.every_n_steps == 0:
            self.render(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            self.render(trainer, pl_module)


class DDPConsistencyCheck(pl.Callback):
    """At the end of training, compare a digest of the generator and discriminator parameters across ranks.

    Manual optimization under DDP is easy to get subtly wrong (a missed gradient reduction leaves the replicas
    drifting apart without any error). Each rank hashes its parameters; rank zero writes
    ``<run dir>/ddp_consistency.json`` (``{"rank_digests": [...], "in_sync": bool}``) and raises when they differ.
    """

    def __init__(self, filename: str = "ddp_consistency.json") -> None:
        self.filename = filename

    @staticmethod
    def digest(module: torch.nn.Module) -> str:
        h = hashlib.sha256()
        # Parameters only: BatchNorm running statistics are per-rank by design (each rank normalises its own batch).
        for name, tensor in sorted(module.named_parameters()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def on_train_end(self, trainer: pl.Trainer, pl_module) -> None:
        nets = torch.nn.ModuleDict({"g": pl_module.generator, "d": pl_module.discriminator})
        local = torch.tensor(bytearray.fromhex(self.digest(nets)), dtype=torch.uint8, device=pl_module.device)
        gathered = trainer.strategy.all_gather(local)
        digests = [bytes(row.cpu().tolist()).hex() for row in gathered.reshape(-1, local.numel())]
        in_sync = len(set(digests)) == 1
        if trainer.is_global_zero:
            path = Path(trainer.default_root_dir) / self.filename
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"rank_digests": digests, "in_sync": in_sync}, indent=1))
        if not in_sync:
            raise RuntimeError(f"DDP replicas diverged: weight digests per rank {digests}")


class IterationProgressBar(RichProgressBar):
    """Rich progress bar that counts the paper's iterations (one G and one D update), never Lightning's optimizer
    steps (two per iteration).

    With ``trainer.max_steps`` set (every DMFN run) the train bar spans the whole run: its counter is the iteration
    reached over the run's iterations (``4/120``, continuing from the checkpoint's iteration when resumed), its speed
    is in iterations per second, and its title says the epoch and the same count (``Epoch 1 · iteration 4/120``),
    refreshed at every iteration. Without ``max_steps`` the bar counts the iterations of the current epoch, as
    Lightning does (Lightning's own bar would show an open-ended epoch count, "Epoch 9/-2", and a total that mixes
    optimizer steps with batches).
    """

    def _run_total(self) -> int | None:
        """The run's last iteration when ``max_steps`` bounds it, else None."""
        trainer = self.trainer
        if not trainer.max_steps or trainer.max_steps < 0:
            return None
        total = iterations_of(trainer.max_steps)
        per_epoch = trainer.num_training_batches  # batches = iterations
        if trainer.max_epochs is not None and trainer.max_epochs > 0 and math.isfinite(per_epoch):
            total = min(total, trainer.max_epochs * int(per_epoch))
        return total

    @property
    def total_train_batches(self) -> int | float:
        total = self._run_total()
        return self.trainer.num_training_batches if total is None else total

    def _train_completed(self, batch_idx: int) -> int:
        return iterations_of(self.trainer.global_step) if self._run_total() is not None else batch_idx + 1

    def _get_train_description(self, current_epoch: int) -> str:
        total = self._run_total()
        iteration = iterations_of(self.trainer.global_step)
        return f"Epoch {current_epoch} · iteration {iteration}" + ("" if total is None else f"/{total}")

    def _styled(self, description: str) -> str:
        return f"[{self.theme.description}]{description}" if self.theme.description else description

    def _add_train_task(self) -> None:
        assert self.progress is not None
        self.train_progress_bar_id = self.progress.add_task(
            self._styled(self._get_train_description(self.trainer.current_epoch)),
            total=self.total_train_batches,
            completed=iterations_of(self.trainer.global_step) if self._run_total() is not None else 0,
        )

    def _initialize_train_progress_bar_id(self) -> None:
        self._add_train_task()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._run_total() is None:  # one bar per epoch, Lightning's way
            super().on_train_epoch_start(trainer, pl_module)
            return
        if self.is_disabled or self.progress is None:
            return
        if self.train_progress_bar_id is None:  # one bar for the whole run: created once, never reset
            self._add_train_task()
        else:
            self.progress.update(
                self.train_progress_bar_id,
                total=self.total_train_batches,
                description=self._styled(self._get_train_description(trainer.current_epoch)),
                visible=True,
            )
        self.refresh()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if not self.is_disabled and self.progress is not None and self.train_progress_bar_id is None:
            self._initialize_train_progress_bar_id()
        if self.progress is not None and self.train_progress_bar_id is not None:
            description = self._styled(self._get_train_description(trainer.current_epoch))
            self.progress.update(self.train_progress_bar_id, description=description)
        self._update(self.train_progress_bar_id, self._train_completed(batch_idx))
        self._update_metrics(trainer, pl_module)
        self.refresh()
