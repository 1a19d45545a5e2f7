"""Sharded data: a split written once as WebDataset tar shards plus an index, read by random access (docs/design.md).

``python -m dmfn_lightning.data.shards write data=places2 out=DIR`` writes them (:mod:`.writer`, :mod:`.cli`);
``data.format=shards data.shards=DIR_OR_URL`` trains and evaluates from them (:mod:`.location` finds and checks
them, :mod:`.dataset` reads them); :mod:`.index` is the format.
"""

from dmfn_lightning.data.shards.dataset import ShardDataset, ShardReader
from dmfn_lightning.data.shards.index import ShardIndex
from dmfn_lightning.data.shards.location import cache_root, fetch_split, open_split
from dmfn_lightning.data.shards.writer import plan_shards, write_split

__all__ = [
    "ShardDataset",
    "ShardIndex",
    "ShardReader",
    "cache_root",
    "fetch_split",
    "open_split",
    "plan_shards",
    "write_split",
]
