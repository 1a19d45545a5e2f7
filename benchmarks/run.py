"""The benchmark suite: ``python -m benchmarks.run`` (or ``make bench``) measures on whatever accelerator is
present and writes ``benchmarks/results.md`` (one block per kind of device) and a JSON beside it. Run it from the
top of the checkout: ``benchmarks`` is a folder there, not part of the installed package.

    python -m benchmarks.run                                  # --device auto: CUDA when available, else CPU
    python -m benchmarks.run --device cuda --quick --out DIR  # the GPU suite in about 6 minutes (time-budgeted)
    python -m benchmarks.run --tiny --device cpu              # smoke test of every code path (64 px, batch 2)
    python -m benchmarks.run --from-json DIR/results.json     # merge a GPU run's JSON into benchmarks/results.md

CPU suite (unchanged rows, batch 2, 256 px, median of 5 after 2 warm-up): the training iteration as the authors'
released loop, ``DMFNModule.training_step`` in a plain loop (no Trainer), ``DMFNModule`` under a Trainer in fp32,
``bf16-mixed`` and ``channels_last``; dense matmul peak; generator inference at 256/512/1024 px; dataloader images/s
per worker count; input-pipeline stages; host syncs per iteration of a tiny run.

CUDA suite (batch 16, 256 px, paper losses, random VGG19, fixed batch; median of 20 after 5 warm-up): the
authors' loop (PyTorch defaults), ours in fp32 with TF32, bf16-mixed, bf16-mixed + channels_last, bf16-mixed +
compile (and a plain loop), each with peak GPU memory, GPU busy fraction (torch.profiler), kernels and host syncs
per iteration (``torch.cuda.set_sync_debug_mode``); end-to-end iterations/s with the real data module on JPEG
files (8 workers, pinned memory); input pipeline images/s vs what the step consumes; generator latency at
256/512/1024/2048 px in fp32 and bf16; dense matmul peak. Sections that need CUDA say why they are skipped on CPU.

Every section runs in a fresh subprocess (its peak memory is its own, compile caches don't leak) with a time limit;
``--budget-s`` skips the sections that no longer fit. ``--tiny`` runs everything in this process at smoke-test
sizes. Results are written after every section, so a run cut short keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, SIZES, Plan, Sizes, jsonable
from benchmarks.render import block_key, merge, render_block

RESULTS = Path(__file__).resolve().parent / "results.md"
MARKER = "BENCH_RESULT "

CPU_SECTIONS = [
    "env",
    "matmul",
    "train_authors",
    "train_plain",
    "train_lightning",
    "train_bf16",
    "train_channels_last",
    "infer",
    "data",
    "host_syncs",
]
# In priority order: a time budget drops the last ones first.
CUDA_SECTIONS = [
    "env",
    "matmul",
    "train_authors",
    "train_lightning",
    "train_bf16",
    "train_bf16_channels_last",
    "train_bf16_compile",
    "e2e",
    "infer",
    "data",
    "train_plain",
]
CUDA_FULL_ONLY = ["train_released", "host_syncs"]
TRAIN_VARIANTS: dict[str, tuple[list[str], str]] = {
    "train_lightning": ([], "fp32"),
    "train_bf16": (["trainer.precision=bf16-mixed"], "bf16-mixed"),
    "train_channels_last": (["model.channels_last=true"], "fp32"),
    "train_bf16_channels_last": (["trainer.precision=bf16-mixed", "model.channels_last=true"], "bf16-mixed"),
    "train_bf16_compile": (["trainer.precision=bf16-mixed", "model.compile=true"], "bf16-mixed"),
    "train_released": (["model/block=released"], "fp32"),
}
# Seconds a section may take (subprocess limit; on CUDA or under --budget-s only: the CPU suite's inference
# section alone takes many minutes) and the least budget worth starting it with.
SECTION_LIMIT_S = {"train_bf16_compile": 240.0}
DEFAULT_LIMIT_S = 150.0
MIN_START_S = {"train_bf16_compile": 90.0}
DEFAULT_MIN_START_S = 25.0


# ---------------------------------------------------------------------------------------------- settings
def mode_of(args: argparse.Namespace) -> str:
    return "tiny" if args.tiny else "quick" if args.quick else "full"


def sizes_of(args: argparse.Namespace) -> Sizes:
    return SIZES["tiny"] if args.tiny else SIZES[args.layout]


def plan_of(args: argparse.Namespace) -> Plan:
    """The iterations of each training section (see ``Plan``)."""
    cuda = args.layout == "cuda"
    if args.tiny:
        # CUDA layout: every phase once (a logged and a not-logged sync-count iteration) to exercise the code
        return Plan(1, 2, 1, 2, 1) if cuda else Plan(1, 2)
    if cuda:
        return Plan(5, args.reps or 20, args.reps or 20, 10, 3)
    return Plan(1, args.reps or 3) if args.quick else Plan(2, args.reps or 5)


def sections_of(args: argparse.Namespace) -> list[str]:
    if args.only:
        return [s for s in args.only.split(",") if s]
    if args.layout == "cuda":
        return CUDA_SECTIONS + ([] if args.quick or args.tiny else CUDA_FULL_ONLY)
    return list(CPU_SECTIONS)


# ---------------------------------------------------------------------------------------------- sections
def run_section(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One section in this process; returns its results (``{"skipped": why}`` where it cannot run here)."""
    from benchmarks.common import peak_rss_mib

    device, tiny, quick, cuda_layout = args.device, args.tiny, args.quick, args.layout == "cuda"
    sizes, plan = sizes_of(args), plan_of(args)
    if name == "env":
        from benchmarks.system import environment

        return environment(device)
    if name == "matmul":
        from benchmarks.system import bench_matmul

        n = 256 if tiny else 8192 if device == "cuda" else 2048
        return bench_matmul(device, n, 2 if tiny else 10)
    if name in ("train_authors", "train_plain"):
        from benchmarks.steps import bench_loop

        return bench_loop(name.removeprefix("train_"), sizes, device, plan)
    if name in TRAIN_VARIANTS:
        from benchmarks.steps import bench_lightning

        extra, precision = TRAIN_VARIANTS[name]
        if "model.compile=true" in extra and device != "cuda":
            return {"skipped": "the torch.compile variant is measured on CUDA only (compiling on CPU takes minutes)"}
        return bench_lightning(sizes, device, plan, extra, precision)
    if name == "infer":
        from benchmarks.system import bench_infer

        if tiny:
            return bench_infer(device, [64, 128] if cuda_layout else [64], [1] if cuda_layout else [1, 2], 1, 1, 1)
        if device == "cuda":
            batches = [1] if quick else [1, 8]
            return bench_infer(device, [256, 512, 1024, 2048], batches, 10, 3)
        sizes_px, batches = ([256, 512], [1]) if quick else ([256, 512, 1024], [1, 8])
        return bench_infer(device, sizes_px, batches, args.reps or 5, 2, max_pixels=2 * 1024 * 1024)
    if name == "data":
        return bench_data(args, sizes)
    if name == "e2e":
        from benchmarks.e2e import bench_e2e

        if tiny:
            return bench_e2e(sizes, device, warmup=1, iterations=2, workers=1, images=8)
        if device != "cuda":
            return {"skipped": "end-to-end iterations/s is measured on CUDA (the CPU suite times the step alone)"}
        return bench_e2e(sizes, device, warmup=10, iterations=40, workers=8)
    if name == "host_syncs":
        from benchmarks.host_syncs import count_host_syncs

        with tempfile.TemporaryDirectory(prefix="dmfn_syncs_") as tmp:
            out = count_host_syncs(Path(tmp), device=device)
        out["peak_rss_mib"] = peak_rss_mib()
        return out
    raise SystemExit(f"unknown section {name!r}")


