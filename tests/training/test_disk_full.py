"""A full disk while writing a checkpoint: one line naming the file, exit status 2, the previous checkpoint intact.

The disk is made full by writing the checkpoint's bytes to ``/dev/full`` (every write fails with ENOSPC), which
reproduces torch's chained ``RuntimeError: [enforce fail at inline_container.cc] . unexpected pos ...``.
"""

from __future__ import annotations

import errno
import os

import pytest
import torch

from dmfn_lightning.core.errors import OutputPathError, exit_on_user_error
from dmfn_lightning.train import compose_config, train
from dmfn_lightning.training import callbacks

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")

_real_save = torch.save


def _save_to_full_disk(obj, f, *args, **kwargs):
    f.write(b"PK\x03\x04 the first bytes fit")
    with open("/dev/full", "wb") as full:
        _real_save(obj, full, *args, **kwargs)


@pytest.fixture
def full_disk(monkeypatch):
    monkeypatch.setattr(torch, "save", _save_to_full_disk)


def test_the_simulated_disk_fails_as_a_full_disk_does(full_disk, tmp_path):
    with pytest.raises(OSError) as err, open(tmp_path / "x", "wb") as f:
        torch.save({"w": torch.zeros(1000)}, f)
    chain, exc = [], err.value
    while exc is not None:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    assert any("unexpected pos" in str(e) for e in chain), chain  # torch's message on a full disk
    assert callbacks.no_space_left(err.value).errno == errno.ENOSPC


def test_a_checkpoint_write_on_a_full_disk_is_one_line_and_keeps_the_old_file(full_disk, tmp_path):
    path = tmp_path / "checkpoints" / "last.ckpt"
    path.parent.mkdir()
    path.write_bytes(b"the previous checkpoint")
    with pytest.raises(OutputPathError) as err:
        callbacks.AtomicCheckpointIO().save_checkpoint({"w": torch.zeros(1000)}, path)
    assert str(err.value) == (
        f"no space left writing {path} (the previous checkpoint is intact); free space or choose another hydra.run.dir"
    )
    assert path.read_bytes() == b"the previous checkpoint"
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]  # no temporary file left behind
    with pytest.raises(OutputPathError, match=r"\(nothing was written\)"):
        callbacks.AtomicCheckpointIO().save_checkpoint({"w": torch.zeros(1000)}, tmp_path / "checkpoints" / "best.ckpt")


def test_training_on_a_full_disk_exits_2_with_one_error_line(full_disk, tmp_path, capsys):
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"the previous checkpoint")
    overrides = ["+experiment=demo", "+debug=fast", "trainer.max_steps=1", "trainer.limit_val_batches=0"]
    cfg = compose_config([*overrides, "ckpt_path=null"], tmp_path)
    with pytest.raises(SystemExit) as exited:
        exit_on_user_error(train)(cfg)
    assert exited.value.code == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert errors == [
        f"error: no space left writing {last} (the previous checkpoint is intact); free space or choose another "
        "hydra.run.dir"
    ]
    assert last.read_bytes() == b"the previous checkpoint"
