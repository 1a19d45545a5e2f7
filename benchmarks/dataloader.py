"""Data-loading throughput on the built-in demo photos: images/s per DataLoader worker count.

    python -m benchmarks.dataloader                       # 256 px, 0 .. cpu_count workers, random_box holes
    python -m benchmarks.dataloader --workers 0 2 4 --mask free_form --batches 30 --json

Each measurement builds a fresh :class:`~dmfn_lightning.data.DemoDataModule` (bundled scikit-image photos, no
download; random square crops of 35-100 % of the short side, bicubic resize, flips, holes), discards ``warmup``
batches (worker start-up and first decodes) and times the next ``batches`` batches. ``measure_dataloader`` is
importable by other benchmark runners.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import numpy as np

from dmfn_lightning.data import DemoDataModule
from dmfn_lightning.data.masks import CenterMask, FreeFormMask, MaskGenerator, MixedMask, RandomBoxMask

MASKS = {
    "random_box": RandomBoxMask,
    "center": CenterMask,
    "free_form": FreeFormMask,
    "mixed": lambda: MixedMask({"free_form": FreeFormMask(), "random_box": RandomBoxMask()}, [1.0, 0.5], "union"),
}


def measure_dataloader(
    num_workers: int,
    image_size: int = 256,
    batches: int = 20,
    batch_size: int = 16,
    mask: str | MaskGenerator = "random_box",
    warmup: int = 2,
    seed: int = 0,
) -> dict[str, Any]:
    """Time ``batches`` training batches of the demo data; returns a dict with ``images_per_s`` and the setup."""
    generator = MASKS[mask]() if isinstance(mask, str) else mask
    dm = DemoDataModule(
        image_size=image_size,
        batch_size=batch_size,
        train_length=(batches + warmup) * batch_size,
        num_workers=num_workers,
        persistent_workers=False,
        pin_memory=False,
        train_mask=generator,
        seed=seed,
    )
    start = time.perf_counter()
    dm.setup("fit")
    iterator = iter(dm.train_dataloader())
    for _ in range(warmup):
        next(iterator)
    startup = time.perf_counter() - start
    start = time.perf_counter()
    images = 0
    for batch in iterator:
        images += batch["image"].shape[0]
    seconds = time.perf_counter() - start
    return {
        "num_workers": num_workers,
        "image_size": image_size,
        "batch_size": batch_size,
        "batches": images // batch_size,
        "images": images,
        "mask": type(generator).__name__,
        "seconds": round(seconds, 4),
        "images_per_s": round(images / seconds, 1) if seconds > 0 else float("inf"),
        "ms_per_image": round(1000 * seconds / max(images, 1), 2),
        "startup_s": round(startup, 3),
        "cpu_count": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=list(range((os.cpu_count() or 1) + 1)))
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--mask", choices=sorted(MASKS), default="random_box")
    parser.add_argument("--repeats", type=int, default=1, help="report the best of N runs per worker count")
    parser.add_argument("--json", action="store_true", help="print one JSON object per line instead of a table")
    args = parser.parse_args(argv)

    if not args.json:
        print(
            f"demo photos, {args.image_size}x{args.image_size}, batch {args.batch_size}, {args.batches} timed "
            f"batches, mask {args.mask}, {os.cpu_count()} CPUs"
        )
        print(f"{'workers':>7}  {'images/s':>9}  {'ms/image':>8}  {'startup s':>9}")
    for workers in args.workers:
        runs = [
            measure_dataloader(workers, args.image_size, args.batches, args.batch_size, args.mask)
            for _ in range(max(1, args.repeats))
        ]
        best = max(runs, key=lambda r: r["images_per_s"])
        best["images_per_s_runs"] = [r["images_per_s"] for r in runs]
        best["images_per_s_median"] = float(np.median(best["images_per_s_runs"]))
        if args.json:
            print(json.dumps(best))
        else:
            print(
                f"{workers:>7}  {best['images_per_s']:>9.1f}  {best['ms_per_image']:>8.2f}  {best['startup_s']:>9.2f}"
            )
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
