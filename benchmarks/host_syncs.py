"""Host-device synchronisations per training iteration, counted on any machine.

On a GPU every ``Tensor.item()``, ``bool(tensor)``, ``.tolist()``, ``.cpu()`` or ``.numpy()`` of a device tensor is
a device-to-host copy that waits for the whole queue of kernels: the step stops being asynchronous. Two recorders
count them per iteration, with the file:line that made each call:

* :class:`TensorCallRecorder` (any device, the only one on a CPU machine): wraps those ``torch.Tensor`` methods and
  counts the calls made from Python. On CPU nothing actually waits, but the same calls are syncs on CUDA, so the
  count is what a regression test can pin without a GPU.
* :class:`CudaSyncRecorder` (CUDA): ``torch.cuda.set_sync_debug_mode("warn")`` and counts its warnings, which also
  catches synchronising operations that are no Tensor method (``nonzero``, boolean masks, ``torch.equal``, ...).

:func:`count_host_syncs` runs a tiny training job (``+experiment=demo +debug=fast``) under a Lightning ``Trainer``
and splits the iterations into those where Lightning writes metrics to the logger (every
``trainer.log_every_n_steps``) and those where it does not. ``python -m benchmarks.host_syncs`` prints the table.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
# Methods whose Python call on a CUDA tensor copies to the host and waits for the device.
SYNC_METHODS: tuple[str, ...] = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__")
SYNC_WARNING = "synchronizing CUDA operation"
_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
# Calls that are no device sync on a GPU machine either, reported apart: Adam/AdamW keep their step counters on the
# host unless fused or capturable (``_get_value(step)`` reads them with ``.item()``), and the dataset's per-file
# flags are host tensors read while loading (in DataLoader workers on a real run; in the main process here).
_HOST_SIDE_CALLERS = (os.path.join(_TORCH_DIR, "optim") + os.sep,)
_DATA_LOADING = os.path.join(_TORCH_DIR, "utils", "data") + os.sep


def short_path(path: str) -> str:
    """``src/dmfn_lightning/module.py`` for repository files, ``pytorch_lightning/...`` for installed packages."""
    marker = os.sep + "site-packages" + os.sep
    if marker in path:
        return path.split(marker, 1)[1]
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return path


def _origin(frame: FrameType | None) -> str | None:
    """The innermost frame in this repository (our code that led to the call), as ``path:line``."""
    while frame is not None:
        path = frame.f_code.co_filename
        ours = path.startswith(str(REPO)) and os.sep + "site-packages" + os.sep not in path
        if ours and not path.endswith(os.path.join("benchmarks", "host_syncs.py")):
            return f"{short_path(path)}:{frame.f_lineno}"
        frame = frame.f_back
    return None


# Where a sync made inside Lightning's utilities was asked for: the loop, connector or callback frame that called them.
_LIGHTNING_CALLERS = tuple(
    os.path.join("pytorch_lightning", *part) for part in (("loops",), ("callbacks",), ("trainer", "connectors"))
)

_METRIC_PROPERTIES = {"metrics", "callback_metrics", "progress_bar_metrics", "logged_metrics", "to_item"}


def _via(frame: FrameType | None) -> str | None:
    """For a call made in an installed package: the innermost Lightning loop / connector / callback frame."""
    while frame is not None:
        path = frame.f_code.co_filename
        if any(part in path for part in _LIGHTNING_CALLERS) and frame.f_code.co_name not in _METRIC_PROPERTIES:
            return f"{short_path(path)}:{frame.f_lineno} ({frame.f_code.co_name})"
        frame = frame.f_back
    return None


def _loading_data(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith(_DATA_LOADING):
            return True
        frame = frame.f_back
    return False


@dataclass
class SyncEvent:
    """One host synchronisation: what made it (``method``), the Python line that called it (``site``, the innermost
    frame outside torch) and the innermost line of this repository on the stack (``origin``)."""

    method: str
    site: str
    origin: str | None
    iteration: int
    in_step: bool


@dataclass
class SyncRecorder:
    """Iteration bookkeeping shared by both recorders: events are attributed to the iteration set last."""

    iteration: int | None = None
    in_step: bool = False
    logged: set[int] = field(default_factory=set)
    events: list[SyncEvent] = field(default_factory=list)
    host_side: Counter = field(default_factory=Counter)  # calls that are no device sync (see _HOST_SIDE_CALLERS)
    kind: str = "base"

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def mark_logged(self) -> None:
        if self.iteration is not None:
            self.logged.add(self.iteration)

    def _record(self, method: str, site: str, origin: str | None) -> None:
        if self.iteration is not None:
            self.events.append(SyncEvent(method, site, origin, self.iteration, self.in_step))

    def summary(self, iterations: list[int]) -> dict[str, Any]:
        """Counts per iteration (all, and inside ``training_step``), grouped into logged / not-logged iterations."""
        per_iteration = []
        for i in iterations:
            events = [e for e in self.events if e.iteration == i]
            per_iteration.append(
                {
                    "iteration": i,
                    "logged": i in self.logged,
                    "syncs": len(events),
                    "in_training_step": sum(e.in_step for e in events),
                    "sites": dict(Counter(f"{e.method} @ {e.site}" for e in events)),
                    "origins": dict(Counter(f"{e.method} @ {e.origin or e.site}" for e in events)),
                }
            )
        out: dict[str, Any] = {"recorder": self.kind, "iterations": per_iteration}
        for group, logged in (("not_logged", False), ("logged", True)):
            rows = [r for r in per_iteration if r["logged"] == logged]
            if not rows:
                out[group] = None
                continue
            out[group] = {
                "iterations": [r["iteration"] for r in rows],
                "syncs": sorted({r["syncs"] for r in rows}),
                "in_training_step": sorted({r["in_training_step"] for r in rows}),
                "syncs_mean": sum(r["syncs"] for r in rows) / len(rows),
                "in_training_step_mean": sum(r["in_training_step"] for r in rows) / len(rows),
                # which line makes which sync, per iteration when every iteration of the group has the same ones
                "sites": _per_iteration([r["sites"] for r in rows]),
                "origins": _per_iteration([r["origins"] for r in rows]),
            }
        out["host_side_calls_not_counted"] = dict(self.host_side)
        return out


def _per_iteration(breakdowns: list[dict[str, int]]) -> dict[str, float]:
    """The sites of one iteration of a group; their mean over the group when the iterations differ."""
    if all(b == breakdowns[0] for b in breakdowns):
        return dict(breakdowns[0])
    total: Counter = Counter()
    for b in breakdowns:
        total.update(b)
    return {site: n / len(breakdowns) for site, n in total.items()}


class TensorCallRecorder(SyncRecorder):
    """Counts Python calls of :data:`SYNC_METHODS` on tensors (made from the thread that started it)."""

    def __init__(self) -> None:
        super().__init__(kind="tensor-calls")
        self._saved: dict[str, tuple[bool, Any]] = {}
        self._thread: int | None = None
        self._busy = threading.local()

    def _wrap(self, name: str, original: Callable) -> Callable:
        recorder = self

        def wrapper(tensor, *args, **kwargs):
            if (
                recorder.iteration is not None
                and threading.get_ident() == recorder._thread
                and not getattr(recorder._busy, "on", False)
            ):
                recorder._busy.on = True  # what the recorder does itself is not counted
                try:
                    recorder._count(name, sys._getframe(1))
                finally:
                    recorder._busy.on = False
            return original(tensor, *args, **kwargs)

        wrapper.__name__ = name
        return wrapper

    def _count(self, method: str, caller: FrameType) -> None:
        path = caller.f_code.co_filename
        if path.startswith(_HOST_SIDE_CALLERS) or _loading_data(caller):
            self.host_side[f"{method} @ {short_path(path)}:{caller.f_lineno}"] += 1
            return
        frame: FrameType | None = caller
        while frame is not None and frame.f_code.co_filename.startswith(_TORCH_DIR):
            frame = frame.f_back  # torch's own Python wrappers (e.g. Tensor.__format__): report who called them
        frame = frame or caller
        site = f"{short_path(frame.f_code.co_filename)}:{frame.f_lineno}"
        if os.sep + "site-packages" + os.sep in frame.f_code.co_filename:
            via = _via(frame)
            site = f"{site} via {via}" if via and not via.startswith(site) else site
        self._record(method, site, _origin(frame))

    def start(self) -> None:
        self._thread = threading.get_ident()
        for name in SYNC_METHODS:
            own = name in torch.Tensor.__dict__
            original = getattr(torch.Tensor, name)
            self._saved[name] = (own, original)
            setattr(torch.Tensor, name, self._wrap(name, original))

    def stop(self) -> None:
        for name, (own, original) in self._saved.items():
            if own:
                setattr(torch.Tensor, name, original)
            else:  # inherited from TensorBase: remove the override instead of pinning a copy on Tensor
                delattr(torch.Tensor, name)
        self._saved.clear()


class CudaSyncRecorder(SyncRecorder):
    """Counts ``torch.cuda.set_sync_debug_mode("warn")`` warnings; each one is a synchronising CUDA call.

    Warnings raised in autograd's device threads are replayed by the engine on the thread that called
    ``backward()``, so syncs inside the backward are attributed to that line.
    """

    def __init__(self) -> None:
        super().__init__(kind="cuda-sync-debug")
        self._catch: warnings.catch_warnings | None = None
        self._previous_mode: int = 0
        self._other_warnings: set[str] = set()
        self._show: Callable = warnings.showwarning

    def _hook(self, message, category, filename, lineno, file=None, line=None) -> None:
        text = str(message)
        if SYNC_WARNING not in text:
            if text not in self._other_warnings:  # everything else is shown once, as it would be
                self._other_warnings.add(text)
                self._show(message, category, filename, lineno, file, line)
            return
        self._record("cuda-sync", f"{short_path(filename)}:{lineno}", _origin(sys._getframe(1)))

    def start(self) -> None:
        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        self._show = warnings.showwarning
        warnings.filterwarnings("always", message=f".*{SYNC_WARNING}")
        warnings.showwarning = self._hook
        self._previous_mode = torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode("warn")

    def stop(self) -> None:
        torch.cuda.set_sync_debug_mode(self._previous_mode)
        if self._catch is not None:
            self._catch.__exit__(None, None, None)  # restores filters and showwarning
            self._catch = None


def recorder_for(device: str) -> SyncRecorder:
    return CudaSyncRecorder() if device == "cuda" else TensorCallRecorder()


@contextmanager
def recording(recorder: SyncRecorder) -> Iterator[SyncRecorder]:
    recorder.start()
    try:
        yield recorder
    finally:
        recorder.stop()


# ------------------------------------------------------------------------------------------- Lightning glue
def lightning_probe(recorder: SyncRecorder, module, first: int, last: int):
    """A callback that records iterations ``first..last`` (0-based) and flags calls made inside
    ``module.training_step``; recording stops at the next iteration's start (so Lightning's end-of-batch work,
    logging included, counts for the iteration that produced it) or at the end of training."""
    import pytorch_lightning as pl

    step = module.training_step

    def training_step(*args, **kwargs):
        recorder.in_step = True
        try:
            return step(*args, **kwargs)
        finally:
            recorder.in_step = False

    module.training_step = training_step  # instance attribute: Lightning calls module.training_step(...)

    class SyncProbe(pl.Callback):
        def __init__(self) -> None:
            self.index = 0
            self.active = False

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if self.index == first and not self.active:
                recorder.start()
                self.active = True
            if self.active and self.index > last:
                self._finish()
            recorder.iteration = self.index if self.active else None
            self.index += 1

        def _finish(self) -> None:
            recorder.iteration = None
            recorder.stop()
            self.active = False

        def on_train_end(self, trainer, pl_module) -> None:
            if self.active:
                self._finish()

        def on_exception(self, trainer, pl_module, exception) -> None:
            if self.active:  # never leave torch.Tensor patched or sync-debug mode on
                self._finish()

    return SyncProbe()


def recording_logger(recorder: SyncRecorder):
    """A logger that keeps nothing: it marks the iteration in which Lightning wrote metrics as 'logged'."""
    from pytorch_lightning.loggers import Logger

    class RecordingLogger(Logger):
        @property
        def name(self) -> str:
            return "sync-probe"

        @property
        def version(self) -> int:
            return 0

        def log_hyperparams(self, params, *args, **kwargs) -> None:
            pass

        def log_metrics(self, metrics, step=None) -> None:
            # Lightning's own metric writes carry "epoch"; LearningRateMonitor's direct calls (same iterations) don't.
            if "epoch" in metrics:
                recorder.mark_logged()

    return RecordingLogger()


def config_callbacks(cfg, run_dir: Path) -> list:
    """The run's callbacks as ``dmfn_lightning.train`` builds them (``build_callbacks(cfg)``, or with the run
    directory in the releases that took it)."""
    import inspect

    from dmfn_lightning import train as train_mod

    if len(inspect.signature(train_mod.build_callbacks).parameters) >= 2:
        return train_mod.build_callbacks(cfg, run_dir)
    return train_mod.build_callbacks(cfg)


def count_host_syncs(
    run_dir: Path,
    iterations: int = 8,
    log_every_n_steps: int = 3,
    overrides: list[str] | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Train ``iterations`` tiny iterations and count host syncs per iteration (see the module docstring).

    Counted: the steady state, from the iteration after the first logging one (Lightning keeps what a logging
    iteration logged, and converts its progress-bar values again afterwards) to the one before the last (whose
    end-of-batch work runs into the end of ``fit``). With the defaults, iteration 5 (0-based) is a logged one and
    3, 4, 6 are not.
    """
    import pytorch_lightning as pl

    from dmfn_lightning import train as train_mod

    cfg = train_mod.compose_config(
        [
            "+experiment=demo",
            "+debug=fast",
            # the paper objective even with random VGG19 weights (the demo may swap in a profile without VGG terms)
            "++loss_if_random_vgg=null",
            f"trainer.max_steps={iterations}",
            f"trainer.log_every_n_steps={log_every_n_steps}",
            "trainer.limit_val_batches=0",
            "checkpoint.every_n_steps=null",
            f"strategy.accelerator={'gpu' if device == 'cuda' else 'cpu'}",
            *(overrides or []),
        ],
        run_dir,
    )
    pl.seed_everything(0)
    module = train_mod.build_module(cfg)
    datamodule = train_mod.setup_datamodule(cfg)
    recorder = recorder_for(device)
    counted = list(range(log_every_n_steps, iterations - 1))
    if not counted:
        raise ValueError(f"iterations={iterations} leaves nothing to count after the first logging iteration")
    # The probe goes first: its on_train_batch_start opens the iteration before other callbacks run theirs
    # (LearningRateMonitor reads the metrics there on logging iterations).
    callbacks = [lightning_probe(recorder, module, counted[0], counted[-1]), *config_callbacks(cfg, run_dir)]
    trainer = train_mod.build_trainer(cfg, run_dir, callbacks, [recording_logger(recorder)])
    trainer.fit(module, datamodule=datamodule)
    out = recorder.summary(counted)
    out["log_every_n_steps"] = log_every_n_steps
    return out


