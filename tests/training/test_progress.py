"""What a user reads while a run trains: the progress bar and Lightning's end message count the paper's iterations
(one G and one D update), never Lightning's optimizer steps (two per iteration)."""

from __future__ import annotations

import re

import pytest

RUNS = [("first", 2, 0), ("second", 3, 0), ("resumed", 6, 1), ("whole", 6, 1)]  # run, iterations, last epoch


def _bar_line(text: str) -> str:
    """The train bar's last rendered line."""
    lines = [line for line in text.splitlines() if "iteration" in line]
    assert lines, f"no train bar in the recorded output:\n{text}"
    return lines[-1]


@pytest.mark.parametrize(("run", "iterations", "epoch"), RUNS)
def test_the_bar_counts_iterations_in_its_title_and_its_counter(tiny_runs, run, iterations, epoch):
    """Before: "Epoch 0 · iteration 0/2 ━━━ 2/3" (a title set at the epoch start, a total of min(batches per
    epoch, remaining optimizer steps))."""
    line = _bar_line(tiny_runs[run].bar)
    assert line.startswith(f"Epoch {epoch} · iteration {iterations}/{iterations} "), line
    counters = re.findall(r"(?<!\S)(\d+)/(\d+)(?!\S)", line)
    assert counters == [(str(iterations), str(iterations))] * 2, line  # the title's and the counter's


@pytest.mark.parametrize(("run", "iterations", "epoch"), RUNS)
def test_lightning_says_it_stopped_after_so_many_iterations(tiny_runs, run, iterations, epoch):
    """Before: "`Trainer.fit` stopped: `max_steps=12` reached." for a run of trainer.max_steps=6."""
    stops = [line for line in tiny_runs[run].logs if "stopped" in line]
    assert stops == [f"`Trainer.fit` stopped after {iterations} iterations (trainer.max_steps={iterations})."]
