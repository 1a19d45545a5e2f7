"""Tiny DMFN trainings for the progress-bar, best-checkpoint and CSV-log tests, and what they leave behind.

64 px, one block, 8 training samples in batches of 2 (an epoch is 4 iterations), validation and ``last.ckpt`` every
2 iterations: checkpoints fall on validation iterations, as with the paper's defaults (2000/2000). The CSV logger
writes every iteration; the Rich bar records what it renders (:data:`TINY`).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import rich
import torch

from dmfn_lightning.train import compose_config, train

TINY = [
    "+experiment=demo",
    "+debug=fast",
    "data.train_length=8",
    "trainer.val_check_interval=2",
    "checkpoint.every_n_steps=2",
    "checkpoint.save_top_k=5",  # keeps every validated iteration: no best file may leave by ranking
    "logger=csv",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=true",
    "callbacks.progress_bar={_target_:dmfn_lightning.training.callbacks.IterationProgressBar,"
    "console_kwargs:{record:true,width:240}}",
]


@dataclass
class TinyRun:
    """What one tiny training left behind."""

    run_dir: Path
    bar: str  # the text the Rich progress bar rendered (its final state)
    logs: list[str]  # Lightning's log lines (fit stopped, best files moved...)
    files: list[str]  # every file under checkpoints/, relative to it
    best_in_last: list[str]  # the best checkpoints that last.ckpt's BestCheckpoints state lists (names)
    csv_files: list[str]  # the files under csv/
    rows: list[dict[str, str]]  # csv/metrics.csv
    last: dict  # last.ckpt's training state: global_step, epoch, state_dict, optimizer_states, lr_schedulers


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextmanager
def lightning_log() -> Iterator[list[str]]:
    """The lines Lightning's loggers (``rank_zero_info`` included) write meanwhile. They do not propagate to the
    root logger, so pytest's caplog misses them: the handler goes on ``pytorch_lightning`` itself."""
    lines = _Lines()
    lightning = logging.getLogger("pytorch_lightning")
    lightning.addHandler(lines)
    try:
        yield lines.lines
    finally:
        lightning.removeHandler(lines)


STATE = ("global_step", "epoch", "state_dict", "optimizer_states", "lr_schedulers")


def _best_in(checkpoint: dict) -> list[str]:
    (state,) = [s for key, s in checkpoint["callbacks"].items() if key.startswith("BestCheckpoints")]
    return sorted(Path(p).name for p in state["best_k_models"])


def differences(x, y, where: str = "") -> list[str]:
    """Where two checkpoint states differ (tensors compared bit for bit)."""
    if isinstance(x, torch.Tensor):
        return [] if isinstance(y, torch.Tensor) and torch.equal(x, y) else [where]
    if isinstance(x, dict):
        if not isinstance(y, dict) or x.keys() != y.keys():
            return [f"{where} (keys)"]
        return [d for k in x for d in differences(x[k], y[k], f"{where}.{k}")]
    if isinstance(x, list | tuple):
        if not isinstance(y, list | tuple) or len(x) != len(y):
            return [f"{where} (length)"]
        return [d for i, (u, v) in enumerate(zip(x, y)) for d in differences(u, v, f"{where}[{i}]")]
    return [] if x == y else [f"{where}: {x!r} != {y!r}"]


def tiny_run(run_dir: Path, iterations: int, *extra: str) -> TinyRun:
    with lightning_log() as logs:
        train(compose_config([*TINY, f"trainer.max_steps={iterations}", *extra], run_dir))
    bar = rich.get_console().export_text(clear=True)
    checkpoints = run_dir / "checkpoints"
    metrics = run_dir / "csv" / "metrics.csv"
    with open(metrics, newline="") as file:
        rows = list(csv.DictReader(file))
    last = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=True)
    return TinyRun(
        run_dir=run_dir,
        bar=bar,
        logs=logs,
        files=sorted(str(p.relative_to(checkpoints)) for p in checkpoints.rglob("*") if p.is_file()),
        best_in_last=_best_in(last),
        csv_files=sorted(p.name for p in (run_dir / "csv").iterdir()),
        rows=rows,
        last={key: last[key] for key in STATE},
    )