def bench_data(args: argparse.Namespace, sizes: Sizes) -> dict[str, Any]:
    """CPU layout: demo-photo loader per worker count (as before) + stages; CUDA layout: a JPEG folder through
    ``DMFNDataModule`` with 8 workers (pinned on CUDA) + stages."""
    from benchmarks.common import peak_rss_mib
    from benchmarks.dataloader import (
        measure_dataloader,
        measure_folder_and_shards,
        measure_folder_loader,
        measure_stages,
        write_photo_jpegs,
    )

    tiny = args.tiny
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="dmfn_jpegs_") as tmp:
        files = write_photo_jpegs(Path(tmp), count=8 if tiny else 64, min_side=sizes.image_size)
        out["stages"] = measure_stages(files, sizes.image_size, sizes.batch, images=4 if tiny else 64)
        # the folder row and the shards row: same images, same workers, one run each
        out["formats"] = measure_folder_and_shards(
            Path(tmp),
            1 if tiny else 2 if args.layout == "cpu" else 8,
            sizes.image_size,
            8 if args.layout == "cpu" and not tiny else sizes.batch,  # the CPU suite's batch of 2 is too few images
            batches=2 if tiny else 30,
            warmup=1 if tiny else 2,
            repeats=1 if tiny else 5,
        )
        if args.layout == "cuda":
            workers = [1] if tiny else [8] if args.quick else [4, 8, 12]
            out["folder"] = [
                measure_folder_loader(
                    Path(tmp),
                    w,
                    sizes.image_size,
                    sizes.batch,
                    batches=2 if tiny else 30,
                    warmup=1 if tiny else 3,
                    pin_memory=args.device == "cuda",
                )
                for w in workers
            ]
    if args.layout == "cpu":
        workers = [0, 1] if tiny else [0, 2] if args.quick else [0, 1, 2]
        size = 64 if tiny else 256
        out["demo"] = {str(w): measure_dataloader(w, size, batches=2 if tiny else 15, batch_size=8) for w in workers}
    out["peak_rss_mib"] = peak_rss_mib()
    return out


