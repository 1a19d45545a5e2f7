"""models.torch_files: atomic torch saves that a failure cannot truncate, and weights-only loads whose refusals say
what the file is (a folder, missing, damaged, a TorchScript archive, unsafe pickled objects, a whole pickled model)."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from dmfn_lightning.core.errors import CheckpointError
from dmfn_lightning.inpaint import main
from dmfn_lightning.models import load_generator
from dmfn_lightning.models.torch_files import atomic_torch_save, safe_load
from tests.inpainting.photo_fakes import rgba_image, small_generator


def cli(checkpoint: Path, image: Path, output: Path) -> list[str]:
    """The inpainting command line for one image (as in tests/test_inpaint.py)."""
    return ["--checkpoint", str(checkpoint), "--image", str(image), "--output", str(output)]


def test_atomic_torch_save_round_trips_and_leaves_only_the_file(tmp_path):
    path = tmp_path / "sub" / "state.pt"
    atomic_torch_save({"w": torch.arange(6.0).view(2, 3), "step": 3}, path)  # creates the folder
    atomic_torch_save({"w": torch.full((2, 3), 7.0), "step": 4}, path)  # replaces the file
    loaded = safe_load(path)
    assert loaded["step"] == 4 and torch.equal(loaded["w"], torch.full((2, 3), 7.0))
    assert [p.name for p in path.parent.iterdir()] == ["state.pt"]


def test_a_failed_save_keeps_the_previous_file(tmp_path):
    path = tmp_path / "state.pt"
    atomic_torch_save({"step": 1, "w": torch.ones(3)}, path)
    before = path.read_bytes()
    with pytest.raises((AttributeError, pickle.PicklingError)):  # a local function cannot be pickled
        atomic_torch_save({"step": 2, "hook": lambda x: x}, path)
    assert path.read_bytes() == before and safe_load(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]  # no temporary file left behind


def test_safe_load_tells_folders_missing_and_damaged_files_apart(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"x": torch.zeros(1)}, run / "checkpoints" / "last.ckpt")
    with pytest.raises(CheckpointError) as info:
        safe_load(run)
    assert "is a folder" in str(info.value) and f"pass {run / 'checkpoints' / 'last.ckpt'}" in str(info.value)
    torch.save({"x": torch.zeros(1)}, run / "generator.pt")
    with pytest.raises(CheckpointError, match=r"is a folder.*\(it holds generator\.pt: pass that file\)"):
        safe_load(run)
    with pytest.raises(CheckpointError, match="does not exist"):
        safe_load(tmp_path / "missing.pt")
    (tmp_path / "zeros.bin").write_bytes(bytes(64))
    with pytest.raises(CheckpointError, match="is not a PyTorch checkpoint"):
        safe_load(tmp_path / "zeros.bin")
    (tmp_path / "notes.txt").write_text("hello world\n")
    with pytest.raises(CheckpointError, match=r"not a readable PyTorch file \(truncated or corrupted\?\)"):
        safe_load(tmp_path / "notes.txt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notice and torch.load's TorchScript dispatch note
        torch.jit.script(nn.Linear(2, 2)).save(str(tmp_path / "scripted.pt"))
        with pytest.raises(CheckpointError, match=r"is a TorchScript archive.*torch\.jit\.load"):
            safe_load(tmp_path / "scripted.pt")
    assert torch.equal(safe_load(run / "generator.pt")["x"], torch.zeros(1))


def test_unsafe_pickle_is_called_unsafe_not_corrupted(tmp_path, capsys):
    """Item 10: torch 2.14's wording ("unsupported GLOBAL ... blocked") is recognised as an unsafe file."""
    from dmfn_lightning.models import CheckpointError

    torch.save({"state_dict": {"x": _Payload()}}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError) as info:
        load_generator(tmp_path / "evil.pt")
    message = str(info.value)
    assert "unsafe" in message and "posix.system" in message
    assert "truncated" not in message and "corrupted" not in message
    rgba_image(16, 12).save(tmp_path / "photo.png")
    with pytest.raises(SystemExit):
        main([*cli(tmp_path / "evil.pt", tmp_path / "photo.png", tmp_path / "out"), "--mask-type", "center"])
    err = capsys.readouterr().err
    assert "unsafe" in err and "corrupted" not in err


def test_pickled_whole_module_gets_advice_that_works(tmp_path, monkeypatch):
    """Item 10: for a pickled whole generator, the advice given (export_generator in Python) works."""
    import re

    from dmfn_lightning.models import CheckpointError

    original = small_generator(base_channels=8)
    torch.save(original, tmp_path / "whole.pt")
    with pytest.raises(CheckpointError) as info:
        load_generator(tmp_path / "whole.pt")
    message = str(info.value)
    assert "whole pickled model" in message and "DMFNGenerator" in message
    assert "python -m dmfn_lightning.export" not in message  # export refuses the same file
    code = re.search(r"`(import torch;[^`]+)`", message)[1]
    monkeypatch.chdir(tmp_path)
    exec(code, {})  # what the user is told to run, in the current folder
    converted = load_generator(tmp_path / "generator.pt")
    for a, b in zip(original.state_dict().values(), converted.state_dict().values()):
        assert torch.equal(a, b)


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, ("true",))
