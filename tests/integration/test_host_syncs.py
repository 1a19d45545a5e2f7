"""Host-device synchronisations per training iteration, counted without a GPU.

Every ``Tensor.item()``, ``bool(tensor)``, ``.tolist()``, ``.cpu()``, ``.numpy()``, ``float()/int()`` of a CUDA
tensor waits for the GPU. :mod:`benchmarks.host_syncs` counts those calls on CPU during a tiny training run, split
into iterations where Lightning writes logs (``trainer.log_every_n_steps``) and iterations where it does not, and
names the line of each. The counts below are pinned: a new sync in the step fails this test with the table of
where each one comes from (``python -m benchmarks.host_syncs`` prints the same table).
"""

from __future__ import annotations

import operator
import sys
import warnings
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # the benchmarks package lives at the top of the checkout, not in the wheel
    sys.path.insert(0, str(REPO))

from benchmarks.host_syncs import (  # noqa: E402
    SYNC_METHODS,
    CudaSyncRecorder,
    TensorCallRecorder,
    count_host_syncs,
    format_summary,
    recording,
)

# Measured on the tree with the sync removal of commit 3e3334b (fused Adam skipping non-finite updates on the
# device, the non-finite streak read on logging iterations only); before it (efd713b) the same run counted
# 5 per iteration without logging (4 in training_step: two bool(isfinite) per update, module.py, and two more
# in the streak check) and 19 with logging (4 in training_step).
# Then the module also logged `g_total` to the progress bar, and Lightning converted that value to a float after
# every batch (logger_connector.py on_batch_end), logging or not: 1 sync without logging, 16 with. The bar now
# shows no metric, so an iteration that writes no logs has no sync at all.
# With logging: the 12 logged metrics written by log_metrics, and the streak's .item() in training_step.
EXPECTED = {
    "not_logged": {"syncs": 0, "in_training_step": 0},
    "logged": {"syncs": 13, "in_training_step": 1},
}


def test_tensor_call_recorder_counts_each_sync_method_and_restores_tensor():
    originals = {name: getattr(torch.Tensor, name) for name in SYNC_METHODS}
    own = {name for name in SYNC_METHODS if name in torch.Tensor.__dict__}
    recorder = TensorCallRecorder()
    t = torch.tensor([1.5])
    with recording(recorder):
        t.item()  # not counted: no iteration set yet
        recorder.iteration = 0
        t.item(), bool(t), t.tolist(), t.cpu(), t.numpy(), float(t), int(t), operator.index(torch.tensor(3))
        recorder.in_step = True
        t.item()
        # Adam's host-side step counters (non-fused, single-tensor path) are no device sync: reported apart
        p = torch.nn.Parameter(torch.ones(2))
        p.grad = torch.ones(2)
        torch.optim.Adam([p], foreach=False).step()
    summary = recorder.summary([0])
    row = summary["iterations"][0]
    assert row["syncs"] == 9 and row["in_training_step"] == 1, row
    assert {site.split(" @ ")[0] for site in row["sites"]} == set(SYNC_METHODS)
    assert all(__file__.endswith(site.split(" @ ")[1].rsplit(":", 1)[0]) for site in row["sites"]), row["sites"]
    assert sum(summary["host_side_calls_not_counted"].values()) >= 1
    for name in SYNC_METHODS:  # every wrapper removed: the methods are the originals again
        assert getattr(torch.Tensor, name) is originals[name], name
        assert (name in torch.Tensor.__dict__) == (name in own), name


def test_cuda_sync_recorder_counts_sync_debug_warnings(monkeypatch):
    modes = []
    monkeypatch.setattr(torch.cuda, "get_sync_debug_mode", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", modes.append)
    recorder = CudaSyncRecorder()
    with pytest.warns(UserWarning, match="an unrelated warning"), recording(recorder):
        recorder.iteration = 3
        for _ in range(2):  # the same line twice: "always", not once per location
            warnings.warn("called a synchronizing CUDA operation", UserWarning, stacklevel=1)
        warnings.warn("an unrelated warning", UserWarning, stacklevel=1)  # passed on, not counted
    assert modes == ["warn", 0]
    summary = recorder.summary([3])
    assert summary["iterations"][0]["syncs"] == 2
    (site,) = summary["iterations"][0]["sites"]
    assert "tests/integration/test_host_syncs.py:" in site


@pytest.mark.slow
def test_host_syncs_per_training_iteration(tmp_path):
    summary = count_host_syncs(tmp_path / "run")
    report = format_summary(summary)
    print(report)
    measured = {
        group: {"syncs": summary[group]["syncs"], "in_training_step": summary[group]["in_training_step"]}
        for group in EXPECTED
    }
    expected = {group: {key: [value] for key, value in counts.items()} for group, counts in EXPECTED.items()}
    assert measured == expected, (
        "host syncs per training iteration changed (lists: the distinct counts over the counted iterations); "
        f"update EXPECTED only for an intended change.\n{report}"
    )
