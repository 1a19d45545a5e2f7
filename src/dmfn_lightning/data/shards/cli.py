"""The shard writer's command line: any ``data=`` config (with the same overrides as training) -> shards of its splits.

    python -m dmfn_lightning.data.shards write data=places2 out=/scratch/shards/places2
    python -m dmfn_lightning.data.shards write data=folder data.root=/my/images out=DIR splits=[train] \
        shard_bytes=256MB shard_samples=5000 progress=false

``out=`` gets one folder per split (``train/``, ``val/``, and ``test/`` when the test split is not the val
split), each with its shards and ``index.json``; train with ``data.format=shards data.shards=<out>`` (or the
``data=<dataset>_shards`` configs, which read ``$DMFN_SHARDS/<dataset>``). Run the same command again after an
interruption: finished shards are kept. Bad input is one ``error:`` line.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dmfn_lightning.core.config import compose
from dmfn_lightning.core.errors import ConfigError, DataError, exit_on_user_error
from dmfn_lightning.core.file_lists import absolute_path
from dmfn_lightning.data.datamodule import DMFNDataModule
from dmfn_lightning.data.shards.writer import SPLITS, write_split

__all__ = ["main", "parse_size", "write_shards"]

_USAGE = (
    "usage: python -m dmfn_lightning.data.shards write data=<dataset> out=DIR [splits=[train,val,test]] "
    "[shard_bytes=512MB] [shard_samples=10000] [progress=true] [other data overrides, as for training]"
)
_OPTIONS = {"out", "splits", "shard_bytes", "shard_samples", "progress"}
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def parse_size(text: str) -> int:
    """``"512MB"``, ``"1GiB"``, ``"1000000"`` -> bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(text))
    unit = match.group(2).upper() if match else None
    if match is None or unit not in _UNITS:
        raise ConfigError(f"shard_bytes={text!r} is not a size (use e.g. 512MB, 1GB or a number of bytes)")
    return int(float(match.group(1)) * _UNITS[unit])


def _split_args(argv: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    if not argv or argv[0] != "write":
        raise ConfigError(f"the only command is `write` ({_USAGE})")
    options, overrides = {}, []
    for arg in argv[1:]:
        key, sep, value = arg.partition("=")
        if sep and key in _OPTIONS:
            options[key] = value
        elif sep:
            overrides.append(arg)
        else:
            raise ConfigError(f"unexpected argument {arg!r} ({_USAGE})")
    if "out" not in options:
        raise ConfigError(f"out=DIR is required ({_USAGE})")
    return options, overrides


def _datamodule(overrides: list[str]) -> Any:
    """The data module that ``python -m dmfn_lightning.train <overrides>`` would build (its sources only)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import HydraException
    from hydra.utils import instantiate

    try:
        cfg = compose("train", overrides)
    except HydraException as err:
        raise ConfigError(f"{err} ({_USAGE})") from None
    try:
        datamodule = instantiate(cfg.data)
    finally:  # composed, not run by Hydra: refusals are the one `error:` line of a non-Hydra command
        HydraConfig.instance().cfg = None
    if not isinstance(datamodule, DMFNDataModule):
        raise ConfigError(f"data={cfg.hydra.runtime.choices.get('data')} has no image folders to shard ({_USAGE})")
    return datamodule


def write_shards(
    datamodule: Any,
    out: str | Path,
    splits: Sequence[str] = SPLITS,
    max_bytes: int = 512 * 10**6,
    max_samples: int = 10_000,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Write the configured ``splits`` of ``datamodule`` under ``out/<split>/``; returns one summary per split.
    A test split that is the val split (``test: null``) is not written twice: the reader takes ``val/``."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ConfigError(f"splits={list(splits)}: unknown split {unknown[0]!r} (choose from {list(SPLITS)})")
    out = absolute_path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"out={out} is a file, not a folder (choose another out=)")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in SPLITS)
        if foreign:
            raise DataError(
                f"out={out} holds other data ({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); "
                "choose an empty or new folder"
            )
    same_as_val = datamodule.sources.get("test") is datamodule.sources.get("val")
    chosen = [s for s in splits if datamodule.sources.get(s) is not None and not (s == "test" and same_as_val)]
    if not chosen:
        raise ConfigError(f"none of the splits {list(splits)} is configured in this data config")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    summaries = []
    with Progress(*columns, console=Console(stderr=True), disable=not progress) as bar:
        for split in chosen:
            task = bar.add_task(f"{split}: listing", total=None)
            source = datamodule.source(split)
            try:

                def advance(n: int, total: int, task: Any = task) -> None:
                    bar.update(task, advance=n, total=total)

                bar.update(task, description=f"{split}: shards")
                summary = write_split(source, out / split, split, max_bytes, max_samples, advance=advance)
            except DataError as err:
                raise DataError(f"data.{split}: {err}") from err
            summaries.append(summary)
    return summaries


def _cli(argv: Sequence[str]) -> int:
    options, overrides = _split_args(argv)
    splits = [s.strip() for s in options.get("splits", ",".join(SPLITS)).strip("[]").split(",") if s.strip()]
    try:
        max_samples = int(options.get("shard_samples", 10_000))
    except ValueError:
        raise ConfigError(f"shard_samples={options['shard_samples']!r} is not a whole number") from None
    progress = options.get("progress", "true").lower() not in ("false", "0", "no")
    datamodule = _datamodule(overrides)
    summaries = write_shards(
        datamodule,
        options["out"],
        splits,
        max_bytes=parse_size(options.get("shard_bytes", "512MB")),
        max_samples=max_samples,
        progress=progress,
    )
    for s in summaries:
        print(
            f"{s['split']}: {s['samples']} images in {s['shards']} shards ({s['bytes'] / 1e6:.1f} MB; "
            f"{s['written']} written, {s['kept']} kept) in {s['folder']}"
        )
    return 0


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> None:
    """``python -m dmfn_lightning.data.shards write data=<dataset> out=DIR ...``."""
    sys.exit(_cli(sys.argv[1:] if argv is None else argv))
