"""DMFNDataModule: the train / val / test splits, their holes and the DataLoaders (docs/design.md)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from dmfn_lightning.core.errors import DataError
from dmfn_lightning.core.iterations import iterations_of
from dmfn_lightning.data.datasets import CROPS, ImageDataset, collate_samples
from dmfn_lightning.data.files import ImageSource, shared_files
from dmfn_lightning.data.sampling import EpochSampler, ResumableDataLoader
from dmfn_lightning.data.shards import ShardDataset, open_split
from dmfn_lightning.masks import CenterMask, IrregularFileMask, MaskGenerator, MixedMask, RandomBoxMask

__all__ = ["DMFNDataModule"]

_SPLITS = ("train", "val", "test")
FORMATS = ("folder", "shards")
_STAGE_SPLITS = {
    "fit": ("train", "val"),
    "validate": ("val",),
    "test": ("test",),
    "predict": ("test",),
    None: _SPLITS,
}


def _check_mask_files(mask: MaskGenerator) -> None:
    """Find and check the files of the training mask generators that read them, here in the main process, so that a
    missing or hole-less mask folder fails in ``setup`` with one line, not in a DataLoader worker during training."""
    if isinstance(mask, IrregularFileMask):
        _ = mask.files
    elif isinstance(mask, MixedMask):
        for part in mask.masks:
            _check_mask_files(part)


class DMFNDataModule(pl.LightningDataModule):
    """Images and holes for training and evaluating DMFN.

    Every batch is ``{"image": [B, 3, S, S] in [-1, 1], "mask": [B, 1, S, S] (1 = hole), "bbox": int64 [B, 4]
    (top, left, height, width of the local-discriminator window), "index": int64 [B], "path": list[str]}``.

    Args:
        train, val, test: dataset sources: a folder, or a mapping of :class:`ImageSource` fields (``root``,
            ``list``, ``number_range``, ``limit``, ``expected_count``, ``length``, and per-split ``crop``,
            ``scale``, ``hflip``, ``allow_upscale``, ``on_bad_image``). ``test`` defaults to ``val``;
            ``val: null`` disables validation.
        root: base folder that relative source roots are resolved against (the data yamls set it from
            ``${oc.env:DMFN_DATA,./data}/<dataset>``).
        image_size: side of the square images (256 in the paper).
        batch_size: training batch size; ``eval_batch_size`` (default ``batch_size``) for val/test.
        num_workers, pin_memory (default: when CUDA is available), persistent_workers (used when
            ``num_workers > 0``): DataLoader settings.
        train_mask: hole generator for training (``${mask}`` in the data yamls; default the released random box).
        eval_mask: hole generator for val/test (default the exact centred half-size box of Table 1).
        crop: training crop, ``"random"`` (square, random position) or ``"center"`` (faces), or ``"released"``
            (the authors' Paris loader, which stretches a non-square region; see ``ImageDataset.crop_box``);
            evaluation is centred unless a split says otherwise.
        scale, hflip: training crop scale range and horizontal-flip probability (released: ``(1, 1)`` and 0).
        allow_upscale: accept images smaller than ``image_size`` (upsampled); default: a clear error.
        on_bad_image: ``"skip"`` or ``"raise"`` for every split; ``None`` = skip in training, raise in evaluation.
        check_headers: ``"eval"`` (default), ``"all"`` or ``"none"``: which splits read every image header in
            :meth:`setup` so that unreadable or too-small files fail before any training.
        seed: data seed. Evaluation holes/crops are a pure function of (sample index, seed); training streams
            are seeded per (seed, rank, DataLoader worker) and continue across epochs.
        drop_last: drop the last incomplete training batch.
        format: ``"folder"`` (default): read the image files of each split; ``"shards"``: read the shards that
            ``python -m dmfn_lightning.data.shards write`` made of them, from ``shards`` (a folder or a URL; URLs
            are copied into ``shard_cache``, see :mod:`dmfn_lightning.data.shards.location`). The same seed gives
            the same batches either way.

    :meth:`setup` refuses a training split that shares image files with the val or test split (e.g. through a
    symlinked folder; the same folder given for both on purpose is allowed), and checks the training mask files
    (a mask folder without any hole is refused) before any batch is drawn.
    """

    def __init__(
        self,
        train: Any = None,
        val: Any = None,
        test: Any = None,
        root: str | os.PathLike | None = None,
        image_size: int = 256,
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        num_workers: int = 4,
        pin_memory: bool | None = None,
        persistent_workers: bool = True,
        train_mask: MaskGenerator | None = None,
        eval_mask: MaskGenerator | None = None,
        crop: str = "random",
        scale: Sequence[float] = (1.0, 1.0),
        hflip: float = 0.0,
        allow_upscale: bool = False,
        on_bad_image: str | None = None,
        check_headers: str = "eval",
        seed: int = 0,
        drop_last: bool = True,
        format: str = "folder",
        shards: str | os.PathLike | None = None,
        shard_cache: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        if format not in FORMATS:
            raise DataError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
        if format == "shards" and not shards:
            raise DataError(
                "data.format=shards needs data.shards=DIR_OR_URL (write them with python -m "
                "dmfn_lightning.data.shards write data=<dataset> out=DIR)"
            )
        if check_headers not in ("eval", "all", "none"):
            raise DataError(f"check_headers must be 'eval', 'all' or 'none', got {check_headers!r}")
        if on_bad_image not in (None, "skip", "raise"):
            raise DataError(f"on_bad_image must be 'skip', 'raise' or null, got {on_bad_image!r}")
        if crop not in CROPS:
            raise DataError(f"crop must be one of {', '.join(CROPS)}, got {crop!r}")
        if int(batch_size) < 1:
            raise DataError(f"batch_size must be at least 1, got {batch_size}")
        self.sources: dict[str, ImageSource | None] = {
            "train": None if train is None else ImageSource.from_spec(train),
            "val": None if val is None else ImageSource.from_spec(val),
            "test": None,
        }
        self.sources["test"] = ImageSource.from_spec(test) if test is not None else self.sources["val"]
        self.root = None if root is None else str(root)
        self.image_size = int(image_size)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size) if eval_batch_size is not None else self.batch_size
        self.num_workers = int(num_workers)
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else bool(pin_memory)
        self.persistent_workers = bool(persistent_workers)
        self.train_mask = train_mask if train_mask is not None else RandomBoxMask()
        self.eval_mask = eval_mask if eval_mask is not None else CenterMask()
        self.crop = crop
        self.scale = tuple(float(v) for v in scale)
        self.hflip = float(hflip)
        self.allow_upscale = bool(allow_upscale)
        self.on_bad_image = on_bad_image
        self.check_headers = check_headers
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.format = format
        self.shards = None if shards is None else str(shards)
        self.shard_cache = None if shard_cache is None else str(shard_cache)
        self.datasets: dict[str, ImageDataset] = {}

    # -- datasets ------------------------------------------------------------------------------------------------

    def source(self, split: str) -> ImageSource | None:
        """The split's source with relative roots joined to ``root``."""
        source = self.sources[split]
        if source is None or self.root is None:
            return source
        if source.root is not None and os.path.isabs(os.path.expanduser(source.root)):
            return source
        if source.files is not None:
            return source
        return source.with_root(self.root)

    def build_dataset(self, split: str) -> ImageDataset:
        """Construct one split's dataset (raises :class:`DataError` for missing/empty/bad sources)."""
        if split not in _SPLITS:
            raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
        source = self.source(split)
        if source is None:
            raise DataError(f"data.{split} is not configured")
        train = split == "train"
        default_policy = "skip" if train else "raise"
        policy = source.on_bad_image or self.on_bad_image or default_policy
        crop = source.crop or (self.crop if train else "center")
        scale = source.scale or (self.scale if train else (1.0, 1.0))
        hflip = source.hflip if source.hflip is not None else (self.hflip if train else 0.0)
        allow_upscale = source.allow_upscale if source.allow_upscale is not None else self.allow_upscale
        check = self.check_headers == "all" or (self.check_headers == "eval" and not train)
        settings: dict[str, Any] = {
            "image_size": self.image_size,
            "mask": self.train_mask if train else self.eval_mask,
            "train": train,
            "crop": crop,
            "scale": scale,
            "hflip": hflip,
            "allow_upscale": allow_upscale,
            "on_bad_image": policy,
            "length": source.length,
            "check_headers": check,
            "seed": self.seed,
        }
        try:
            if self.format == "shards":
                # a test split that is the val split (test: null) was written once, as val
                written_as = "val" if split == "test" and self.sources["test"] is self.sources["val"] else split
                return ShardDataset(open_split(self.shards, written_as, self.shard_cache), source, **settings)
            return ImageDataset(source, **settings)
        except DataError as err:
            raise DataError(f"data.{split}: {err}") from err

    def setup(self, stage: str | None = None) -> None:
        for split in _STAGE_SPLITS.get(stage, _SPLITS):
            if split in self.datasets:
                continue
            if self.source(split) is None:
                if split == "train":
                    raise DataError("data.train is not configured: give a folder or a file list")
                continue
            if split == "test" and self.sources["test"] is self.sources["val"] and "val" in self.datasets:
                self.datasets["test"] = self.datasets["val"]
                continue
            self.datasets[split] = self.build_dataset(split)
            if split == "train":  # evaluation reads no mask file before its first batch
                _check_mask_files(self.train_mask)
        self._refuse_shared_files()

    def _refuse_shared_files(self) -> None:
        """Training images must not be evaluation images: refuse a train split that holds files of the val or test
        split's folder (e.g. reached through a symlinked folder), unless both splits are the same files on purpose."""
        train = self.datasets.get("train")
        for split in ("val", "test"):
            other = self.datasets.get(split)
            if train is None or other is None or (split == "test" and other is self.datasets.get("val")):
                continue
            shared = shared_files(train.paths, other.paths)
            if not shared or len(shared) == len(train.paths) == len(other.paths):
                continue
            path, twin = shared[0]
            how = f" (as {path}, through a symlinked folder)" if str(path) != str(twin) else ""
            raise DataError(
                f"data.train and data.{split} share {len(shared)} image file(s), e.g. {twin}{how}: a model must "
                f"not be evaluated on its training images; keep the splits in separate folders (remove the link)"
            )

    def teardown(self, stage: str | None = None) -> None:
        skipped = self.skipped_paths
        if skipped:
            shown = "; ".join(skipped[:10]) + (f"; ... ({len(skipped) - 10} more)" if len(skipped) > 10 else "")
            warnings.warn(f"{len(skipped)} bad image(s) were skipped: {shown}", stacklevel=2)

    # -- dataloaders ---------------------------------------------------------------------------------------------

    def _rank(self) -> int:
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            return int(trainer.global_rank)
        return int(os.environ.get("RANK", 0))

    def _dataset(self, split: str) -> ImageDataset:
        if split not in self.datasets:
            self.setup({"train": "fit", "val": "validate", "test": "test"}[split])
        if split not in self.datasets:
            raise DataError(f"data.{split} is not configured")
        return self.datasets[split]

    def _loader(self, dataset: ImageDataset, batch_size: int, train: bool) -> DataLoader:
        workers = self.num_workers
        settings: dict[str, Any] = {
            "batch_size": batch_size,
            "drop_last": train and self.drop_last and len(dataset) >= batch_size,
            "num_workers": workers,
            "pin_memory": self.pin_memory,
            "persistent_workers": self.persistent_workers and workers > 0,
            "collate_fn": collate_samples,
        }
        if not train:
            return DataLoader(dataset, shuffle=False, **settings)
        # Training: the order is a function of (seed, epoch) and the position in the epoch is checkpointed, so a
        # resumed run continues with exactly the samples the uninterrupted one would have seen (data.sampling).
        sampler = EpochSampler(dataset, num_replicas=self._world_size(), rank=self._rank(), seed=self.seed)
        return ResumableDataLoader(dataset, sampler=sampler, consumed=self._consumed_batches, **settings)

    def _world_size(self) -> int:
        trainer = getattr(self, "trainer", None)
        return int(getattr(trainer, "world_size", 1) or 1) if trainer is not None else 1

    def _consumed_batches(self) -> int:
        """Training batches of the current epoch that the run has trained on (one per DMFN iteration): what a
        checkpoint written now must skip when the run resumes."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0
        per_epoch = trainer.num_training_batches
        done = iterations_of(trainer.global_step) - trainer.current_epoch * per_epoch
        return int(min(max(done, 0), per_epoch)) if per_epoch != float("inf") else int(max(done, 0))

    def train_dataloader(self) -> DataLoader:
        return self._loader(self._dataset("train"), self.batch_size, train=True)

    def val_dataloader(self) -> DataLoader | list:
        if self.source("val") is None:
            return []
        return self._loader(self._dataset("val"), self.eval_batch_size, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self._dataset("test"), self.eval_batch_size, train=False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    # -- reporting -----------------------------------------------------------------------------------------------

    @property
    def sizes(self) -> dict[str, dict[str, int]]:
        """``{split: {"files": ..., "samples": ..., "batches": ..., "skipped": ...}}`` for the splits set up."""
        out = {}
        for split, ds in self.datasets.items():
            bs = self.batch_size if split == "train" else self.eval_batch_size
            drop = split == "train" and self.drop_last and len(ds) >= bs
            batches = len(ds) // bs if drop else -(-len(ds) // bs)
            out[split] = {"files": ds.num_files, "samples": len(ds), "batches": batches, "skipped": ds.skipped_count}
        return out

    def describe(self) -> str:
        """One line per split set up, for the trainer's start-up summary."""
        lines = []
        for split, info in self.sizes.items():
            ds = self.datasets[split]
            lines.append(
                f"{split}: {info['samples']} samples from {info['files']} files in {ds.source.describe()} "
                f"({info['batches']} batches, {ds.image_size}px, crop={ds.crop}, mask={type(ds.mask).__name__}"
                + (f", skipped={info['skipped']}" if info["skipped"] else "")
                + ")"
            )
        return "\n".join(lines)

    def _unique_datasets(self) -> list[ImageDataset]:
        return list({id(ds): ds for ds in self.datasets.values()}.values())

    @property
    def skipped_count(self) -> int:
        """Bad images skipped so far over all splits (including those found in DataLoader workers)."""
        return sum(ds.skipped_count for ds in self._unique_datasets())

    @property
    def skipped_paths(self) -> list[str]:
        seen: dict[str, None] = {}
        for ds in self._unique_datasets():
            seen.update(dict.fromkeys(ds.skipped_paths))
        return list(seen)

    def __repr__(self) -> str:
        specs: Mapping[str, Any] = {k: (v.describe() if v else None) for k, v in self.sources.items()}
        return f"{type(self).__name__}(root={self.root!r}, image_size={self.image_size}, splits={dict(specs)})"
