"""The benchmark suite: every section runs at smoke-test sizes (``--tiny``) on CPU, the GPU suite's code included
(its CUDA-only parts skip with a reason), and the GPU report renders from results shaped like a GPU run's. No
timing assertions: this machine's numbers are not the point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # the benchmarks package lives at the top of the checkout, not in the wheel
    sys.path.insert(0, str(REPO))

from benchmarks.probe import summarize_trace  # noqa: E402
from benchmarks.render import block_key, merge, render_block  # noqa: E402


@pytest.mark.slow
def test_tiny_gpu_suite_runs_on_cpu_and_degrades_cleanly(tmp_path):
    from benchmarks import run

    sections = "env,train_authors,train_bf16,train_bf16_compile,e2e,infer,data"
    code = run.main(["--tiny", "--device", "cpu", "--layout", "cuda", "--only", sections, "--out", str(tmp_path)])
    assert code == 0
    results = json.loads((tmp_path / "results.json").read_text())
    s = results["sections"]
    assert results["meta"] == results["meta"] | {"device": "cpu", "layout": "cuda", "mode": "tiny"}
    assert not [name for name, r in s.items() if "error" in r]
    assert "CUDA only" in s["train_bf16_compile"]["skipped"]
    for name in ("train_authors", "train_bf16"):
        r = s[name]
        assert r["step_s"]["n"] == 2 and r["throughput_step_s"] > 0
        assert r["profile"]["cpu_ops_per_iteration"] > 0 and r["profile"]["kernels_per_iteration"] == 0
        assert "gpu_busy_fraction" not in r and "peak_gpu_mib" not in r  # CUDA-only figures are absent on CPU
    # host syncs: the authors' loop reads every loss back each iteration; ours counts a logged iteration apart
    authors = s["train_authors"]["host_syncs"]["not_logged"]
    assert min(authors["syncs"]) >= 5 and any("benchmarks/steps.py" in site for site in authors["sites"])
    ours = s["train_bf16"]["host_syncs"]
    assert ours["logged"]["iterations"] == [results["meta"]["plan"]["log_every_n_steps"] - 1]
    assert ours["not_logged"] and max(ours["logged"]["syncs"]) > max(ours["not_logged"]["syncs"])
    assert s["e2e"]["iterations_per_s"] > 0 and s["e2e"]["iterations"] == 2
    assert {r["precision"] for r in s["infer"]["rows"]} == {"fp32", "bf16"}
    assert s["data"]["folder"][0]["images_per_s"] > 0
    formats = s["data"]["formats"]  # the folder row and the shards row: 8 JPEGs, one shard
    assert formats["folder"]["files_opened_per_epoch"] == 8 and formats["shards"]["files_opened_per_epoch"] == 1
    assert formats["shards"]["images_per_s"] > 0 and formats["folder"]["num_workers"] == 1
    assert set(s["data"]["stages"]["ms_per_image"]) == {"decode", "crop_resize_flip", "to_tensor", "mask", "collate"}
    text = (tmp_path / "results.md").read_text()
    assert "<!-- bench:cuda-layout-on-cpu-tiny -->" in text and "TINY smoke-test sizes" in text
    for row in ("| authors' loop | fp32 |", "ours, `trainer.precision=bf16-mixed`", "skipped: the torch.compile"):
        assert row in text, row
    for heading in ("### End to end", "### Input pipeline", "### Generator inference", "Host syncs, authors' loop"):
        assert heading in text, heading
    assert "| shards |" in text and "| data.format | images/s | files opened per epoch |" in text


CLI = [sys.executable, "-m", "benchmarks.run"]
SUBPROCESS_SECTIONS = "env,matmul,train_plain,train_lightning"


@pytest.mark.slow
def test_cpu_suite_sections_run_in_subprocesses(tmp_path):
    proc = subprocess.run(
        [*CLI, "--tiny", "--subprocess", "--device", "cpu", "--only", SUBPROCESS_SECTIONS, "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["sections"]["train_plain"]["flops"] > 0
    assert results["sections"]["env"]["device"] == "cpu"
    text = (tmp_path / "results.md").read_text()
    for row in ("| plain | fp32 |", "| lightning | fp32 |", "Lightning overhead", "Dense matmul", "cuDNN: not used"):
        assert row in text, row


@pytest.mark.parametrize("name", ["run", "hd_strategies"])
def test_help_is_whole_sentences(name, capsys):
    import importlib

    module = importlib.import_module(f"benchmarks.{name}")
    with pytest.raises(SystemExit) as info:
        module.main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    description = text.split("\n\n")[1]  # after the usage block
    assert description.rstrip().endswith("."), description
    assert "top of the checkout" in " ".join(description.split())


def test_summarize_trace_counts_kernels_copies_and_overlap():
    events = [
        {"ph": "X", "cat": "kernel", "name": "sm90_xmma_gemm_bf16", "ts": 0, "dur": 10},
        {"ph": "X", "cat": "kernel", "name": "nchwToNhwcKernel", "ts": 5, "dur": 10},  # overlaps the first
        {"ph": "X", "cat": "gpu_memcpy", "name": "Memcpy DtoH (Device -> Pinned)", "ts": 30, "dur": 2},
        {"ph": "X", "cat": "gpu_memcpy", "name": "Memcpy HtoD (Pageable -> Device)", "ts": 40, "dur": 2},
        {"ph": "X", "cat": "cuda_runtime", "name": "cudaStreamSynchronize", "ts": 31, "dur": 1},
        {"ph": "X", "cat": "cpu_op", "name": "aten::conv2d", "ts": 0, "dur": 3},
        {"ph": "i", "cat": "kernel", "name": "instant events are ignored", "ts": 0},
    ]
    out = summarize_trace({"traceEvents": events}, iterations=2, wall_s=100e-6)
    assert out["kernels_per_iteration"] == 1 and out["cpu_ops_per_iteration"] == 0.5
    assert out["kernel_ms_per_iteration"] == pytest.approx(0.010)
    assert out["kernel_busy_ms_per_iteration"] == pytest.approx(0.019 / 2)  # union 15 us + copies 4 us
    assert out["busy_fraction_profiled"] == pytest.approx(0.19)
    assert out["dtoh_copies_per_iteration"] == out["htod_copies_per_iteration"] == 0.5
    assert out["synchronize_calls_per_iteration"] == 0.5
    assert out["layout_conversion_ms_per_iteration"] == pytest.approx(0.005)


def _step(ms: float, images: int = 16, **extra) -> dict:
    return {"step_s": {"median": ms / 1000, "min": ms / 1000, "max": ms / 1000, "n": 20}, "images": images, **extra}


def _gpu_results() -> dict:
    """Results shaped like a ``--device cuda --quick`` run (numbers invented)."""
    syncs = {
        "recorder": "cuda-sync-debug",
        "not_logged": {"iterations": [45], "syncs": [0], "in_training_step": [0], "sites": {}},
        "logged": {"iterations": [50], "syncs": [14], "in_training_step": [1], "sites": {"cuda-sync @ x.py:1": 14}},
    }
    profile = {
        "cpu_ops_per_iteration": 5000,
        "kernels_per_iteration": 1900,
        "kernel_ms_per_iteration": 40.0,
        "kernel_busy_ms_per_iteration": 42.0,
        "dtoh_copies_per_iteration": 0,
        "synchronize_calls_per_iteration": 0,
        "layout_conversion_ms_per_iteration": 3.0,
        "wall_ms_per_iteration_profiled": 60.0,
        "top_kernels_ms_per_iteration": {"cudnn_conv": 10.0},
    }
    common = {"peak_gpu_mib": 6600.0, "warmup_s": 12.0, "throughput_step_s": 0.045}
    env = {
        "date": "2026-11-26",
        "torch": "2.11.0+cu130",
        "lightning": "2.6.6",
        "python": "3.12.3",
        "device_name": "NVIDIA H100 80GB HBM3",
        "multiprocessors": 132,
        "gpu_memory_gib": 79.2,
        "compute_capability": "9.0",
        "driver": "580.159.04",
        "cuda_runtime": "13.0",
        "cudnn": 91300,
        "cpu": "x86_64",
        "cpu_count": 16,
    }
    return {
        "meta": {
            "device": "cuda",
            "layout": "cuda",
            "mode": "quick",
            "sizes": {"image_size": 256, "batch": 16},
            "plan": {"warmup": 5, "reps": 20, "throughput_reps": 20, "sync_iters": 10, "profile_iters": 3},
            "budget_s": 330,
            "elapsed_s": 300,
            "command": "python -m benchmarks.run --device cuda --quick",
        },
        "sections": {
            "env": env,
            "matmul": {"n": 8192, "fp32": 50_000.0, "tf32": 400_000.0, "bf16": 750_000.0},
            "train_authors": _step(120, precision="fp32", host_syncs=syncs, **common),
            "train_lightning": _step(90, precision="fp32", profile=profile, gpu_busy_fraction=0.5, **common),
            "train_bf16": _step(48, precision="bf16-mixed", profile=profile, host_syncs=syncs, **common),
            "train_bf16_channels_last": _step(52, precision="bf16-mixed", **common),
            "train_bf16_compile": {"skipped": "stopped at its time limit (240 s)"},
            "e2e": {
                "iterations": 40,
                "warmup": 10,
                "workers": 8,
                "pin_memory": True,
                "precision": "bf16-mixed",
                "images_in_folder": 64,
                "iterations_per_s": 15.0,
                "images_per_s": 240.0,
                "gap_ms_median": 1.5,
            },
            "data": {
                "folder": [{"num_workers": 8, "pin_memory": True, "images_per_s": 900.0}],
                "stages": {
                    "image_size": 256,
                    "ms_per_image": {"decode": 5.0, "mask": 0.1},
                    "total_ms_per_image": 5.1,
                    "images_per_s_per_core": 196,
                },
            },
            "infer": {
                "tf32": {"matmul": True, "cudnn": True},
                "rows": [
                    {"size": 2048, "batch": 1, "precision": "bf16", "s": _step(20)["step_s"], "flops": 4e12},
                    {"size": 2048, "batch": 8, "skipped": "out of GPU memory"},
                ],
            },
            "train_plain": {"error": "Traceback ...\nRuntimeError: boom"},
        },
    }


def test_gpu_report_renders_targets_ratios_and_failures():
    text = render_block(_gpu_results())
    assert "## CUDA: NVIDIA H100 80GB HBM3" in text and "driver 580.159.04" in text and "cuDNN 91300" in text
    assert "| ours, `trainer.precision=bf16-mixed` | bf16-mixed | 48.0 ms (48.0-48.0) | 333 | 2.50x |" in text
    assert "| authors' loop | fp32 | 120.0 ms" in text and "| 1.00x |" in text
    assert "6.4 GiB" in text and "| 50% |" in text and "| 0 / 14 |" in text  # memory, busy, syncs
    assert "| bf16-mixed ms / iteration | 48.0 | <= 50 | met |" in text
    assert "| fp32 (TF32) ms / iteration | 90.0 | <= 95 | met |" in text
    assert "| channels_last vs default layout (bf16) | 52.0 vs 48.0 | not slower | **not met** |" in text
    assert "| host syncs, bf16 iteration without logging | 0 | 0 | met |" in text
    assert "skipped: stopped at its time limit (240 s)" in text and "failed: RuntimeError: boom" in text
    assert "**15.00 iterations/s**" in text and "ratio 0.72" in text  # e2e vs the fixed batch (1 / 48 ms)
    assert "| 8 | True | 900 | 2.70x |" in text  # loader images/s vs 16 / 48 ms consumed by the step
    assert "| 2048 | 1 | bf16 | 20.0 ms (20.0-20.0) | 50.00 | 200.0 | n/a |" in text
    assert "tf32 400.0 TFLOP/s" in text


def test_results_markdown_keeps_each_devices_block(tmp_path):
    legacy = "# Benchmark results\n\n- date: 2026-11-24\n\n## Training step\n\n| plain | 5264 ms |\n"
    gpu = _gpu_results()
    merged = merge(legacy, block_key(gpu["meta"]), render_block(gpu))
    # a file from before the blocks is kept, whole, as the CPU block
    assert merged.count("# Benchmark results") == 1
    assert "<!-- bench:cpu -->\n- date: 2026-11-24" in merged and "| plain | 5264 ms |\n<!-- /bench:cpu -->" in merged
    assert "<!-- bench:cuda -->\n## CUDA" in merged
    # a new GPU run replaces the GPU block only
    gpu["sections"]["train_bf16"] = _step(40, precision="bf16-mixed")
    again = merge(merged, "cuda", render_block(gpu))
    assert again.count("<!-- bench:cuda -->") == 1 and "40.0 ms (40.0-40.0)" in again and "48.0 ms" not in again
    assert "| plain | 5264 ms |" in again
    # --from-json merges a GPU machine's JSON into the markdown here
    (tmp_path / "results.json").write_text(json.dumps(gpu))
    (tmp_path / "results.md").write_text(legacy)
    from benchmarks import run

    assert run.main(["--from-json", str(tmp_path / "results.json"), "--output", str(tmp_path / "results.md")]) == 0
    assert (tmp_path / "results.md").read_text() == merge(legacy, "cuda", render_block(gpu))


def test_checkerboard_score_sees_a_2x2_pattern_only():
    import torch

    from benchmarks.checkerboard import phase_deviation

    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1
    grid = torch.zeros(1, 3, 8, 8)
    grid[..., ::2, ::2] = 0.4  # one phase of four brighter: deviations 0.3, 0.1, 0.1, 0.1
    ramp = torch.linspace(-1, 1, 8).expand(1, 3, 8, 8).clone()
    s, n = phase_deviation(grid, mask)
    assert n == 4 * 3 and s / n == pytest.approx(0.15)
    s, n = phase_deviation(ramp, mask)
    assert s / n == pytest.approx(1 / 7, rel=1e-5)  # a ramp's neighbours differ by its slope, not by a grid
    grid[..., 0:2, 0:2] = 5  # outside the hole: ignored
    assert phase_deviation(grid, mask)[0] / n == pytest.approx(0.15)