def format_summary(summary: dict[str, Any]) -> str:
    """A few lines a person can read: counts per group, then which line makes which sync."""
    lines = [f"host syncs per training iteration ({summary['recorder']})"]
    for group in ("not_logged", "logged"):
        g = summary.get(group)
        if not g:
            lines.append(f"  {group}: no such iteration counted")
            continue
        lines.append(
            f"  {group} iterations {g['iterations']}: {g['syncs']} per iteration, {g['in_training_step']} of them "
            "inside training_step"
        )
        varies = len(g["syncs"]) > 1
        if varies:
            lines.append("      (iterations differ: mean count per iteration)")
        for site, n in sorted(g["sites"].items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"      {n:5.2f} x {site}" if varies else f"      {n:3.0f} x {site}")
    if summary.get("host_side_calls_not_counted"):
        total = sum(summary["host_side_calls_not_counted"].values())
        lines.append(f"  not counted (host-side optimizer step counters, no device sync): {total} calls in the window")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import tempfile

    parser = argparse.ArgumentParser(description="Count host syncs per training iteration of a tiny run.")
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--log-every-n-steps", type=int, default=3)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. model.max_nonfinite_steps=0")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        summary = count_host_syncs(Path(tmp), args.iterations, args.log_every_n_steps, args.overrides, args.device)
    print(format_summary(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
