"""The benchmark suite of issue 7: ``python -m benchmarks.run`` (or ``make bench``) prints a table and writes
``benchmarks/results.md``.

Sections (each runs in a fresh subprocess, so its peak resident memory is its own):

* ``train``: one DMFN iteration (G step + D step, full paper losses, random VGG19 weights) at batch 2, 256 px:
  ``DMFNModule`` under a Lightning ``Trainer`` vs a plain PyTorch loop of the same math written here; fp32,
  ``bf16-mixed`` and ``channels_last``.
* ``infer``: generator latency and images/s at 256/512/1024 px, fp32 vs bf16 autocast, batch 1 and 8.
* ``matmul``: dense matmul GFLOP/s (the machine's practical peak) in fp32 and bf16.
* ``data``: demo-photo dataloader images/s per worker count at 256 px.

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode``. Every figure is the median of ``--reps``
repetitions after warm-up, with min and max. ``--quick`` uses tiny sizes (smoke test only).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results.md"


def _stats(samples: list[float]) -> dict[str, float]:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "n": len(samples)}


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


# --------------------------------------------------------------------------------------------- train step
def _train_config(size: int, batch: int, quick: bool, extra: list[str]):
    from dmfn_lightning.train import compose_config

    overrides = [
        "+experiment=demo",
        f"data.image_size={size}",
        f"data.batch_size={batch}",
        "data.num_workers=0",
        "model.generator.num_blocks=" + ("1" if quick else "8"),
        "model.vgg.weights=random",
        "logger=none",
        "callbacks.image_panels=null",
        "callbacks.progress_bar=null",
        "callbacks.ddp_consistency=null",
        "trainer.enable_progress_bar=false",
        "trainer.limit_val_batches=0",
        "trainer.benchmark=false",
        "checkpoint.every_n_steps=null",
        "checkpoint.save_top_k=0",
        "export_generator=false",
        "inpaint_val_images=false",
        *extra,
    ]
    return compose_config(overrides, run_dir=Path("/tmp") / f"dmfn_bench_{os.getpid()}")


def _fixed_batch(size: int, batch: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    image = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    mask = torch.zeros(batch, 1, size, size)
    q = size // 4
    mask[:, :, q : 3 * q, q : 3 * q] = 1
    bbox = torch.tensor([[q, q, 2 * q, 2 * q]] * batch)
    return {"image": image, "mask": mask, "bbox": bbox, "index": torch.arange(batch)}


def bench_lightning(size: int, batch: int, reps: int, warmup: int, quick: bool, extra: list[str]) -> dict[str, Any]:
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, Dataset

    from dmfn_lightning import train as train_mod

    cfg = _train_config(size, batch, quick, extra)
    pl.seed_everything(0)
    module = train_mod.build_module(cfg)
    fixed = _fixed_batch(size, batch)

    class Repeat(Dataset):  # the same batch every step: the data pipeline is benchmarked separately
        def __len__(self):
            return warmup + reps

        def __getitem__(self, i):
            return fixed

    times: list[float] = []

    class Timer(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            times.append(time.perf_counter() - self.t0)

    from omegaconf import open_dict

    with open_dict(cfg):
        cfg.trainer.max_steps = warmup + reps
    trainer = train_mod.build_trainer(cfg, Path("/tmp"), [Timer()], [])
    loader = DataLoader(Repeat(), batch_size=None)
    trainer.fit(module, train_dataloaders=loader)
    return {"step_s": _stats(times[warmup:]), "images": batch}


def plain_step(module, batch: dict[str, torch.Tensor], opt_g, opt_d, autocast_dtype=None) -> None:
    """The same math as DMFNModule.training_step, written without Lightning (the reference)."""
    from dmfn_lightning.models import DMFNGenerator, crop_local

    image, mask, bbox = batch["image"], batch["mask"], batch["bbox"]
    ctx = torch.autocast("cpu", dtype=autocast_dtype) if autocast_dtype else torch.autocast("cpu", enabled=False)
    with ctx:
        with torch.no_grad():
            target_feats = module.vgg(image)
        real_logits, real_feats = module.discriminator(image, crop_local(image, bbox))
        module.discriminator.requires_grad_(False)
        output = DMFNGenerator.composite(module.generator(DMFNGenerator.make_input(image, mask)), image, mask)
        fake_logits, fake_feats = module.discriminator(output, crop_local(output, bbox))
        g_total, _ = module.loss.generator_loss(
            output,
            image,
            module.vgg(output),
            target_feats,
            fake_logits,
            real_logits.detach(),
            fake_feats,
            [f.detach() for f in real_feats],
        )
    del target_feats
    opt_g.zero_grad(set_to_none=True)
    g_total.backward()
    opt_g.step()
    module.discriminator.requires_grad_(True)
    with ctx:
        fake_d, _ = module.discriminator(output.detach(), crop_local(output.detach(), bbox))
        d_total, _ = module.loss.discriminator_loss(real_logits, fake_d)
    opt_d.zero_grad(set_to_none=True)
    d_total.backward()
    opt_d.step()


def bench_plain(size: int, batch: int, reps: int, warmup: int, quick: bool) -> dict[str, Any]:
    from dmfn_lightning import train as train_mod

    cfg = _train_config(size, batch, quick, [])
    torch.manual_seed(0)
    module = train_mod.build_module(cfg)
    module.train()
    opt_g = torch.optim.Adam(module.generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(module.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    fixed = _fixed_batch(size, batch)
    times = []
    for i in range(warmup + reps):
        t0 = time.perf_counter()
        plain_step(module, fixed, opt_g, opt_d)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    flops = _flops(lambda: plain_step(module, fixed, opt_g, opt_d))
    return {"step_s": _stats(times), "images": batch, "flops": flops}


# -------------------------------------------------------------------------------------------- inference
def bench_infer(sizes: list[int], batches: list[int], reps: int, warmup: int, quick: bool) -> dict[str, Any]:
    from dmfn_lightning.models import DMFNGenerator

    generator = DMFNGenerator(num_blocks=1 if quick else 8).eval()
    rows = []
    for size in sizes:
        for batch in batches:
            if size * size * batch > 2 * 1024 * 1024 and not quick:
                rows.append({"size": size, "batch": batch, "skipped": "over 2 MPixel per batch on 2 cores"})
                continue
            x = torch.randn(batch, 4, size, size)
            flops = _flops(lambda x=x: generator(x))
            for precision in ("fp32", "bf16"):
                ctx = (
                    torch.autocast("cpu", dtype=torch.bfloat16)
                    if precision == "bf16"
                    else torch.autocast("cpu", enabled=False)
                )
                times = []
                with torch.inference_mode(), ctx:
                    for i in range(warmup + reps):
                        t0 = time.perf_counter()
                        generator(x)
                        if i >= warmup:
                            times.append(time.perf_counter() - t0)
                rows.append({"size": size, "batch": batch, "precision": precision, "s": _stats(times), "flops": flops})
    return {"rows": rows}


def bench_matmul(n: int, reps: int) -> dict[str, Any]:
    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        for _ in range(2):
            a @ b
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t0)
        out[name] = 2 * n**3 / statistics.median(times) / 1e9
    return out


def bench_data(workers: list[int], size: int, batches: int) -> dict[str, Any]:
    from benchmarks.dataloader import measure_dataloader

    return {str(w): measure_dataloader(w, image_size=size, batches=batches, batch_size=8) for w in workers}


# ------------------------------------------------------------------------------------------- the driver
def run_section(args: argparse.Namespace) -> dict[str, Any]:
    size, batch = (64, 2) if args.quick else (256, 2)
    reps, warmup = (1, 1) if args.quick else (args.reps, 2)
    section = args.section
    if section == "train_lightning":
        result = bench_lightning(size, batch, reps, warmup, args.quick, [])
    elif section == "train_plain":
        result = bench_plain(size, batch, reps, warmup, args.quick)
    elif section == "train_bf16":
        result = bench_lightning(size, batch, reps, warmup, args.quick, ["trainer.precision=bf16-mixed"])
    elif section == "train_channels_last":
        result = bench_lightning(size, batch, reps, warmup, args.quick, ["model.channels_last=true"])
    elif section == "infer":
        sizes, batches = ([64], [1, 2]) if args.quick else ([256, 512, 1024], [1, 8])
        result = bench_infer(sizes, batches, reps, warmup, args.quick)
    elif section == "matmul":
        result = bench_matmul(256 if args.quick else 2048, reps if args.quick else 10)
    elif section == "data":
        result = bench_data([0, 1] if args.quick else [0, 1, 2], 64 if args.quick else 256, 2 if args.quick else 15)
    else:
        raise SystemExit(f"unknown section {section!r}")
    result["peak_rss_mib"] = _peak_rss_mib()
    return result


SECTIONS = ["matmul", "train_plain", "train_lightning", "train_bf16", "train_channels_last", "infer", "data"]


def _child(section: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.run", "--section", section, "--reps", str(args.reps)]
    if args.quick:
        cmd.append("--quick")
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark section {section} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt_s(stats: dict[str, float]) -> str:
    return f"{stats['median'] * 1000:.0f} ms ({stats['min'] * 1000:.0f}-{stats['max'] * 1000:.0f})"


def render(results: dict[str, Any], quick: bool) -> str:
    peak32, peak16 = results["matmul"]["fp32"], results["matmul"]["bf16"]
    flops = results["train_plain"]["flops"]
    lines = [
        "# Benchmark results",
        "",
        f"- date: {datetime.date.today().isoformat()}; torch {torch.__version__}; "
        f"pytorch-lightning {__import__('pytorch_lightning').__version__}; python {platform.python_version()}",
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"ISA {torch.backends.cpu.get_cpu_capability()}, torch threads {torch.get_num_threads()}",
        f"- {'QUICK smoke-test sizes: not representative' if quick else 'batch 2, 256x256, full paper losses'}",
        "",
        "## Training step (one iteration = G step + D step)",
        "",
        "| variant | step time median (min-max) | images/s | GFLOP/s | % of fp32 matmul peak | peak RSS |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("train_plain", "train_lightning", "train_bf16", "train_channels_last"):
        r = results[name]
        med = r["step_s"]["median"]
        gflops = flops / med / 1e9
        lines.append(
            f"| {name.removeprefix('train_')} | {_fmt_s(r['step_s'])} | {r['images'] / med:.2f} | {gflops:.1f} | "
            f"{100 * gflops / peak32:.0f}% | {r['peak_rss_mib']:.0f} MiB |"
        )
    ratio = results["train_lightning"]["step_s"]["median"] / results["train_plain"]["step_s"]["median"]
    bf16_speedup = results["train_lightning"]["step_s"]["median"] / results["train_bf16"]["step_s"]["median"]
    lines += [
        "",
        f"Lightning overhead (Trainer / plain loop, fp32): **{ratio:.3f}**. "
        f"bf16-mixed speed-up: **{bf16_speedup:.2f}x**. FLOPs per iteration: {flops / 1e9:.1f} GFLOP.",
        "",
        f"Dense matmul: fp32 {peak32:.1f} GFLOP/s, bf16 {peak16:.1f} GFLOP/s.",
        "",
        "## Generator inference",
        "",
        "| size | batch | precision | latency median (min-max) | images/s | GFLOP/s |",
        "|---|---|---|---|---|---|",
    ]
    for row in results["infer"]["rows"]:
        if "skipped" in row:
            lines.append(f"| {row['size']} | {row['batch']} | - | skipped: {row['skipped']} | | |")
            continue
        med = row["s"]["median"]
        lines.append(
            f"| {row['size']} | {row['batch']} | {row['precision']} | {_fmt_s(row['s'])} | {row['batch'] / med:.2f} | "
            f"{row['flops'] / med / 1e9:.1f} |"
        )
    lines += [
        f"\nPeak RSS of the inference section: {results['infer']['peak_rss_mib']:.0f} MiB.",
        "",
        "## Dataloader",
        "",
    ]
    lines += ["| workers | images/s | images/s per worker |", "|---|---|---|"]
    for workers, r in results["data"].items():
        if not workers.isdigit():  # peak_rss_mib
            continue
        per = r["images_per_s"] / max(int(workers), 1)
        lines.append(f"| {workers} | {r['images_per_s']:.1f} | {per:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repetition (smoke test)")
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions after warm-up")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    parser.add_argument("--section", help=argparse.SUPPRESS)  # internal: run one section in this process
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.section:
        print(json.dumps(run_section(args)))
        return 0
    results = {}
    for section in args.only.split(","):
        print(f"running {section} ...", file=sys.stderr, flush=True)
        results[section] = _child(section, args)
    text = render(results, args.quick)
    print(text)
    args.output.write_text(text)
    (args.output.with_suffix(".json")).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
