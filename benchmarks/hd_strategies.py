"""HD inpainting strategies compared: ``full``, ``resize`` and ``crop`` on large photos.

::

    python -m benchmarks.hd_strategies --checkpoint outputs/demo/generator.pt                  # outputs/hd_strategies/
    python -m benchmarks.hd_strategies --checkpoint outputs/demo/generator.pt --update-docs    # + the README's figure

Run it from the top of the checkout (``benchmarks`` is a folder there, not part of the installed package).

scikit-image's bundled photos (astronaut, coffee, chelsea) are centre-cropped to 3:2 and upscaled (bicubic) to
``--size`` (default 3000x2000). Each gets holes covering 2 %, 10 % and 30 % of the image: three ellipses at
seeded random places, grown together until their union covers exactly that share (a hole may run off the
border, as objects in photos do). Every (photo, hole) pair is inpainted by ``dmfn_lightning.inpaint.main``, the
function behind ``python -m dmfn_lightning.inpaint`` and ``dmfn-inpaint``, called in this process with PNG files in
and out as a user passes them, with ``--strategy full``, ``--strategy resize
--working-size N`` (``--working-size``, default 256, the paper's training size) and ``--strategy crop``. For each
run the script checks that the known pixels are bit-identical to the input, and measures inside the hole, against
the original photo: L1 (mean absolute error, 0-255 scale) and PSNR (dB), and the wall-clock and CPU time of that
call: checkpoint load, PNG read, inpainting and PNG write, without Python's start-up and the package's imports (done
once, before the first call), so a shell running ``dmfn-inpaint`` takes longer by that start-up. It prints a
Markdown table (means over the photos) and writes it with a figure (a zoom on one 2 % hole with the three results,
and time / PSNR against the hole's share) into ``--out`` (default ``outputs/hd_strategies/``). The figure the README
shows, ``docs/images/hd_strategies.png``, is replaced only with ``--update-docs``.

Numbers depend on the generator: a weak one (the few-minute offline demo) is what they measure then, not DMFN.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

PHOTOS = ("astronaut", "coffee", "chelsea")
RATIOS = (0.02, 0.10, 0.30)
STRATEGIES = ("full", "resize", "crop")
DOCS_FIGURE = Path(__file__).resolve().parents[1] / "docs" / "images" / "hd_strategies.png"  # shown in the README
DEFAULT_OUT = Path("outputs") / "hd_strategies"
COLOURS = {"full": "#4c72b0", "resize": "#dd8452", "crop": "#55a868"}


def demo_photo(name: str, width: int, height: int) -> np.ndarray:
    """scikit-image's ``name`` photo, centre-cropped to ``width:height`` and resized (bicubic) to that size."""
    from skimage import data

    arr = getattr(data, name)()
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    h, w = arr.shape[:2]
    if w / h > width / height:  # too wide: crop the sides
        keep = round(h * width / height)
        arr = arr[:, (w - keep) // 2 : (w - keep) // 2 + keep]
    else:
        keep = round(w * height / width)
        arr = arr[(h - keep) // 2 : (h - keep) // 2 + keep]
    return np.asarray(Image.fromarray(arr[..., :3]).resize((width, height), Image.BICUBIC))


def ellipse_holes(width: int, height: int, ratio: float, seed: int, count: int = 3) -> np.ndarray:
    """Bool ``[H, W]``: the union of ``count`` ellipses (seeded centres and shapes) scaled together so that it
    covers ``ratio`` of the image."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    distance = np.full((height, width), np.inf, dtype=np.float32)
    for _ in range(count):
        cx, cy = rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height
        aspect = rng.uniform(0.5, 2.0)
        # Normalised elliptic distance: the hole is distance <= s for one scale s shared by all ellipses.
        d = np.sqrt(((xs - cx) / aspect) ** 2 + ((ys - cy) * aspect) ** 2)
        np.minimum(distance, d, out=distance)
    scale = np.quantile(distance, ratio)
    return distance <= scale


def hole_metrics(output: np.ndarray, original: np.ndarray, hole: np.ndarray) -> tuple[float, float]:
    """(L1 on the 0-255 scale, PSNR in dB) over the hole pixels."""
    diff = output[hole].astype(np.float64) - original[hole].astype(np.float64)
    l1 = float(np.abs(diff).mean())
    mse = float((diff**2).mean())
    psnr = float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)
    return l1, psnr


@dataclass
class Run:
    photo: str
    ratio: float
    strategy: str
    l1: float
    psnr: float
    seconds: float  # wall time
    cpu_seconds: float  # CPU time of this process (all threads): less sensitive to other jobs on the machine
    network_mpx: float  # pixels the generator processed, in megapixels


def strategy_args(strategy: str, working_size: int) -> list[str]:
    if strategy == "resize":
        return ["--strategy", "resize", "--working-size", str(working_size)]
    return ["--strategy", strategy]


def network_megapixels(strategy: str, hole: np.ndarray, generator, working_size: int) -> float:
    """How many pixels the generator sees under ``strategy`` (its input size, padding excluded)."""
    from dmfn_lightning.inpainting.hd import DEFAULT_CROP_MARGIN, crop_windows, training_size

    height, width = hole.shape
    if strategy == "full":
        return height * width / 1e6
    if strategy == "resize":
        scale = working_size / max(height, width)
        return round(height * scale) * round(width * scale) / 1e6
    windows = crop_windows(hole, DEFAULT_CROP_MARGIN, training_size(generator))
    return sum(w.height * w.width for w in windows) / 1e6


def inpaint_cli(checkpoint: Path, image: Path, mask: Path, output: Path, extra: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one in-process call of ``dmfn_lightning.inpaint.main`` (what ``dmfn-inpaint`` runs):
    checkpoint load, PNG read, inpainting and PNG write; Python's start-up and the imports are not included."""
    from dmfn_lightning.inpaint import main

    args = ["--checkpoint", str(checkpoint), "--image", str(image), "--mask", str(mask), "--output", str(output)]
    start, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stderr(io.StringIO()):
        main([*args, "--device", "cpu", "--quiet", *extra])
    return time.perf_counter() - start, time.process_time() - cpu


def run_all(args: argparse.Namespace, work: Path) -> tuple[list[Run], dict]:
    from dmfn_lightning.models import load_generator

    generator = load_generator(args.checkpoint)
    width, height = args.size
    runs: list[Run] = []
    sample: dict = {}
    # Warm-up (allocator, kernels' first calls) on a small image, so the first measured run is not penalised.
    Image.fromarray(demo_photo(PHOTOS[0], 300, 200)).save(work / "warm.png")
    Image.fromarray(ellipse_holes(300, 200, 0.1, 0).astype(np.uint8) * 255).save(work / "warm_mask.png")
    inpaint_cli(args.checkpoint, work / "warm.png", work / "warm_mask.png", work / "warm_out.png", [])
    for p, photo in enumerate(args.photos):
        original = demo_photo(photo, width, height)
        image_path = work / f"{photo}.png"
        Image.fromarray(original).save(image_path)
        for r, ratio in enumerate(args.ratios):
            hole = ellipse_holes(width, height, ratio, seed=100 * p + r)
            mask_path = work / f"{photo}_{ratio:.2f}_mask.png"
            Image.fromarray(hole.astype(np.uint8) * 255).save(mask_path)
            for strategy in STRATEGIES:
                out_path = work / f"{photo}_{ratio:.2f}_{strategy}.png"
                extra = strategy_args(strategy, args.working_size)
                seconds, cpu = inpaint_cli(args.checkpoint, image_path, mask_path, out_path, extra)
                with Image.open(out_path) as img:
                    output = np.asarray(img.convert("RGB"))
                if not np.array_equal(output[~hole], original[~hole]):
                    raise SystemExit(f"{strategy} changed known pixels of {photo} ({ratio:.0%} hole)")
                l1, psnr = hole_metrics(output, original, hole)
                mpx = network_megapixels(strategy, hole, generator, args.working_size)
                runs.append(Run(photo, ratio, strategy, l1, psnr, seconds, cpu, mpx))
                print(
                    f"{photo} {ratio:.0%} {strategy}: L1 {l1:.2f}, PSNR {psnr:.2f} dB, {seconds:.1f} s "
                    f"(CPU {cpu:.1f} s)",
                    flush=True,
                )
                if p == 0 and r == 0:
                    sample.update({strategy: output, "original": original, "hole": hole})
    return runs, sample


def markdown_table(runs: list[Run], args: argparse.Namespace) -> str:
    width, height = args.size
    lines = [
        f"{width}x{height} photos ({', '.join(args.photos)}; bicubic upscales of scikit-image's), holes of three "
        f"ellipses; mean over the photos. resize: --working-size {args.working_size}; crop: default margin "
        "(128 px), no cap. Time: one call of `dmfn_lightning.inpaint.main` (the function behind `dmfn-inpaint`) in "
        "the benchmark's process on the CPU: checkpoint load, PNG read, inpainting and PNG write, without Python's "
        f"start-up and imports; wall clock and CPU time of the process ({torch.get_num_threads()} threads).",
        "",
        "| hole | strategy | L1 in hole (0-255) ↓ | PSNR in hole (dB) ↑ | wall time (s) ↓ | CPU time (s) ↓ "
        "| generator input (Mpx) |",
        "|---|---|---|---|---|---|---|",
    ]
    for ratio in args.ratios:
        for strategy in STRATEGIES:
            sel = [r for r in runs if r.ratio == ratio and r.strategy == strategy]
            l1 = np.mean([r.l1 for r in sel])
            psnr = np.mean([r.psnr for r in sel])
            seconds = np.mean([r.seconds for r in sel])
            cpu = np.mean([r.cpu_seconds for r in sel])
            mpx = np.mean([r.network_mpx for r in sel])
            lines.append(
                f"| {ratio:.0%} | {strategy} | {l1:.2f} | {psnr:.2f} | {seconds:.1f} | {cpu:.1f} | {mpx:.2f} |"
            )
    return "\n".join(lines)


def _zoom_box(hole: np.ndarray, pad: int = 40) -> tuple[slice, slice]:
    """The bounding box (plus ``pad``) of the first connected hole, squared up."""
    from dmfn_lightning.inpainting.hd import hole_boxes

    box = max(hole_boxes(hole), key=lambda b: b.height * b.width)
    side = max(box.height, box.width) + 2 * pad
    cy, cx = (box.top + box.bottom) // 2, (box.left + box.right) // 2
    top = int(np.clip(cy - side // 2, 0, max(0, hole.shape[0] - side)))
    left = int(np.clip(cx - side // 2, 0, max(0, hole.shape[1] - side)))
    return slice(top, top + side), slice(left, left + side)


def save_figure(runs: list[Run], sample: dict, args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hole = sample["hole"]
    rows, cols = _zoom_box(hole)
    fig = plt.figure(figsize=(12, 6.6), dpi=80)
    grid = fig.add_gridspec(2, 4, height_ratios=[1.15, 1], hspace=0.35, wspace=0.45)
    masked = sample["original"].copy()
    masked[hole] = (255, 255, 255)
    panels = [("input (hole in white)", masked)] + [(s, sample[s]) for s in STRATEGIES]
    for i, (title, arr) in enumerate(panels):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(arr[rows, cols], interpolation="nearest")
        if title in STRATEGIES:
            sel = next(
                r for r in runs if r.photo == args.photos[0] and r.ratio == args.ratios[0] and r.strategy == title
            )
            title = f"{title}: {sel.psnr:.1f} dB, {sel.seconds:.0f} s"
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.text(
        0.5,
        0.955,
        f"{args.photos[0]}, {args.size[0]}x{args.size[1]}, {args.ratios[0]:.0%} hole: zoom on one hole at full "
        "resolution",
        ha="center",
        fontsize=11,
    )
    ratios = np.array(args.ratios) * 100
    for j, (key, label) in enumerate((("seconds", "wall time (s), log scale"), ("psnr", "PSNR in hole (dB)"))):
        ax = fig.add_subplot(grid[1, 2 * j : 2 * j + 2])
        for strategy in STRATEGIES:
            values = [
                np.mean([getattr(r, key) for r in runs if r.ratio == ratio and r.strategy == strategy])
                for ratio in args.ratios
            ]
            ax.plot(ratios, values, "o-", color=COLOURS[strategy], label=strategy)
        ax.set_xlabel("hole (% of the image)")
        ax.set_ylabel(label)
        ax.set_xticks(ratios)
        if key == "seconds":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    # README images stay small: fall back to a 256-colour palette when the full-colour PNG is large.
    if path.stat().st_size > 900_000:
        Image.open(path).convert("RGB").quantize(colors=256).save(path, optimize=True)


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 3000x2000, got {text!r}") from None
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.hd_strategies",
        description=(
            "Compare the inpainting strategies full, resize and crop on large photos: L1 and PSNR in the hole, "
            "wall and CPU time. Run from the top of the checkout."
        ),
    )
    parser.add_argument("--checkpoint", required=True, type=Path, help="generator file (e.g. generator.pt)")
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"folder for the table (hd_strategies.md) and the figure (hd_strategies.png); default {DEFAULT_OUT}/",
    )
    parser.add_argument(
        "--update-docs",
        action="store_true",
        help=f"also replace the README's figure, {DOCS_FIGURE.relative_to(DOCS_FIGURE.parents[2])}",
    )
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument("--size", type=_size, default=(3000, 2000), help="WIDTHxHEIGHT (default 3000x2000)")
    parser.add_argument(
        "--photos", nargs="+", default=list(PHOTOS), choices=PHOTOS, help="scikit-image photos (default all three)"
    )
    parser.add_argument("--ratios", nargs="+", type=float, default=list(RATIOS), help="hole shares (0-1)")
    parser.add_argument("--working-size", type=int, default=256, help="resize's --working-size (default 256)")
    parser.add_argument("--work-dir", type=Path, help="keep the images, masks and outputs here")
    args = parser.parse_args(argv)
    if args.out.suffix.lower() == ".png":
        parser.error(f"--out is a folder now, got {args.out}; the README's figure is replaced with --update-docs")
    args.out.mkdir(parents=True, exist_ok=True)  # before the minutes of work, not after
    with tempfile.TemporaryDirectory(prefix="hd_strategies_") as tmp:
        work = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        runs, sample = run_all(args, work)
    table = markdown_table(runs, args)
    print(table)
    (args.out / "hd_strategies.md").write_text(table + "\n")
    if args.markdown:
        args.markdown.write_text(table + "\n")
    figures = [args.out / "hd_strategies.png"] + ([DOCS_FIGURE] if args.update_docs else [])
    for figure in figures:
        save_figure(runs, sample, args, figure)
        print(f"figure: {figure} ({figure.stat().st_size / 1e3:.0f} kB)")
    print(f"table: {args.out / 'hd_strategies.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
