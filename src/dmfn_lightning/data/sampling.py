"""The order of training samples as a pure function of (seed, epoch), and a DataLoader that resumes mid-epoch.

A preempted week-long run must continue exactly where it stopped. Each training sample's crop, flip and hole are
drawn from ``numpy.random.default_rng([stream, seed, epoch, index])`` (:class:`~dmfn_lightning.data.datasets.
ImageDataset`), so what a sample looks like depends only on which sample it is; what is left is *which* samples
come next. :class:`EpochSampler` permutes the dataset with a generator seeded by (seed, epoch), gives each DDP rank
every ``world_size``-th index of that permutation, and yields ``(epoch, index)`` keys so the dataset knows the
epoch in every DataLoader worker. :class:`ResumableDataLoader` reports how many batches of the current epoch the
run has consumed (``state_dict``) and, given that state back (``load_state_dict``, called by Lightning when it
restores ``last.ckpt``), skips exactly those batches. Neither the number of workers nor their seeds enter the data,
so a run resumed with another ``data.num_workers`` stays exact; another batch size or world size changes which
samples form a batch, and the data module says so when it resumes.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sized
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler

__all__ = ["EpochSampler", "ResumableDataLoader", "SampleKey"]

SampleKey = tuple[int, int]  # (epoch, index)


class EpochSampler(DistributedSampler):
    """A shuffled, rank-sharded order of sample indices per epoch that can start part-way through an epoch.

    A :class:`~torch.utils.data.DistributedSampler` (so Lightning does not wrap it under DDP) whose permutation is
    ``torch.randperm`` with a generator seeded by ``seed + epoch``, padded to a multiple of ``num_replicas`` as
    DistributedSampler pads, of which rank ``r`` takes positions ``r, r + num_replicas, ...``. It yields
    ``(epoch, index)`` pairs. :meth:`start_at` makes the next iteration of epoch ``epoch`` begin at position
    ``skip`` of this rank's share.
    """

    def __init__(self, dataset: Sized, num_replicas: int = 1, rank: int = 0, seed: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self._start: tuple[int, int] | None = None  # (epoch, samples of this rank to skip)

    def start_at(self, epoch: int, skip: int) -> None:
        """Begin the next iteration at sample ``skip`` of this rank's share of epoch ``epoch``."""
        self.set_epoch(epoch)
        self._start = (int(epoch), int(skip))

    def order(self, epoch: int) -> list[int]:
        """This rank's indices for ``epoch``, in order."""
        generator = torch.Generator()
        generator.manual_seed(self.seed + int(epoch))
        indices = torch.randperm(len(self.dataset), generator=generator).tolist()
        indices += indices[: self.total_size - len(indices)]  # pad as DistributedSampler does
        return indices[self.rank : self.total_size : self.num_replicas]

    def __iter__(self) -> Iterator[SampleKey]:  # type: ignore[override]
        epoch = self.epoch
        skip = 0
        if self._start is not None:
            start_epoch, start_skip = self._start
            self._start = None
            if start_epoch == epoch:
                skip = start_skip
        return iter([(epoch, index) for index in self.order(epoch)[skip:]])


class ResumableDataLoader(DataLoader):
    """A training DataLoader whose position in the epoch is part of the checkpoint.

    ``consumed`` returns how many batches of the current epoch the run has trained on when a checkpoint is written
    (the data module derives it from the trainer's iteration count; counting the batches this loader yielded would
    be wrong, because Lightning fetches one batch ahead). Lightning saves :meth:`state_dict` in the checkpoint's
    loop state and calls :meth:`load_state_dict` before the first batch of a resumed run.
    """

    def __init__(self, *args: Any, consumed: Callable[[], int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.sampler, EpochSampler):
            raise TypeError(f"ResumableDataLoader needs an EpochSampler, got {type(self.sampler).__name__}")
        self._consumed = consumed

    def state_dict(self) -> dict[str, int]:
        assert isinstance(self.sampler, EpochSampler)
        return {
            "epoch": int(self.sampler.epoch),
            "batches": int(self._consumed()),
            "batch_size": int(self.batch_size or 0),
            "num_replicas": int(self.sampler.num_replicas),
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        assert isinstance(self.sampler, EpochSampler)
        batch_size, replicas = int(self.batch_size or 0), int(self.sampler.num_replicas)
        old_batch_size, old_replicas = state.get("batch_size", batch_size), state.get("num_replicas", replicas)
        # Rank r takes positions r, r + R, ... of the epoch's permutation, so what the run consumed is a prefix of
        # it, whatever the batch size and world size: skip the same prefix with the new ones.
        consumed = state["batches"] * old_batch_size * old_replicas
        if (old_batch_size, old_replicas) != (batch_size, replicas):
            warnings.warn(
                f"resuming with data.batch_size={batch_size} on {replicas} process(es) where the checkpoint had "
                f"{old_batch_size} on {old_replicas}: the rest of epoch {state['epoch']} (from sample {consumed}) is "
                "batched differently, so this run is no longer the uninterrupted run's twin",
                stacklevel=2,
            )
        self.sampler.start_at(state["epoch"], consumed // replicas)
