"""Helpers shared by the model tests (tests/models/) and the export command's tests (tests/test_export.py)."""

from __future__ import annotations

import torch
from torch import nn

from dmfn_lightning.models import DMFNGenerator

SIZES = [(32, 48), (40, 24)]  # two resolutions, neither the one used for tracing/exporting (64x96)
TOLERANCE = 1e-4


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def released_layout_state_dict(num_blocks: int = 2) -> dict:
    """A state dict with the key names of the authors' release (models/architecture.py, models/block.py)."""
    torch.manual_seed(1)
    state = {}

    def conv(key, cin, cout, k, transpose=False):
        shape = (cin, cout, k, k) if transpose else (cout, cin, k, k)
        state[f"{key}.weight"] = torch.randn(shape) * 0.02
        state[f"{key}.bias"] = torch.randn(cout) * 0.02

    conv("encoder.0.conv", 4, 64, 5)
    conv("encoder.1.conv", 64, 128, 3)
    conv("encoder.2.conv", 128, 128, 3)
    conv("encoder.3.conv", 128, 256, 3)
    for n in range(num_blocks):
        conv(f"blocks.{n}.c1", 256, 64, 3)
        for k in range(1, 5):
            conv(f"blocks.{n}.d{k}", 64, 64, 3)
        conv(f"blocks.{n}.c2", 256, 256, 3)
    conv("decoder.0.conv", 256, 256, 3)
    conv("decoder.1.deconv", 256, 128, 4, transpose=True)
    conv("decoder.1.conv.conv", 128, 128, 3)
    conv("decoder.2.deconv", 128, 64, 4, transpose=True)
    conv("decoder.2.conv.conv", 64, 64, 3)
    conv("decoder.3.conv", 64, 3, 3)
    return {f"module.{k}": v for k, v in state.items()}  # saved from nn.DataParallel


def export_test_generator() -> DMFNGenerator:
    """The small generator every export test runs: one block, 16 channels, seed 0, in eval mode."""
    torch.manual_seed(0)
    return DMFNGenerator(num_blocks=1, base_channels=16).eval()


def reference(generator, x):
    with torch.no_grad():
        return generator(x)
