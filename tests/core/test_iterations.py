"""core.iterations: the paper's iterations (a G step and a D step) and Lightning's global_step, two optimizer
steps each: the one factor between them, both ways."""

from __future__ import annotations

from dmfn_lightning.core.iterations import OPTIMIZER_STEPS_PER_ITERATION, global_steps_of, iterations_of


def test_one_iteration_is_two_optimizer_steps():
    assert OPTIMIZER_STEPS_PER_ITERATION == 2
    assert [iterations_of(step) for step in range(7)] == [0, 0, 1, 1, 2, 2, 3]  # a G step alone completes nothing
    assert [global_steps_of(n) for n in (0, 1, 3, 100_000)] == [0, 2, 6, 200_000]
    assert all(iterations_of(global_steps_of(n)) == n for n in range(1000))


def test_numbers_from_configs_and_tensors_are_converted_to_int():
    import torch

    assert iterations_of(torch.tensor(9)) == 4 and isinstance(iterations_of(torch.tensor(9)), int)
    assert global_steps_of("25") == 50 and iterations_of(7.0) == 3
