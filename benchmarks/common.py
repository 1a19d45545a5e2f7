"""What every benchmark section shares: sizes, the phase plan of a timed run, the training config, the fixed batch,
device helpers and statistics."""

from __future__ import annotations

import contextlib
import os
import resource
import statistics
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def ensure_importable() -> None:
    """Make ``dmfn_lightning`` importable from a bare checkout (a GPU machine without ``pip install -e .``)."""
    try:
        import dmfn_lightning  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(REPO / "src"))


ensure_importable()

import torch  # noqa: E402  (after the path fix, so that a bare checkout works)


@dataclass(frozen=True)
class Sizes:
    """Problem size of the training and inference sections."""

    image_size: int
    batch: int
    num_blocks: int = 8  # the paper's generator
    g_channels: int = 64
    d_channels: int = 64


# The CPU suite keeps its historical batch 2 (results stay comparable); CUDA measures the paper's batch 16.
SIZES = {"cpu": Sizes(256, 2), "cuda": Sizes(256, 16), "tiny": Sizes(64, 2, num_blocks=1, g_channels=16, d_channels=16)}


@dataclass(frozen=True)
class Plan:
    """Iterations of one timed training run, in this order:

    warm-up | ``reps`` timed one by one (synchronised at both ends of each) | ``throughput_reps`` timed together
    (no synchronisation between them) | ``sync_iters`` with host syncs counted | ``profile_iters`` under
    torch.profiler.
    """

    warmup: int
    reps: int
    throughput_reps: int = 0
    sync_iters: int = 0
    profile_iters: int = 0

    @property
    def timed_start(self) -> int:
        return self.warmup

    @property
    def throughput_start(self) -> int:
        return self.warmup + self.reps

    @property
    def sync_start(self) -> int:
        return self.throughput_start + self.throughput_reps

    @property
    def profile_start(self) -> int:
        return self.sync_start + self.sync_iters

    @property
    def total(self) -> int:
        return self.profile_start + self.profile_iters

    @property
    def logged_iteration(self) -> int | None:
        """The one iteration (0-based) where Lightning writes metrics: inside the sync-count window, so that both
        kinds of iteration are counted and no timed iteration is a logging one."""
        return self.sync_start + self.sync_iters // 2 if self.sync_iters >= 2 else None

    @property
    def log_every_n_steps(self) -> int:
        # Lightning writes logs when (iteration + 1) % log_every_n_steps == 0; the run is shorter than twice this.
        logged = self.logged_iteration
        return logged + 1 if logged is not None else max(self.total + 1, 50)

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "log_every_n_steps": self.log_every_n_steps}


def stats(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan"), "n": 0}
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "n": len(samples)}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when a CUDA device is visible, else ``cpu``; ``cuda`` without one is an error."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible (torch.cuda.is_available() is False)")
    return name


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def autocast(device: str, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for ``bf16*`` precisions, else a context that leaves fp32 alone."""
    if precision.startswith("bf16"):
        return torch.autocast(device_type=device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def enable_tf32() -> dict[str, bool]:
    """TF32 tensor-core math for fp32 matmuls and convolutions (CUDA); returns the flags now in force.

    PyTorch's defaults are cuDNN TF32 on and matmul TF32 off; our fp32 rows turn both on deliberately (10-bit
    mantissa products, fp32 accumulation: what fp32 training on Ampere and Hopper normally uses). The authors' loop
    keeps the defaults.
    """
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    return tf32_flags()


def tf32_flags() -> dict[str, bool]:
    return {"matmul": bool(torch.backends.cuda.matmul.allow_tf32), "cudnn": bool(torch.backends.cudnn.allow_tf32)}


def precision_label(precision: str, device: str, tf32: dict[str, bool] | None) -> str:
    """How a row's arithmetic is stated in the report."""
    if device != "cuda" or tf32 is None:
        return precision
    if tf32["matmul"] and tf32["cudnn"]:
        kind = "TF32 matmul+conv"
    elif tf32["cudnn"]:
        kind = "TF32 conv only (torch default)"
    else:
        kind = "no TF32"
    return f"{precision} ({kind})" if precision == "fp32" else f"{precision} (fp32 parts: {kind})"


def peak_gpu_mib(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None


def reset_peak_gpu(device: str) -> None:
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()


def network_and_run_overrides(sizes: Sizes, device: str, max_steps: int) -> list[str]:
    """The overrides every benchmark training run shares: the default (paper) loss, optimizers and networks at
    ``sizes``, random VGG19 weights (no download; same cost), ``max_steps`` iterations on ``device``, and no
    logger, checkpoints, panels, validation or exported files."""
    return [
        "logger=none",
        f"model.generator.num_blocks={sizes.num_blocks}",
        f"model.generator.base_channels={sizes.g_channels}",
        f"model.discriminator.base_channels={sizes.d_channels}",
        "model.vgg.weights=random",
        "model.val_lpips=false",
        "callbacks.image_panels=null",
        "callbacks.progress_bar=null",
        "callbacks.ddp_consistency=null",
        "trainer.enable_progress_bar=false",
        "trainer.limit_val_batches=0",
        # cuDNN autotuning is the config default and what a GPU run uses; on CPU it does nothing (kept off as before)
        f"trainer.benchmark={'true' if device == 'cuda' else 'false'}",
        f"trainer.max_steps={max_steps}",
        f"strategy.accelerator={'gpu' if device == 'cuda' else 'cpu'}",
        "checkpoint.every_n_steps=null",
        # no checkpoint files: Lightning's default ModelCheckpoint would write one at the end of every section
        "++trainer.enable_checkpointing=false",
        "checkpoint.save_top_k=0",
        "export_generator=false",
        "inpaint_val_images=false",
    ]


def train_overrides(sizes: Sizes, device: str, plan: Plan, extra: list[str]) -> list[str]:
    """Hydra overrides of the benchmark's training runs on the demo data (:func:`network_and_run_overrides`)."""
    return [
        f"data.image_size={sizes.image_size}",
        f"data.batch_size={sizes.batch}",
        "data.num_workers=0",
        f"trainer.log_every_n_steps={plan.log_every_n_steps}",
        *network_and_run_overrides(sizes, device, plan.total),
        *extra,
    ]


def compose_train_config(overrides: list[str], tag: str):
    from dmfn_lightning.train import compose_config

    return compose_config(overrides, run_dir=Path("/tmp") / f"dmfn_bench_{tag}_{os.getpid()}")


def fixed_batch(size: int, batch: int, device: str = "cpu") -> dict[str, torch.Tensor]:
    """One batch, made once and already on the device: the step is timed without data loading or copies."""
    g = torch.Generator().manual_seed(0)
    image = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    mask = torch.zeros(batch, 1, size, size)
    q = size // 4
    mask[:, :, q : 3 * q, q : 3 * q] = 1
    bbox = torch.tensor([[q, q, 2 * q, 2 * q]] * batch)
    out = {"image": image, "mask": mask, "bbox": bbox, "index": torch.arange(batch)}
    return {k: v.to(device) for k, v in out.items()}


def flops_of(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def jsonable(value: Any) -> Any:
    """Floats that JSON can hold (NaN/inf become None)."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
