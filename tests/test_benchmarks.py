"""The benchmark suite runs end to end at smoke-test sizes and reports every section (no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_benchmark_suite_quick(tmp_path):
    out = tmp_path / "results.md"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--output", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    for row in ("| plain |", "| lightning |", "| bf16 |", "| channels_last |", "Lightning overhead", "Dense matmul"):
        assert row in text, row
    assert text.count("| 64 | 1 | fp32 |") == 1 and text.count("| 64 | 2 | bf16 |") == 1
    results = json.loads(out.with_suffix(".json").read_text())
    assert results["train_plain"]["flops"] > 0
    assert all(results[s]["peak_rss_mib"] > 100 for s in ("train_plain", "infer"))
    assert {"0", "1"} <= set(results["data"])
