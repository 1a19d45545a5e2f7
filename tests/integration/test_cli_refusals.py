"""Refusals as a user meets them, in a subprocess: one ``error:`` line, exit status 2, no traceback, and Hydra's
hint only from the Hydra programs (issue "Nothing a user owns is overwritten, nothing a file says is executed, every
refusal is one clear line", cases 14, 15 and 20; the in-process tests of each case are beside their modules)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dmfn_lightning.models import DMFNGenerator, export_generator
from tests.cli import run_module

HINT = "(set HYDRA_FULL_ERROR=1 for the full traceback)"


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    root = tmp_path_factory.mktemp("refusals")
    from PIL import Image

    Image.new("RGB", (40, 30), "white").save(root / "photo.png")
    generator = export_generator(DMFNGenerator(num_blocks=1, base_channels=8), root / "generator.pt")
    return {"root": root, "photo": root / "photo.png", "gen": generator, "missing": root / "missing.pt"}


def assert_one_line(proc: subprocess.CompletedProcess, phrase: str) -> str:
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.strip().splitlines() if "Warning" not in line and line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]
    assert phrase in lines[0] and "Traceback" not in proc.stderr and "HYDRA_FULL_ERROR" not in proc.stderr
    return lines[0]


@pytest.mark.parametrize("entry", ["inpaint", "export", "app"])
def test_commands_that_are_not_hydra_programs_do_not_name_hydra(entry, places, tmp_path):
    """Case 20: inpaint, export and app ended every error with Hydra's HYDRA_FULL_ERROR hint; they are not Hydra
    programs, so their refusal is the one line."""
    missing, out, photo = str(places["missing"]), str(tmp_path / "out"), str(places["photo"])
    args, phrase = {
        "inpaint": (["--checkpoint", missing, "--image", photo, "--mask-type", "center", "--output", out], "missing"),
        "export": (["--checkpoint", missing, "--output", out], "missing.pt"),
        "app": (["--checkpoint", missing, "--working-size", "4"], "--working-size must be a whole number"),
    }[entry]
    assert_one_line(run_module(entry, args, tmp_path, timeout=180), phrase)


def test_a_hydra_program_keeps_hydras_hint(places, tmp_path):
    """Case 20: evaluate is a Hydra program: its error line is followed by Hydra's own hint."""
    args = [f"ckpt={places['missing']}", "lpips.enabled=false", "data=folder", f"data.root={places['root']}"]
    proc = run_module("evaluate", args, tmp_path, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.strip().splitlines() if "Warning" not in line and line.strip()]
    assert lines[-2].startswith("error: ") and "missing.pt" in lines[-2] and lines[-1] == HINT, proc.stderr


def test_a_device_that_is_not_there_is_one_line(places, tmp_path):
    """Case 14: --device mps on a machine without MPS was a traceback when the generator was moved there."""
    pytest.importorskip("torch")
    import torch

    if torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    args = ["--checkpoint", str(places["gen"]), "--image", str(places["photo"]), "--mask-type", "center"]
    proc = run_module("inpaint", [*args, "--output", str(tmp_path / "out"), "--device", "mps"], tmp_path)
    assert_one_line(proc, "device 'mps' requested but MPS (Apple silicon) is not available here")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("source", ["fifo", "stdin"])
def test_a_pipe_as_image_is_one_line(source, places, tmp_path):
    """Case 15: --image a FIFO or /dev/stdin (a pipe) was listed as a folder: NotADirectoryError."""
    args = ["--checkpoint", str(places["gen"]), "--mask-type", "center", "--output", str(tmp_path / "out")]
    if source == "fifo":
        os.mkfifo(tmp_path / "pipe")
        proc = run_module("inpaint", [*args, "--image", str(tmp_path / "pipe")], tmp_path)
    else:
        env = {**os.environ, "WANDB_MODE": "disabled", "DMFN_OFFLINE": "1", "HYDRA_FULL_ERROR": "0"}
        command = [sys.executable, "-m", "dmfn_lightning.inpaint", *args, "--image", "/dev/stdin"]
        proc = subprocess.run(command, input="", cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert_one_line(proc, "is not a regular file or folder")