# ------------------------------------------------------------------------------------------- the driver
def _child_args(name: str, args: argparse.Namespace) -> list[str]:
    cmd = [sys.executable, "-m", "benchmarks.run", "--section", name, "--device", args.device, "--layout", args.layout]
    if args.tiny:
        cmd.append("--tiny")
    if args.quick:
        cmd.append("--quick")
    if args.reps:
        cmd += ["--reps", str(args.reps)]
    return cmd


def _child(name: str, args: argparse.Namespace, limit_s: float | None) -> dict[str, Any]:
    """Run one section in a fresh process group; killed with its workers at ``limit_s`` (None: no limit)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        _child_args(name, args),
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # DataLoader and compile workers go with it on a timeout
    )
    try:
        stdout, stderr = proc.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"skipped": f"stopped at its time limit ({limit_s or 0:.0f} s)"}
    lines = [line for line in stdout.splitlines() if line.startswith(MARKER)]
    if proc.returncode != 0 or not lines:
        return {"error": (stderr or stdout)[-4000:] or f"exit code {proc.returncode}"}
    return json.loads(lines[-1][len(MARKER) :])


def _inline(name: str, args: argparse.Namespace) -> dict[str, Any]:
    try:
        return run_section(name, args)
    except Exception:
        return {"error": traceback.format_exc()[-4000:]}


def _write(results: dict[str, Any], md_path: Path, json_path: Path) -> None:
    md_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(jsonable(results), indent=1))
    existing = md_path.read_text() if md_path.is_file() else ""
    md_path.write_text(merge(existing, block_key(results["meta"]), render_block(results)))


def _outputs(args: argparse.Namespace) -> tuple[Path, Path]:
    if args.out:
        return args.out / "results.md", args.out / "results.json"
    return args.output, args.output.with_suffix(".json")


DESCRIPTION = """\
The benchmark suite: training and inference speed, FLOP/s against the dense
matmul peak, peak memory and dataloader throughput, measured on the device
chosen by --device. It writes benchmarks/results.md (one block per kind of
device; a run replaces only its own block) and results.json beside it.
Run it from the top of the checkout: benchmarks is a folder there, not part
of the installed package."""
EXAMPLES = """examples:
  python -m benchmarks.run                                  # --device auto: CUDA when available, else CPU
  python -m benchmarks.run --device cuda --quick --out DIR  # the GPU suite in about 6 minutes (time-budgeted)
  python -m benchmarks.run --tiny --device cpu              # smoke test of every code path (64 px, batch 2)
  python -m benchmarks.run --from-json DIR/results.json     # merge a GPU run's JSON into benchmarks/results.md
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="where to measure (default auto: CUDA when available, else the CPU)",
    )
    parser.add_argument("--quick", action="store_true", help="time-budgeted run (CUDA: the ~6 minute suite)")
    parser.add_argument("--tiny", action="store_true", help="smoke-test sizes (64 px, batch 2), in this process")
    parser.add_argument(
        "--reps", type=int, default=None, help="timed repetitions (default: CPU 5, 3 with --quick; CUDA 20)"
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated sections (default: the device's suite). CPU suite: "
        + ", ".join(CPU_SECTIONS)
        + ". CUDA suite: "
        + ", ".join(CUDA_SECTIONS + CUDA_FULL_ONLY)
        + ".",
    )
    parser.add_argument("--layout", choices=["cpu", "cuda"], help="which suite (default: the one of --device)")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="time budget in seconds: sections that no longer fit are skipped (--quick: 330)",
    )
    parser.add_argument("--inline", action="store_true", help="run sections in this process (default with --tiny)")
    parser.add_argument("--subprocess", action="store_true", help="one process per section, also with --tiny")
    parser.add_argument("--out", type=Path, help="folder for results.md and results.json (default: benchmarks/)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="results markdown when --out is not given")
    parser.add_argument("--from-json", type=Path, help="render a results JSON into the markdown; run nothing")
    parser.add_argument("--section", help=argparse.SUPPRESS)  # internal: one section, printed as JSON
    args = parser.parse_args(argv)
    md_path, json_path = _outputs(args)

    if args.from_json:
        results = json.loads(args.from_json.read_text())
        existing = md_path.read_text() if md_path.is_file() else ""
        md_path.write_text(merge(existing, block_key(results["meta"]), render_block(results)))
        print(f"merged {args.from_json} into {md_path}")
        return 0

    from benchmarks.common import resolve_device

    args.device = resolve_device(args.device)
    args.layout = args.layout or args.device
    if args.section:
        result = run_section(args.section, args)
        print(MARKER + json.dumps(jsonable(result)), flush=True)
        return 0

    budget = args.budget_s if args.budget_s is not None else (330.0 if args.quick and not args.tiny else None)
    inline = (args.inline or args.tiny) and not args.subprocess
    started = time.perf_counter()
    results: dict[str, Any] = {
        "meta": {
            "device": args.device,
            "layout": args.layout,
            "mode": mode_of(args),
            "sizes": asdict(sizes_of(args)),
            "plan": plan_of(args).as_dict(),
            "budget_s": budget,
            "command": "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:]),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "elapsed_s": 0.0,
        },
        "sections": {},
    }
    for name in sections_of(args):
        elapsed = time.perf_counter() - started
        left = None if budget is None else budget - elapsed
        if left is not None and left < MIN_START_S.get(name, DEFAULT_MIN_START_S):
            result = {"skipped": f"time budget: {left:.0f} s of --budget-s {budget:.0f} left"}
        else:
            print(f"running {name} ({elapsed:.0f} s elapsed) ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            if inline:
                result = _inline(name, args)
            else:
                limit = None
                if args.device == "cuda" or left is not None:
                    limit = SECTION_LIMIT_S.get(name, DEFAULT_LIMIT_S)
                    limit = limit if left is None else max(10.0, min(limit, left))
                result = _child(name, args, limit)
            result["section_s"] = time.perf_counter() - t0
            if "error" in result:
                print(f"section {name} failed:\n{result['error']}", file=sys.stderr, flush=True)
        results["sections"][name] = result
        results["meta"]["elapsed_s"] = time.perf_counter() - started
        _write(results, md_path, json_path)
    print(render_block(results))
    print(f"wrote {md_path} and {json_path}", file=sys.stderr)
    failed = [n for n, r in results["sections"].items() if "error" in r]
    if failed:
        print(f"failed sections: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
