"""Shards: written byte for byte from an image folder with an index and checksums, resumably; read back as the same
batches as the folder; a corrupt, missing or foreign shard is one clear error; a URL is copied into a cache once."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from pathlib import Path

import pytest
import torch

import dmfn_lightning.data.shards.writer as writer_module
from dmfn_lightning.core.errors import DataError
from dmfn_lightning.data.shards import ShardIndex, fetch_split, open_split, plan_shards
from dmfn_lightning.data.shards.cli import parse_size
from dmfn_lightning.data.shards.location import cache_root, verify
from tests.cli import run_module
from tests.data.shard_fakes import datamodule, image_folder, write

REPO = Path(__file__).resolve().parents[2]
KEYS = ("image", "mask", "bbox", "index")


@pytest.fixture
def folder(tmp_path) -> Path:
    return image_folder(tmp_path / "images")


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A private shard cache (verification records, copies of URL shards), never ~/.cache."""
    path = tmp_path / "cache"
    monkeypatch.setenv("DMFN_SHARD_CACHE", str(path))
    return path


def _files(split_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(split_dir.iterdir())}


def _flip_byte(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def test_shards_hold_the_original_bytes_in_folder_order_with_checksums(folder, tmp_path, cache):
    summaries = write(folder, tmp_path / "shards")
    assert [s["split"] for s in summaries] == ["train", "val"]  # test: null is the val split, written once
    listed = datamodule(folder).build_dataset("train").paths
    index = ShardIndex.load(tmp_path / "shards" / "train")
    assert [folder / "train" / p for p in index.paths] == listed  # sample i of the shards is file i of the folder
    assert len(index.shards) == 3 and summaries[0]["shards"] == 3  # 12 images, at most 5 a shard
    suffixes = set()
    for number, entry in enumerate(index.shards):
        shard = index.shard_path(number)
        assert hashlib.sha256(shard.read_bytes()).hexdigest() == entry["sha256"]
        assert shard.stat().st_size == entry["bytes"]
        with tarfile.open(shard) as tar:  # a plain (WebDataset) tar: <key>.<ext> members
            members = tar.getmembers()
            for member, path, offset, size in zip(members, entry["paths"], entry["offsets"], entry["sizes"]):
                original = (folder / "train" / path).read_bytes()
                assert tar.extractfile(member).read() == original  # JPEGs not re-encoded, PNGs lossless
                assert member.name.split(".")[1] == Path(path).suffix[1:]
                assert member.offset_data == offset and member.size == size
                suffixes.add(Path(path).suffix)
    assert suffixes == {".jpg", ".png"}


def test_shard_plans_respect_size_and_count():
    assert plan_shards([100] * 7, max_bytes=10**9, max_samples=3) == [range(0, 3), range(3, 6), range(6, 7)]
    # 1024 bytes of data + a 512-byte header each: two fit in 3072 bytes, a huge file gets a shard of its own
    assert plan_shards([1024, 1024, 1024, 10**6, 10], 3072, 100) == [range(0, 2), range(2, 3), range(3, 4), range(4, 5)]
    assert parse_size("512MB") == 512 * 10**6 and parse_size("1GiB") == 2**30 and parse_size("4096") == 4096


def test_an_interrupted_write_resumes_and_ends_with_the_same_shards(folder, tmp_path, monkeypatch, cache):
    whole = tmp_path / "whole"
    write(folder, whole)
    out = tmp_path / "out"
    real = writer_module._write_tar
    calls = []

    def dies_on_the_third_shard(out_file, *args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # killed while writing shard 2 of train
        return real(out_file, *args)

    monkeypatch.setattr(writer_module, "_write_tar", dies_on_the_third_shard)
    with pytest.raises(KeyboardInterrupt):
        write(folder, out)
    monkeypatch.setattr(writer_module, "_write_tar", real)
    assert sorted(p.name for p in (out / "train").glob("shard-*.tar")) == ["shard-000000.tar", "shard-000001.tar"]
    assert not (out / "train" / "index.json").exists()  # not complete: no index
    (out / "train" / ".shard-000002.tar.x1y2.tmp").write_bytes(b"half a shard")  # as a SIGKILL would leave it
    _flip_byte(out / "train" / "shard-000001.tar", 600)  # damaged since: written again, not kept

    summaries = write(folder, out)
    assert (summaries[0]["kept"], summaries[0]["written"]) == (1, 2)
    assert _files(out / "train") == _files(whole / "train")  # same shards and index, no tmp file, no journal
    assert _files(out / "val") == _files(whole / "val")
    again = write(folder, out)  # complete: nothing to do
    assert [s["written"] for s in again] == [0, 0]


def test_an_out_folder_holding_other_data_is_refused(folder, tmp_path, cache):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="holds other data"):
        write(folder, out)
    other = tmp_path / "other"
    write(folder, other)
    (folder / "train" / "img_000.png").unlink()  # other files now: not the data of those shards
    with pytest.raises(DataError, match="holds shards of other files"):
        write(folder, other)


def test_the_writer_command_writes_any_data_config_and_refuses_in_one_line(folder, tmp_path):
    out = tmp_path / "shards"
    args = ["write", "data=folder", f"data.root={folder}", f"out={out}", "shard_samples=4", "progress=false"]
    done = run_module("data.shards", args, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "train: 12 images in 3 shards" in done.stdout and "val: 4 images in 1 shards" in done.stdout
    assert len(ShardIndex.load(out / "train")) == 12
    (out / "README").write_text("not a shard")
    refused = run_module("data.shards", args, cwd=REPO, timeout=120)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"error: out={out} holds other data (README); choose an empty or new folder"
    ]


@pytest.mark.parametrize("workers", [0, 2])
def test_the_first_batches_from_shards_equal_those_from_the_folder(folder, tmp_path, cache, workers):
    write(folder, tmp_path / "shards")
    plain = datamodule(folder, num_workers=workers)
    sharded = datamodule(folder, num_workers=workers, format="shards", shards=str(tmp_path / "shards"))
    for dm in (plain, sharded):
        dm.setup("fit")
    for epoch in (0, 1):
        compared = 0
        for dm in (plain, sharded):
            dm.train_dataloader().sampler.set_epoch(epoch)
        for a, b in zip(plain.train_dataloader(), sharded.train_dataloader()):
            assert all(torch.equal(a[k], b[k]) for k in KEYS), (epoch, a["index"], b["index"])
            compared += 1
        assert compared == 4  # 12 samples in batches of 3: the whole epoch
    batches = list(zip(plain.val_dataloader(), sharded.val_dataloader()))
    assert len(batches) == 2 and all(torch.equal(a[k], b[k]) for a, b in batches for k in KEYS)
    assert [Path(p).name for p in batches[0][1]["path"]] == [Path(p).name for p in batches[0][0]["path"]]


def test_a_shard_dataset_opens_each_shard_once_not_each_image(folder, tmp_path, cache):
    write(folder, tmp_path / "shards")
    dm = datamodule(folder, format="shards", shards=str(tmp_path / "shards"))
    dm.setup("fit")
    for _ in range(2):  # two epochs
        for _ in dm.train_dataloader():
            pass
    assert dm.datasets["train"].reader.opened == 3  # the three train shards, for 24 samples


def test_the_test_split_comes_from_val_shards_when_it_is_the_val_split(folder, tmp_path, cache):
    write(folder, tmp_path / "shards")
    dm = datamodule(folder, format="shards", shards=str(tmp_path / "shards"))
    dm.setup("test")
    assert dm.datasets["test"].index.folder == tmp_path / "shards" / "val"
    assert len(dm.datasets["test"]) == 4


def test_a_corrupt_or_missing_shard_is_one_data_error_naming_it(folder, tmp_path, cache):
    shards = tmp_path / "shards"
    write(folder, shards)
    dm = datamodule(folder, format="shards", shards=str(shards))
    dm.setup("fit")  # verified once, and remembered
    shard = shards / "train" / "shard-000001.tar"
    _flip_byte(shard, 1000)  # a new mtime: hashed again, caught
    with pytest.raises(DataError, match=r"shard-000001\.tar: shard is corrupt \(its sha256 differs"):
        datamodule(folder, format="shards", shards=str(shards)).setup("fit")
    shard.unlink()
    with pytest.raises(DataError, match=r"^data\.train: .*shard-000001\.tar: shard is missing"):
        datamodule(folder, format="shards", shards=str(shards)).setup("fit")
    (shards / "train" / "shard-000000.tar").write_bytes(b"short")
    with pytest.raises(DataError, match=r"shard-000000\.tar: shard is 5 bytes, its index says"):
        datamodule(folder, format="shards", shards=str(shards)).setup("fit")
    with pytest.raises(DataError, match="no shard index here"):
        datamodule(folder, format="shards", shards=str(tmp_path)).setup("fit")
    with pytest.raises(DataError, match=r"data\.format=shards needs data\.shards"):
        datamodule(folder, format="shards")


def test_an_unchanged_shard_is_hashed_once(folder, tmp_path, cache, monkeypatch):
    import dmfn_lightning.data.shards.index as index_module

    write(folder, tmp_path / "shards")
    hashed = []
    real = index_module.sha256_file
    monkeypatch.setattr(index_module, "sha256_file", lambda p: hashed.append(p) or real(p))
    for _ in range(2):
        open_split(tmp_path / "shards", "train")
    assert len(hashed) == 3  # the first start hashes the three shards, the second trusts its records


def test_a_url_is_copied_into_the_cache_once_and_a_changed_remote_is_noticed(folder, tmp_path, cache, no_network):
    remote = tmp_path / "bucket" / "places"
    write(folder, remote)
    url = remote.as_uri()  # file:///...: a "remote" that fsspec copies, as it would from s3:// or gs://
    index, copied = fetch_split(f"{url}/train", cache)
    assert copied == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    assert cache in index.folder.parents and _files(index.folder) == _files(remote / "train")
    index, copied = fetch_split(f"{url}/train", cache)
    assert copied == []  # reused

    plain = datamodule(folder)
    sharded = datamodule(folder, format="shards", shards=url)
    for dm in (plain, sharded):
        dm.setup("fit")
    a, b = next(iter(plain.train_dataloader())), next(iter(sharded.train_dataloader()))
    assert all(torch.equal(a[k], b[k]) for k in KEYS)
    assert sharded.datasets["train"].index.folder == index.folder  # read from the cache

    # The remote is rewritten from other images: its index changes, the stale cached shards are copied again.
    image_folder(tmp_path / "new", seed=1)
    for split in ("train", "val"):
        for path in (remote / split).iterdir():
            path.unlink()
    write(tmp_path / "new", remote)
    _, copied = fetch_split(f"{url}/train", cache)
    assert copied == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    fresh = datamodule(tmp_path / "new", format="shards", shards=url)
    fresh.setup("fit")
    new_plain = datamodule(tmp_path / "new")
    new_plain.setup("fit")
    a, b = next(iter(new_plain.train_dataloader())), next(iter(fresh.train_dataloader()))
    assert all(torch.equal(a[k], b[k]) for k in KEYS)

    _flip_byte(remote / "train" / "shard-000002.tar", 700)  # damaged at the source: never copied into the cache
    with pytest.raises(DataError, match=r"shard-000002\.tar: remote shard is corrupt"):
        fetch_split(f"{url}/train", tmp_path / "empty_cache")
    cached = sorted(p.name for p in (tmp_path / "empty_cache").rglob("*.tar"))
    assert cached == ["shard-000000.tar", "shard-000001.tar"]  # the good ones
    assert not list((tmp_path / "empty_cache").rglob("*.tmp"))
    os.remove(remote / "train" / "shard-000002.tar")
    with pytest.raises(DataError, match=r"shard-000002\.tar: remote shard is missing"):
        fetch_split(f"{url}/train", tmp_path / "empty_cache")
    with pytest.raises(DataError, match="no shard index there"):
        fetch_split(f"{url}/nothing", cache)


def _in_two_processes(work) -> list:
    """What ``work()`` returns in each of two processes started together, as the DDP ranks of a node start. They
    are forked, so they keep what the test patched (slow copies, slow hashes: the two overlap)."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    results = context.Queue()
    ranks = [context.Process(target=lambda: results.put(work())) for _ in range(2)]
    for rank in ranks:
        rank.start()
    found = [results.get(timeout=60) for _ in ranks]
    for rank in ranks:
        rank.join(timeout=60)
        assert rank.exitcode == 0
    return found


def test_processes_sharing_a_cache_copy_each_shard_once(folder, tmp_path, cache, monkeypatch):
    """The DDP ranks of one node start together on an empty cache: one copies each shard, the others wait."""
    import time

    import dmfn_lightning.data.shards.location as location

    remote = tmp_path / "bucket"
    write(folder, remote)
    real_copy = location._copy

    def slow_copy(*args, **kwargs):  # long enough that the two processes overlap on every shard
        time.sleep(0.5)
        real_copy(*args, **kwargs)

    monkeypatch.setattr(location, "_copy", slow_copy)
    copied = _in_two_processes(lambda: fetch_split(f"{remote.as_uri()}/train", cache)[1])
    assert sorted(copied[0] + copied[1]) == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    index, again = fetch_split(f"{remote.as_uri()}/train", cache)
    assert again == [] and _files(index.folder) == _files(remote / "train")


def test_processes_sharing_a_cache_hash_each_shard_once(folder, tmp_path, cache, monkeypatch):
    import time

    import dmfn_lightning.data.shards.index as index_module

    write(folder, tmp_path / "shards")
    real = index_module.sha256_file

    def slow_hash(path):  # long enough that the two processes overlap on every shard
        time.sleep(0.4)
        return real(path)

    monkeypatch.setattr(index_module, "sha256_file", slow_hash)
    hashed = _in_two_processes(lambda: verify(ShardIndex.load(tmp_path / "shards" / "train"), cache_root()))
    assert sum(hashed) == 3  # each shard hashed once in all; the other process found its record


def test_an_unreadable_url_scheme_is_one_data_error(tmp_path, cache):
    with pytest.raises(DataError, match=r"data.shards=nosuchscheme://bucket/x/train: cannot read this URL"):
        open_split("nosuchscheme://bucket/x", "train")


def test_the_index_is_json_with_format_and_version(folder, tmp_path, cache):
    write(folder, tmp_path / "shards")
    raw = json.loads((tmp_path / "shards" / "val" / "index.json").read_text())
    assert (raw["format"], raw["version"], raw["split"], raw["samples"]) == ("dmfn-shards", 1, "val", 4)
    (tmp_path / "shards" / "val" / "index.json").write_text('{"format": "other"}')
    with pytest.raises(DataError, match="not a readable shard index"):
        ShardIndex.load(tmp_path / "shards" / "val")
