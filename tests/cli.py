"""Run an entry point as a user would: ``python -m dmfn_lightning.<name> ...`` in a subprocess, offline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_module(
    name: str, args: list[str], cwd: Path, env: dict | None = None, timeout: int = 300
) -> subprocess.CompletedProcess:
    offline = {"WANDB_MODE": "disabled", "DMFN_OFFLINE": "1", "HYDRA_FULL_ERROR": "0", "HF_HUB_OFFLINE": "1"}
    full_env = {**os.environ, **offline, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", f"dmfn_lightning.{name}", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
