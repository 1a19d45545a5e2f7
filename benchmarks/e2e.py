"""End-to-end training speed: ``DMFNModule`` under a ``Trainer`` fed by the real data module (``conf/data/folder.yaml``)
from JPEG files, with DataLoader workers and pinned memory, as ``python -m dmfn_lightning.train data=folder`` runs.

Reported: iterations/s over the timed iterations (synchronised only at the window's ends), and the median gap
between one iteration's end and the next one's start (mostly waiting for the next batch: the input stall).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import (
    Sizes,
    compose_train_config,
    enable_tf32,
    network_and_run_overrides,
    peak_rss_mib,
    synchronize,
)


def bench_e2e(
    sizes: Sizes,
    device: str,
    warmup: int,
    iterations: int,
    workers: int,
    precision: str = "bf16-mixed",
    images: int = 64,
) -> dict[str, Any]:
    import pytorch_lightning as pl

    from benchmarks.dataloader import write_photo_jpegs
    from dmfn_lightning import train as train_mod

    if device == "cuda":
        enable_tf32()
    with tempfile.TemporaryDirectory(prefix="dmfn_e2e_") as tmp:
        root = Path(tmp) / "images"
        write_photo_jpegs(root / "train", count=images, min_side=sizes.image_size)
        total = warmup + iterations
        overrides = [
            "data=folder",
            f"data.root={root}",
            "data.train.root=train",
            f"+data.train.length={(total + 2) * sizes.batch}",  # one epoch covers the run: no epoch boundary
            "data.val=null",
            f"data.image_size={sizes.image_size}",
            f"data.batch_size={sizes.batch}",
            f"data.num_workers={workers}",
            f"data.pin_memory={'true' if device == 'cuda' else 'false'}",
            f"trainer.precision={precision}",
            *network_and_run_overrides(sizes, device, total),
        ]
        cfg = compose_train_config(overrides, "e2e")
        pl.seed_everything(0)
        datamodule = train_mod.setup_datamodule(cfg)
        module = train_mod.build_module(cfg)
        marks: dict[str, float] = {}
        gaps: list[float] = []

        class Clock(pl.Callback):
            def __init__(self) -> None:
                self.index = 0
                self.last_end: float | None = None

            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
                now = time.perf_counter()
                if self.last_end is not None and self.index > warmup:
                    gaps.append(now - self.last_end)
                if self.index == warmup:
                    synchronize(device)
                    marks["start"] = time.perf_counter()

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
                if self.index == total - 1:
                    synchronize(device)
                    marks["end"] = time.perf_counter()
                self.last_end = time.perf_counter()
                self.index += 1

        trainer = train_mod.build_trainer(cfg, Path(cfg.hydra.run.dir), [Clock()], [])
        trainer.fit(module, datamodule=datamodule)
    seconds = marks["end"] - marks["start"]
    return {
        "iterations": iterations,
        "warmup": warmup,
        "workers": workers,
        "pin_memory": device == "cuda",
        "precision": precision,
        "images_in_folder": images,
        "iterations_per_s": iterations / seconds if seconds > 0 else float("inf"),
        "images_per_s": iterations * sizes.batch / seconds if seconds > 0 else float("inf"),
        "gap_ms_median": 1000 * statistics.median(gaps) if gaps else None,
        "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None,
        "peak_rss_mib": peak_rss_mib(),
    }
