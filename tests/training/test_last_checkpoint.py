"""``last.ckpt`` of a run that stopped and resumed equals that of the run that never stopped, wherever it stopped:
on a validation iteration (``first``, 2 iterations), and mid-epoch between two scheduled checkpoints (``second``, 3
iterations: its last save is the one at the end of training)."""

from __future__ import annotations

from tests.training.tiny_runs import differences


def test_a_run_stopped_twice_ends_as_the_run_that_never_stopped(tiny_runs):
    """Before: the save at the end of a run that stopped mid-epoch (iteration 3 of 4) came after Lightning had
    counted the epoch as completed; the resumed run started a new epoch there (iteration 4 in epoch 2, not 1)."""
    resumed, whole = tiny_runs["resumed"].last, tiny_runs["whole"].last
    assert resumed["global_step"] == whole["global_step"] == 12
    assert differences(resumed, whole) == []


def test_the_epoch_column_of_the_log_follows_the_uninterrupted_run(tiny_runs):
    epochs = {int(float(r["iteration"])): r["epoch"] for r in tiny_runs["resumed"].rows if r.get("iteration")}
    assert epochs == {1: "0", 2: "0", 3: "0", 4: "0", 5: "1", 6: "1"}
