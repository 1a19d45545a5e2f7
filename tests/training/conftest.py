"""Fixtures of tests/training: one set of tiny trainings per session (:mod:`tests.training.tiny_runs`)."""

from __future__ import annotations

import pytest
import rich

from tests.training.tiny_runs import TinyRun, tiny_run


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> dict[str, TinyRun]:
    """One run folder trained to iteration 2 (``first``: it ends on a validation iteration), resumed to 3
    (``second``: it ends mid-epoch, between two scheduled checkpoints), resumed to 6 (``resumed``: across the epoch
    end at 4), then restarted there with ``ckpt_path=null`` for 2 iterations (``fresh``); and a run of 6 iterations
    in another folder that was never interrupted (``whole``)."""
    run_dir = tmp_path_factory.mktemp("tiny")
    try:
        runs = {
            "first": tiny_run(run_dir, 2),
            "second": tiny_run(run_dir, 3),
            "resumed": tiny_run(run_dir, 6),
            "fresh": tiny_run(run_dir, 2, "ckpt_path=null"),
            "whole": tiny_run(tmp_path_factory.mktemp("whole"), 6),
        }
    finally:
        rich.reconfigure()  # the bar recorded into the process-wide console
    return runs
