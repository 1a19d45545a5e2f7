"""The machine (device name, driver, library versions) and its practical dense-matmul peak, plus generator inference
latency."""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import statistics
import subprocess
import time
from typing import Any

import torch

from benchmarks.common import autocast, enable_tf32, flops_of, peak_rss_mib, stats, synchronize, tf32_flags


def _driver_version() -> str | None:
    """The NVIDIA driver (e.g. 580.159.04): nvidia-smi, else NVML; torch only knows the CUDA API version."""
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            )
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip().splitlines()[0]
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        import pynvml

        pynvml.nvmlInit()
        version = pynvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else str(version)
    except Exception:  # NVML absent or unusable: the report says "unknown"
        return None


def environment(device: str) -> dict[str, Any]:
    import pytorch_lightning as pl

    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    env: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "device": device,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": pl.__version__,
        "cudnn": cudnn,
        "cuda_runtime": torch.version.cuda,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_isa": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
    }
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        env.update(
            {
                "device_name": torch.cuda.get_device_name(0),
                "driver": _driver_version() or "unknown",
                "compute_capability": f"{props.major}.{props.minor}",
                "multiprocessors": props.multi_processor_count,
                "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                "tf32_defaults": tf32_flags(),
            }
        )
    else:
        env["device_name"] = f"CPU {env['cpu']}, {env['cpu_count']} cores, ISA {env['cpu_isa']}"
    return env


def bench_matmul(device: str, n: int, reps: int) -> dict[str, Any]:
    """Dense n x n matmul throughput in GFLOP/s: fp32 and bf16 (CPU); fp32 without TF32, TF32 and bf16 (CUDA)."""
    out: dict[str, Any] = {"n": n}
    cases = [("fp32", torch.float32, False), ("bf16", torch.bfloat16, False)]
    if device == "cuda":
        cases.insert(1, ("tf32", torch.float32, True))
    saved = torch.backends.cuda.matmul.allow_tf32
    try:
        for name, dtype, tf32 in cases:
            torch.backends.cuda.matmul.allow_tf32 = tf32
            a = torch.randn(n, n, dtype=dtype, device=device)
            b = torch.randn(n, n, dtype=dtype, device=device)
            for _ in range(2):
                a @ b
            times = []
            for _ in range(reps):
                synchronize(device)
                t0 = time.perf_counter()
                a @ b
                synchronize(device)
                times.append(time.perf_counter() - t0)
            out[name] = 2 * n**3 / statistics.median(times) / 1e9
            del a, b
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved
    return out


def bench_infer(
    device: str,
    sizes: list[int],
    batches: list[int],
    reps: int,
    warmup: int,
    num_blocks: int = 8,
    base_channels: int = 64,
    max_pixels: int | None = None,
    precisions: tuple[str, ...] = ("fp32", "bf16"),
) -> dict[str, Any]:
    """Generator latency (batch x size x precision) under ``inference_mode``; rows over ``max_pixels`` per batch
    are skipped with the reason."""
    from dmfn_lightning.models import DMFNGenerator

    tf32 = None
    if device == "cuda":
        tf32 = enable_tf32()
        torch.backends.cudnn.benchmark = True
    generator = DMFNGenerator(num_blocks=num_blocks, base_channels=base_channels).eval().to(device)
    rows = []
    for size in sizes:
        for batch in batches:
            if max_pixels is not None and size * size * batch > max_pixels:
                reason = f"over {max_pixels / 2**20:g} MPixel per batch" + (" on this CPU" if device == "cpu" else "")
                rows.append({"size": size, "batch": batch, "skipped": reason})
                continue
            try:
                x = torch.randn(batch, 4, size, size, device=device)
                with torch.inference_mode():
                    flops = flops_of(lambda x=x: generator(x))
                for precision in precisions:
                    if device == "cuda":
                        torch.cuda.reset_peak_memory_stats()
                    times = []
                    with torch.inference_mode(), autocast(device, precision):
                        for i in range(warmup + reps):
                            synchronize(device)
                            t0 = time.perf_counter()
                            generator(x)
                            synchronize(device)
                            if i >= warmup:
                                times.append(time.perf_counter() - t0)
                    row = {"size": size, "batch": batch, "precision": precision, "s": stats(times), "flops": flops}
                    if device == "cuda":
                        row["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
                    rows.append(row)
                del x
            except torch.cuda.OutOfMemoryError:
                rows.append({"size": size, "batch": batch, "skipped": "out of GPU memory"})
                torch.cuda.empty_cache()
    return {"rows": rows, "tf32": tf32, "num_blocks": num_blocks, "peak_rss_mib": peak_rss_mib()}
