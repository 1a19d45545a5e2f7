"""Best checkpoints (``checkpoints/best-iterNNNNNNN.ckpt``) survive every resume and every restart.

``last.ckpt`` on a validation iteration (always so with the paper's 2000/2000) is written after that validation, so
the best-checkpoint state it carries lists the file that validation wrote; a resume keeps it. A fresh start
(``ckpt_path=null``) moves the previous run's best files into ``checkpoints/previous-N/``.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from dmfn_lightning.training.callbacks import BestCheckpoints
from tests.training.tiny_runs import lightning_log

BEST_2, BEST_4, BEST_6 = (f"best-iter{i:07d}.ckpt" for i in (2, 4, 6))


def test_last_ckpt_on_a_validation_iteration_knows_the_best_file_of_that_validation(tiny_runs):
    """Before: last.ckpt was written before the validation of its iteration; its best-checkpoint state was empty."""
    assert tiny_runs["first"].best_in_last == [BEST_2]


def test_a_resume_keeps_the_best_checkpoints(tiny_runs):
    """Before: "Removed .../best-iter0000002.ckpt: written after the checkpoint this run resumed from"."""
    second, resumed, whole = tiny_runs["second"], tiny_runs["resumed"], tiny_runs["whole"]
    assert second.files == [BEST_2, "last.ckpt"] and second.best_in_last == [BEST_2]
    assert resumed.files == whole.files == [BEST_2, BEST_4, BEST_6, "last.ckpt"]
    assert resumed.best_in_last == whole.best_in_last == [BEST_2, BEST_4, BEST_6]
    assert not [line for run in (second, resumed) for line in run.logs if "best-" in line]  # none removed or moved


def test_a_fresh_start_moves_the_previous_best_checkpoints_aside(tiny_runs):
    """Before: a fresh start in the folder deleted them ("Removed ...")."""
    fresh = tiny_runs["fresh"]
    assert fresh.files == [BEST_2, "last.ckpt", *(f"previous-1/{name}" for name in (BEST_2, BEST_4, BEST_6))]
    assert fresh.best_in_last == [BEST_2]
    (note,) = [line for line in fresh.logs if "best" in line]
    assert "3 best checkpoints" in note and "previous-1" in note and "ckpt_path=null" in note
    assert "\n" not in note


# ------------------------------------------------------------------------------------ the policy, without training


def _callback(dirpath: Path, known: list[str]) -> BestCheckpoints:
    callback = BestCheckpoints(dirpath, monitor="val/psnr", save_top_k=3)
    callback.best_k_models = {str(dirpath / name): torch.tensor(20.0 + i) for i, name in enumerate(known)}
    return callback


def _start(callback: BestCheckpoints, iteration: int, ckpt_path: str | None) -> list[str]:
    trainer = SimpleNamespace(is_global_zero=True, global_step=2 * iteration, ckpt_path=ckpt_path)
    with lightning_log() as lines:
        callback.on_train_start(trainer, None)
    return lines


def _files(dirpath: Path) -> list[str]:
    return sorted(str(p.relative_to(dirpath)) for p in dirpath.rglob("*.ckpt"))


def _touch(dirpath: Path, *names: str) -> None:
    dirpath.mkdir(parents=True, exist_ok=True)
    for name in names:
        (dirpath / name).write_bytes(name.encode())


def test_a_resume_keeps_its_own_files_sets_others_aside_and_drops_what_it_recomputes(tmp_path):
    """Resumed at iteration 4: best-iter2 is in the restored state (kept); best-iter3 and best-iter4 are not
    (another run's, or written before a checkpoint of an older version): moved aside; best-iter6 was written after
    the checkpoint by the interrupted run, and the resumed run writes it again when it gets there: deleted."""
    names = ["best-iter0000002.ckpt", "best-iter0000003.ckpt", "best-iter0000004.ckpt", "best-iter0000006.ckpt"]
    _touch(tmp_path, *names)
    lines = _start(_callback(tmp_path, names[:1]), 4, str(tmp_path / "last.ckpt"))
    assert _files(tmp_path) == [names[0], f"previous-1/{names[1]}", f"previous-1/{names[2]}"]
    assert len(lines) == 2 and all("\n" not in line for line in lines)
    assert "best-iter0000006.ckpt" in lines[0] and "written after" in lines[0]
    assert "previous-1" in lines[1]


@pytest.mark.parametrize("ckpt_path", [None, "other-run/last.ckpt"])
def test_every_start_that_is_not_this_runs_resume_keeps_the_files(tmp_path, ckpt_path):
    """A fresh start, or a start from another run's checkpoint (whose state names another folder): each one moves
    the files it does not know into the next free previous-N, those of later iterations too (not this run's)."""
    _touch(tmp_path, "best-iter0000002.ckpt", "best-iter0000009.ckpt")
    _touch(tmp_path / "previous-1", "best-iter0000001.ckpt")
    (line,) = _start(_callback(tmp_path, []), 4, ckpt_path)
    assert _files(tmp_path) == [
        "previous-1/best-iter0000001.ckpt",
        "previous-2/best-iter0000002.ckpt",
        "previous-2/best-iter0000009.ckpt",
    ]
    assert "2 best checkpoints" in line and "previous-2" in line


def test_nothing_to_move_says_nothing(tmp_path):
    _touch(tmp_path, "last.ckpt")
    assert _start(_callback(tmp_path, []), 0, None) == []
    assert _start(_callback(tmp_path / "missing", []), 0, None) == []
    assert _files(tmp_path) == ["last.ckpt"]
