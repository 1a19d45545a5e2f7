"""Shared test settings: offline, quiet W&B, small thread count."""

import os

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("DMFN_OFFLINE", "1")  # never try to download backbone weights in tests
os.environ.setdefault("HYDRA_FULL_ERROR", "0")

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    """A TORCH_HOME with no cached weights: what a fresh offline machine looks like."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home
