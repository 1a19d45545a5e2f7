"""EpochSampler and ResumableDataLoader: the order of an epoch is a function of (seed, epoch), sharded by rank, and
a loader given back its state skips exactly the samples the run consumed."""

from __future__ import annotations

import pytest
from torch.utils.data import Dataset

from dmfn_lightning.data.sampling import EpochSampler, ResumableDataLoader


class _Keys(Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key):
        return key


def test_the_order_is_a_function_of_seed_and_epoch():
    data = _Keys(20)
    first, again = EpochSampler(data, seed=3), EpochSampler(data, seed=3)
    first.set_epoch(4), again.set_epoch(4)
    assert list(first) == list(again) and sorted(i for _, i in first) == list(range(20))
    assert all(epoch == 4 for epoch, _ in first)
    other = EpochSampler(data, seed=3)
    other.set_epoch(5)
    assert [i for _, i in other] != [i for _, i in first]


def test_ranks_take_disjoint_interleaved_shares_of_one_permutation():
    data = _Keys(10)
    whole = [i for _, i in EpochSampler(data, seed=1)]
    shares = [[i for _, i in EpochSampler(data, num_replicas=2, rank=r, seed=1)] for r in (0, 1)]
    assert shares[0] == whole[0::2] and shares[1] == whole[1::2]


def _loader(data, batch_size: int, consumed: int, replicas: int = 1, rank: int = 0) -> ResumableDataLoader:
    sampler = EpochSampler(data, num_replicas=replicas, rank=rank, seed=7)
    return ResumableDataLoader(
        data, batch_size=batch_size, sampler=sampler, consumed=lambda: consumed, collate_fn=lambda batch: batch
    )


def test_a_loader_given_its_state_skips_the_consumed_batches():
    data = _Keys(12)
    whole = [key for batch in _loader(data, 2, 0) for key in batch]
    state = _loader(data, 2, 3).state_dict()
    assert state == {"epoch": 0, "batches": 3, "batch_size": 2, "num_replicas": 1}
    resumed = _loader(data, 2, 0)
    resumed.load_state_dict(state)
    assert [key for batch in resumed for key in batch] == whole[6:]
    assert [key for batch in resumed for key in batch] == whole  # the next pass is a whole epoch again


def test_another_batch_size_skips_the_same_samples_and_says_so():
    data = _Keys(12)
    whole = [key for batch in _loader(data, 2, 0) for key in batch]
    resumed = _loader(data, 3, 0)
    with pytest.warns(UserWarning, match=r"data.batch_size=3 on 1 process\(es\) where the checkpoint had 2 on 1"):
        resumed.load_state_dict({"epoch": 0, "batches": 3, "batch_size": 2, "num_replicas": 1})
    assert [key for batch in resumed for key in batch] == whole[6:]


def test_the_loader_needs_an_epoch_sampler():
    with pytest.raises(TypeError, match="EpochSampler"):
        ResumableDataLoader(_Keys(4), batch_size=2, consumed=lambda: 0)
