"""Training callbacks and the checkpoint I/O plugin: checkpoints are written atomically and read without unpickling."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from dmfn_lightning.core.errors import CheckpointError
from dmfn_lightning.training.callbacks import AtomicCheckpointIO


class _RunsCode:
    """Unpickling this object runs ``open(marker, "w")``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_checkpoint_that_would_run_code_is_refused_on_resume(tmp_path):
    marker = tmp_path / "MARKER"
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {}, "payload": _RunsCode(marker)}, path)
    for weights_only in (None, False):  # no caller may switch unpickling on
        with pytest.raises(CheckpointError, match="unsafe to load") as info:
            AtomicCheckpointIO().load_checkpoint(path, weights_only=weights_only)
        assert "\n" not in str(info.value)
    assert not marker.exists()


def test_a_checkpoint_round_trips(tmp_path):
    io = AtomicCheckpointIO()
    state = {"state_dict": {"w": torch.arange(4.0)}, "global_step": 6}
    io.save_checkpoint(state, tmp_path / "c" / "last.ckpt")
    loaded = io.load_checkpoint(tmp_path / "c" / "last.ckpt")
    assert loaded["global_step"] == 6 and torch.equal(loaded["state_dict"]["w"], torch.arange(4.0))
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["last.ckpt"]  # no temporary file left


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_checkpoints_get_the_permissions_of_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        AtomicCheckpointIO().save_checkpoint({"global_step": 2}, tmp_path / "last.ckpt")
    finally:
        os.umask(old)
    assert (tmp_path / "last.ckpt").stat().st_mode & 0o777 == 0o666 & ~umask
