"""Data-loading throughput on the built-in demo photos: images/s per DataLoader worker count.

    python -m benchmarks.dataloader                       # 256 px, 0 .. cpu_count workers, random_box holes
    python -m benchmarks.dataloader --workers 0 2 4 --mask free_form --batches 30 --json

Each measurement builds a fresh :class:`~dmfn_lightning.data.DemoDataModule` (bundled scikit-image photos, no
download; random square crops of 35-100 % of the short side, bicubic resize, flips, holes), discards ``warmup``
batches (worker start-up and first decodes) and times the next ``batches`` batches. ``measure_dataloader`` is
importable by other benchmark runners, as are the image-folder helpers used by the GPU suite:

* :func:`write_photo_jpegs`: a folder of JPEGs cut from the demo photos (what a real dataset looks like on disk);
* :func:`measure_folder_loader`: images/s of :class:`~dmfn_lightning.data.DMFNDataModule` over such a folder;
* :func:`measure_stages`: the per-image cost of each stage of a training sample, in the main process: JPEG decode,
  crop + resize (+ flip), conversion to a [-1, 1] tensor, hole generation, and batch collation.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import ensure_importable

ensure_importable()

from dmfn_lightning.data import DemoDataModule  # noqa: E402
from dmfn_lightning.masks import (  # noqa: E402
    CenterMask,
    FreeFormMask,
    MaskGenerator,
    MixedMask,
    RandomBoxMask,
)

MASKS = {
    "random_box": RandomBoxMask,
    "center": CenterMask,
    "free_form": FreeFormMask,
    "mixed": lambda: MixedMask({"free_form": FreeFormMask(), "random_box": RandomBoxMask()}, [1.0, 0.5], "union"),
}


def _started_loader(dm, warmup: int):
    """(seconds to set up ``dm`` and draw ``warmup`` batches, the train iterator after them)."""
    start = time.perf_counter()
    dm.setup("fit")
    iterator = iter(dm.train_dataloader())
    for _ in range(warmup):
        next(iterator)
    return time.perf_counter() - start, iterator


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
    startup, iterator = _started_loader(dm, warmup)
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


def write_photo_jpegs(
    folder: Path, count: int = 64, min_side: int = 256, seed: int = 0, quality: int = 90
) -> list[Path]:
    """``count`` JPEGs cut from the demo photos (random crops of 60-100 % of each photo, at least ``min_side`` on
    the short side where the photo allows; upscaled where it does not), like a dataset of camera images."""
    from PIL import Image

    from dmfn_lightning.core.decode import load_rgb
    from dmfn_lightning.data.demo import DEMO_PHOTOS, demo_photo_paths

    folder.mkdir(parents=True, exist_ok=True)
    photos = [load_rgb(p) for p in demo_photo_paths(sorted(DEMO_PHOTOS))]
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        img = photos[i % len(photos)]
        w, h = img.size
        cw, ch = (max(1, round(side * rng.uniform(0.6, 1.0))) for side in (w, h))
        left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        crop = img.crop((left, top, left + cw, top + ch))
        if min(crop.size) < min_side:
            scale = min_side / min(crop.size)
            crop = crop.resize((round(crop.width * scale) + 1, round(crop.height * scale) + 1), Image.BICUBIC)
        path = folder / f"photo_{i:04d}.jpg"
        crop.save(path, quality=quality)
        paths.append(path)
    return paths


def _training_datamodule(root: Path, shards: Path | None, length: int | None = None, **settings: Any):
    """A :class:`DMFNDataModule` training on the images in ``root`` (random_box holes, no header checks, no
    validation), read from ``shards`` written from ``root`` when given; ``settings``: its other arguments."""
    from dmfn_lightning.data import DMFNDataModule

    sharded = {"format": "shards", "shards": str(shards)} if shards is not None else {}
    return DMFNDataModule(
        train={"root": str(root), **({"length": length} if length is not None else {})},
        val=None,
        train_mask=RandomBoxMask(),
        check_headers="none",
        **sharded,
        **settings,
    )


def measure_folder_loader(
    root: Path,
    num_workers: int,
    image_size: int = 256,
    batch_size: int = 16,
    batches: int = 20,
    warmup: int = 2,
    pin_memory: bool = False,
    shards: Path | None = None,
) -> dict[str, Any]:
    """images/s of the training loader of :class:`DMFNDataModule` over the images in ``root`` (random crops,
    bicubic resize, random_box holes), pinned or not; read from ``shards`` written from ``root`` when given."""
    dm = _training_datamodule(
        root,
        shards,
        length=(batches + warmup) * batch_size,
        image_size=image_size,
        batch_size=batch_size,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=False,
    )
    startup, iterator = _started_loader(dm, warmup)
    start = time.perf_counter()
    images = sum(batch["image"].shape[0] for batch in iterator)
    seconds = time.perf_counter() - start
    return {
        "num_workers": num_workers,
        "pin_memory": pin_memory,
        "image_size": image_size,
        "batch_size": batch_size,
        "images": images,
        "seconds": round(seconds, 4),
        "images_per_s": round(images / seconds, 1) if seconds > 0 else float("inf"),
        "startup_s": round(startup, 3),
        "cpu_count": os.cpu_count(),
    }


def _count_opens(folders: list[Path]):
    """A context manager counting the files under ``folders`` that this process opens (``open`` and ``os.open``:
    PIL opens image files with the first, the shard reader shards with the second)."""
    import builtins
    import contextlib

    roots = [str(f.resolve()) for f in folders]
    counter = {"opened": 0}

    def counted(real):
        def wrapper(file, *args, **kwargs):
            if isinstance(file, str | os.PathLike) and os.path.abspath(file).startswith(tuple(roots)):
                counter["opened"] += 1
            return real(file, *args, **kwargs)

        return wrapper

    @contextlib.contextmanager
    def patched():
        real_open, real_os_open = builtins.open, os.open
        builtins.open, os.open = counted(real_open), counted(real_os_open)
        try:
            yield counter
        finally:
            builtins.open, os.open = real_open, real_os_open

    return patched()


def files_opened_per_epoch(root: Path, shards: Path | None = None) -> int:
    """Files opened to read one epoch (every image once) of the folder ``root``, or of its ``shards``, in one
    process (with DataLoader workers, the shard count holds per worker; the folder's is shared among them)."""
    dm = _training_datamodule(root, shards, image_size=64, batch_size=8, num_workers=0, drop_last=False)
    dm.setup("fit")
    loader = dm.train_dataloader()
    with _count_opens([root] + ([shards] if shards is not None else [])) as counter:
        for _ in loader:
            pass
    return counter["opened"]


def measure_folder_and_shards(
    root: Path,
    num_workers: int,
    image_size: int = 256,
    batch_size: int = 16,
    batches: int = 20,
    warmup: int = 2,
    repeats: int = 5,
) -> dict[str, Any]:
    """The training loader over the folder ``root`` and over shards written from it, with the same workers and
    settings: ``{"folder": {...}, "shards": {...}}`` with the median images/s of ``repeats`` timings, taken in
    turns (folder, shards, folder, ...) so that a slower moment of this shared machine hits both alike, each
    timing in ``runs_images_per_s``, the shards/folder ratio of the medians, and the files opened per epoch."""
    import tempfile

    from dmfn_lightning.data.files import ImageSource
    from dmfn_lightning.data.shards import write_split

    with tempfile.TemporaryDirectory(prefix="dmfn_shards_") as tmp:
        shards = Path(tmp) / "shards"
        start = time.perf_counter()
        summary = write_split(ImageSource(root=str(root)), shards / "train", "train", 256 * 10**6, 10_000)
        write_s = time.perf_counter() - start
        before = os.environ.get("DMFN_SHARD_CACHE")
        os.environ["DMFN_SHARD_CACHE"] = str(Path(tmp) / "cache")  # the shards' verification records: not ~/.cache
        try:
            runs: dict[str, list[dict[str, Any]]] = {"folder": [], "shards": []}
            for _ in range(max(1, repeats)):
                for name, where in (("folder", None), ("shards", shards)):
                    timing = measure_folder_loader(
                        root, num_workers, image_size, batch_size, batches, warmup, False, where
                    )
                    runs[name].append(timing)
            out = {}
            for name, timings in runs.items():
                speeds = sorted(t["images_per_s"] for t in timings)
                out[name] = {
                    **timings[0],
                    "images_per_s": round(statistics.median(speeds), 1),
                    "runs_images_per_s": [t["images_per_s"] for t in timings],
                }
            out["shards"]["ratio_to_folder"] = round(out["shards"]["images_per_s"] / out["folder"]["images_per_s"], 3)
            out["folder"]["files_opened_per_epoch"] = files_opened_per_epoch(root)
            out["shards"]["files_opened_per_epoch"] = files_opened_per_epoch(root, shards)
        finally:
            if before is None:
                os.environ.pop("DMFN_SHARD_CACHE", None)
            else:
                os.environ["DMFN_SHARD_CACHE"] = before
        out["shards"].update(shard_count=summary["shards"], write_s=round(write_s, 3))
        out["folder"]["files"] = out["shards"]["files"] = summary["samples"]
    return out


def measure_stages(
    files: list[Path], image_size: int = 256, batch_size: int = 16, images: int = 32, seed: int = 0
) -> dict[str, Any]:
    """Milliseconds per image of each stage of a training sample, one process, as ``ImageDataset`` does them."""
    import torch
    from PIL import Image

    from dmfn_lightning.core.decode import load_rgb
    from dmfn_lightning.data.datasets import collate_samples

    rng = np.random.default_rng(seed)
    mask_gen = RandomBoxMask()
    times = {"decode": 0.0, "crop_resize_flip": 0.0, "to_tensor": 0.0, "mask": 0.0, "collate": 0.0}
    samples: list[dict[str, Any]] = []
    collated = 0
    for i in range(images):
        t0 = time.perf_counter()
        img = load_rgb(files[i % len(files)])
        t1 = time.perf_counter()
        side = min(img.size)
        left = int(rng.integers(0, img.width - side + 1))
        top = int(rng.integers(0, img.height - side + 1))
        img = img.crop((left, top, left + side, top + side)).resize((image_size, image_size), Image.BICUBIC)
        if rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        t2 = time.perf_counter()
        image = torch.from_numpy(np.array(img, dtype=np.uint8, copy=True)).permute(2, 0, 1).float().div_(127.5).sub_(1)
        t3 = time.perf_counter()
        mask, bbox = mask_gen(image_size, image_size, rng)
        t4 = time.perf_counter()
        times["decode"] += t1 - t0
        times["crop_resize_flip"] += t2 - t1
        times["to_tensor"] += t3 - t2
        times["mask"] += t4 - t3
        samples.append(
            {
                "image": image,
                "mask": mask,
                "bbox": torch.tensor(bbox, dtype=torch.int64),
                "index": torch.tensor(i, dtype=torch.int64),
                "path": str(files[i % len(files)]),
            }
        )
        if len(samples) == batch_size:
            t5 = time.perf_counter()
            collate_samples(samples)
            times["collate"] += time.perf_counter() - t5
            collated += len(samples)
            samples = []
    per_image = {k: 1000 * v / (collated if k == "collate" else images) for k, v in times.items() if images}
    if not collated:
        per_image.pop("collate", None)
    total = sum(per_image.values())
    return {
        "images": images,
        "image_size": image_size,
        "ms_per_image": per_image,
        "total_ms_per_image": total,
        "images_per_s_per_core": 1000 / total if total > 0 else float("inf"),
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
