"""Backbone weight files that are unsafe (pickled objects) or corrupt: one line naming the file and what to do, never
torch's advice to switch ``weights_only`` off, and nothing in the file is executed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from dmfn_lightning.core import weights
from dmfn_lightning.core.errors import CheckpointError, DMFNError
from dmfn_lightning.metrics.perceptual import LPIPSMetric
from dmfn_lightning.models.vgg import VGG19Features
from tests.conftest import run_evaluation


class _Payload:
    """Unpickling it would create ``marker``: proof that a file was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {name: folder / f"{name}.pth" for name in ("unsafe", "random_bytes", "truncated", "text", "tensor")}
    torch.save({"features.0.weight": _Payload(folder / "executed")}, files["unsafe"])
    files["random_bytes"].write_bytes(os.urandom(2048))
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, folder / "good.pth")
    data = (folder / "good.pth").read_bytes()
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["text"].write_text("not weights\n")
    torch.save(torch.zeros(3), files["tensor"])
    return files


def _check(message: str, path: Path, override: str) -> None:
    assert "\n" not in message, message
    assert str(path) in message and f"{override}=random" in message, message
    assert "weights_only set to False" not in message and "Re-running" not in message, message
    assert "weights_only=False" not in message, message


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    return _files(tmp_path_factory.mktemp("weights"))


@pytest.mark.parametrize("name", ["unsafe", "random_bytes", "truncated", "text", "tensor"])
def test_vgg_and_lpips_refuse_a_bad_weights_file_in_one_line(name, bad_files):
    path = bad_files[name]
    for build, override in (
        (lambda: VGG19Features(weights=str(path)), "model.vgg.weights"),
        (lambda: LPIPSMetric(backbone_weights=str(path)), "lpips.backbone_weights"),
    ):
        with pytest.raises(CheckpointError) as err:
            build()
        _check(str(err.value), path, override)
        expected = "is unsafe: it holds Python objects" if name == "unsafe" else "is corrupt or not a PyTorch file"
        assert expected in str(err.value)
    assert not (path.parent / "executed").exists()


def test_load_weights_names_the_pickled_global(bad_files):
    with pytest.raises(CheckpointError, match=r"holds Python objects \(a pickled `[\w.]+`\)") as err:
        weights.load_weights(bad_files["unsafe"], "VGG19", "model.vgg.weights", "https://x/vgg19-dcbb9e9d.pth")
    assert "torchvision's vgg19-dcbb9e9d.pth" in str(err.value)


def test_evaluate_stops_with_one_line_for_an_unsafe_lpips_file(eval_setup, bad_files, tmp_path):
    # evaluate printed a full traceback quoting torch's advice to re-run with weights_only=False
    with pytest.raises(DMFNError) as err:
        run_evaluation(eval_setup, tmp_path / "out", f"lpips.backbone_weights={bad_files['unsafe']}")
    _check(str(err.value), bad_files["unsafe"], "lpips.backbone_weights")
    assert not (bad_files["unsafe"].parent / "executed").exists()
