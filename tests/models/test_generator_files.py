"""models.generator_files: the released-weights converter, generator files written and read back, and clear
errors for files that are not a usable generator."""

from __future__ import annotations

import re

import pytest
import torch

from dmfn_lightning.models import (
    CheckpointError,
    DMFNGenerator,
    convert_released_state_dict,
    export_generator,
    load_generator,
)
from tests.models.model_fakes import released_layout_state_dict


def test_converter_maps_released_keys(tmp_path):
    released = released_layout_state_dict(num_blocks=8)
    converted = convert_released_state_dict(released)
    g = DMFNGenerator(block="released")
    assert set(converted) == set(g.state_dict())
    torch.testing.assert_close(converted["blocks.3.branches.2.weight"], released["module.blocks.3.d3.weight"])
    torch.testing.assert_close(converted["blocks.3.fusion.bias"], released["module.blocks.3.c2.bias"])
    torch.testing.assert_close(converted["blocks.0.c1.conv.weight"], released["module.blocks.0.c1.weight"])

    torch.save(released, tmp_path / "released_G.pth")
    loaded = load_generator(tmp_path / "released_G.pth")
    assert loaded.config == {"block": "released", "num_blocks": 8, "base_channels": 64}
    torch.testing.assert_close(loaded.state_dict()["blocks.7.branches.3.weight"], released["module.blocks.7.d4.weight"])


def test_export_and_load_roundtrip(tmp_path):
    g = DMFNGenerator(block="rate2", num_blocks=2, base_channels=16)
    path = export_generator(g, tmp_path / "g.pt", metadata={"iteration": 5})
    loaded = load_generator(path)
    assert loaded.config == g.config
    x = torch.randn(1, 4, 32, 32)
    torch.testing.assert_close(loaded(x), g.eval()(x))


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_generator(tmp_path / "missing.pt")
    g = DMFNGenerator(num_blocks=2, base_channels=16)
    path = export_generator(g, tmp_path / "g.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_generator(truncated)
    # a file from another block variant names the mismatching keys
    payload = torch.load(path, weights_only=True)
    payload["config"]["block"] = "dmfb" if g.config["block"] == "released" else "released"
    torch.save(payload, tmp_path / "other.pt")
    with pytest.raises(CheckpointError) as err:
        load_generator(tmp_path / "other.pt")
    assert re.search(r"(missing|unexpected) keys: blocks\.0\.", str(err.value))
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        load_generator(tmp_path / "photo.png")
    torch.save({"foo": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a DMFN generator"):
        load_generator(tmp_path / "foreign.pt")
