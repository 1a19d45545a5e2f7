"""The paper's iterations and Lightning's ``global_step``: the one place where the factor between them lives.

One iteration of the paper is a generator update and a discriminator update; Lightning counts each optimizer step
in ``global_step``. Configs, logs, checkpoints and the progress bar speak in iterations; every conversion goes
through these two functions.
"""

from __future__ import annotations

__all__ = ["OPTIMIZER_STEPS_PER_ITERATION", "global_steps_of", "iterations_of"]

OPTIMIZER_STEPS_PER_ITERATION = 2


def iterations_of(global_step: int) -> int:
    """Completed paper iterations after ``global_step`` Lightning optimizer steps."""
    return int(global_step) // OPTIMIZER_STEPS_PER_ITERATION


def global_steps_of(iterations: int) -> int:
    """Lightning's ``global_step`` after ``iterations`` paper iterations (``max_steps``, intervals, milestones)."""
    return int(iterations) * OPTIMIZER_STEPS_PER_ITERATION
