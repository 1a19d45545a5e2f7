"""Measurements taken around the iterations of a training run, whoever drives them (a Lightning ``Trainer`` or a
plain loop): per-iteration latency, unsynchronised throughput, peak GPU memory, host syncs per iteration and a
torch.profiler window (GPU busy fraction, kernels and device-to-host copies per iteration).

The driver calls :meth:`Phases.before` and :meth:`Phases.after` around iteration ``i`` and :meth:`Phases.finish` at
the end; :class:`~benchmarks.common.Plan` says which iteration belongs to which phase.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import Counter
from typing import Any

import torch

from benchmarks.common import Plan, peak_gpu_mib, reset_peak_gpu, stats, synchronize
from benchmarks.host_syncs import SyncRecorder, recorder_for


class Phases:
    """Runs the plan's phases around the iterations of one training run (see the module docstring)."""

    def __init__(self, plan: Plan, device: str, recorder: SyncRecorder | None = None) -> None:
        self.plan = plan
        self.device = device
        self.recorder = recorder or recorder_for(device)
        self.times: list[float] = []
        self.throughput_s: float | None = None
        self.warmup_s: float | None = None
        self.peak_gpu_mib: float | None = None
        self.profile: dict[str, Any] | None = None
        self._recording = False
        self._profiler: torch.profiler.profile | None = None
        self._t0 = self._tp0 = self._prof0 = self._start = 0.0

    # ---------------------------------------------------------------------------------------------- hooks
    def before(self, i: int) -> None:
        plan = self.plan
        if i == 0:
            self._start = time.perf_counter()
        if self._recording and i >= plan.profile_start:
            self._stop_recording()
        if plan.sync_iters and i == plan.sync_start:
            self.recorder.start()
            self._recording = True
        if self._recording:
            self.recorder.iteration = i
        if plan.profile_iters and i == plan.profile_start:
            self._start_profiler()
        if plan.throughput_reps and i == plan.throughput_start:
            synchronize(self.device)
            self._tp0 = time.perf_counter()
        if plan.timed_start <= i < plan.throughput_start:
            synchronize(self.device)
            if i == plan.timed_start:
                self.warmup_s = time.perf_counter() - self._start
                reset_peak_gpu(self.device)  # the peak of the steady state, not of cuDNN's autotuning trials
            self._t0 = time.perf_counter()

    def after(self, i: int) -> None:
        plan = self.plan
        if plan.timed_start <= i < plan.throughput_start:
            synchronize(self.device)
            self.times.append(time.perf_counter() - self._t0)
        if plan.throughput_reps and i == plan.sync_start - 1:
            synchronize(self.device)
            self.throughput_s = (time.perf_counter() - self._tp0) / plan.throughput_reps
        if i == plan.sync_start - 1:
            self.peak_gpu_mib = peak_gpu_mib(self.device)
        if plan.profile_iters and i == plan.total - 1:
            self._stop_profiler()

    def finish(self) -> None:
        if self._recording:
            self._stop_recording()
        if self._profiler is not None:
            self._stop_profiler()

    def abort(self) -> None:
        """After an exception: never leave sync-debug mode on, torch.Tensor patched or a profiler running."""
        if self._recording:
            self._stop_recording()
        if self._profiler is not None:
            self._profiler.stop()
            self._profiler = None

    # ------------------------------------------------------------------------------------------- helpers
    def _stop_recording(self) -> None:
        self.recorder.iteration = None
        self.recorder.stop()
        self._recording = False

    def _start_profiler(self) -> None:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU]
        if self.device == "cuda":
            activities.append(ProfilerActivity.CUDA)
        synchronize(self.device)
        self._profiler = profile(activities=activities)
        self._profiler.start()
        self._prof0 = time.perf_counter()

    def _stop_profiler(self) -> None:
        assert self._profiler is not None
        synchronize(self.device)
        wall = time.perf_counter() - self._prof0
        self._profiler.stop()
        fd, path = tempfile.mkstemp(suffix=".json", prefix="dmfn_trace_")
        os.close(fd)
        try:
            self._profiler.export_chrome_trace(path)
            with open(path) as f:
                trace = json.load(f)
        finally:
            os.unlink(path)
        self._profiler = None
        self.profile = summarize_trace(trace, self.plan.profile_iters, wall)

    # ------------------------------------------------------------------------------------------- results
    def results(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step_s": stats(self.times), "plan": self.plan.as_dict()}
        if self.warmup_s is not None:
            out["warmup_s"] = self.warmup_s
        if self.throughput_s is not None:
            out["throughput_step_s"] = self.throughput_s
        if self.peak_gpu_mib is not None:
            out["peak_gpu_mib"] = self.peak_gpu_mib
        if self.plan.sync_iters:
            counted = list(range(self.plan.sync_start, self.plan.profile_start))
            out["host_syncs"] = self.recorder.summary(counted)
        if self.profile is not None:
            out["profile"] = self.profile
            median = out["step_s"]["median"]
            kernel_ms = self.profile.get("kernel_busy_ms_per_iteration")
            if kernel_ms is not None and median == median and median > 0:
                # kernel time is not inflated by the profiler's host overhead; the unprofiled step time is the truth
                out["gpu_busy_fraction"] = kernel_ms / (1000 * median)
        return out


# ------------------------------------------------------------------------------------------------- traces
def _union_us(intervals: list[tuple[float, float]]) -> float:
    """Total length of the union of [start, end) intervals (concurrent kernels count once)."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if start >= end:
            total += stop - start
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total


def summarize_trace(trace: dict[str, Any], iterations: int, wall_s: float) -> dict[str, Any]:
    """Per-iteration figures from a Chrome trace written by ``torch.profiler`` (``export_chrome_trace``).

    Kineto's categories: ``kernel`` (GPU kernels), ``gpu_memcpy`` / ``gpu_memset``, ``cuda_runtime`` and
    ``cuda_driver`` (host API calls), ``cpu_op`` (ATen operators).
    """
    events = [e for e in trace.get("traceEvents", []) if isinstance(e, dict) and e.get("ph") == "X"]
    by_cat: Counter = Counter(str(e.get("cat", "")).lower() for e in events)
    kernels = [e for e in events if str(e.get("cat", "")).lower() == "kernel"]
    memcpy = [e for e in events if str(e.get("cat", "")).lower() == "gpu_memcpy"]
    runtime = [e for e in events if str(e.get("cat", "")).lower() in ("cuda_runtime", "cuda_driver")]
    device_work = kernels + memcpy + [e for e in events if str(e.get("cat", "")).lower() == "gpu_memset"]
    busy_us = _union_us([(float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0))) for e in device_work])
    kernel_us = sum(float(e.get("dur", 0)) for e in kernels)
    n = max(iterations, 1)
    api = Counter(str(e.get("name", "")) for e in runtime)
    syncs = sum(v for k, v in api.items() if "Synchronize" in k)
    top = Counter()
    for e in kernels:
        top[str(e.get("name", ""))[:80]] += float(e.get("dur", 0))
    layout = sum(
        float(e.get("dur", 0))
        for e in kernels
        if any(
            s in str(e.get("name", "")).lower() for s in ("nchwtonhwc", "nhwctonchw", "nchw_to_nhwc", "nhwc_to_nchw")
        )
    )
    return {
        "iterations": iterations,
        "wall_ms_per_iteration_profiled": 1000 * wall_s / n,
        "cpu_ops_per_iteration": by_cat.get("cpu_op", 0) / n,
        "kernels_per_iteration": len(kernels) / n,
        "kernel_ms_per_iteration": kernel_us / 1000 / n,
        "kernel_busy_ms_per_iteration": busy_us / 1000 / n if device_work else None,
        "busy_fraction_profiled": (busy_us / 1e6) / wall_s if device_work and wall_s > 0 else None,
        "dtoh_copies_per_iteration": sum("DtoH" in str(e.get("name", "")) for e in memcpy) / n,
        "htod_copies_per_iteration": sum("HtoD" in str(e.get("name", "")) for e in memcpy) / n,
        "synchronize_calls_per_iteration": syncs / n,
        "layout_conversion_ms_per_iteration": layout / 1000 / n,
        "top_kernels_ms_per_iteration": {k: v / 1000 / n for k, v in top.most_common(8)},
    }
