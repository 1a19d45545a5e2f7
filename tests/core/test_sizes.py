"""Processed sizes (dmfn_lightning.core.sizes): padding to a multiple of 4, the working resolution, and the one check
of a working size."""

from __future__ import annotations

import numpy as np
import pytest

from dmfn_lightning.core.errors import InpaintError
from dmfn_lightning.core.sizes import MIN_SIDE, MULTIPLE, check_working_size, pad_amounts, processed_dims, working_dims


def test_padding_reaches_a_multiple_of_four_and_the_minimum_side():
    assert (MULTIPLE, MIN_SIDE) == (4, 8)
    assert pad_amounts(199, 301) == (1, 3)
    assert pad_amounts(256, 256) == (0, 0)
    assert pad_amounts(3, 5) == (5, 3)  # too small: up to 8
    assert processed_dims(199, 301, None) == (200, 304)


def test_working_dims_keep_the_aspect_in_multiples_of_four():
    assert working_dims(199, 301, 64) == (44, 64)
    assert working_dims(300, 200, 64) == (64, 44)
    assert working_dims(400, 600, 256) == (172, 256)
    assert working_dims(10, 1000, 8) == (4, 8)  # never below one multiple
    assert processed_dims(400, 600, 200) == (132, 200)


def test_check_working_size_is_the_one_check_and_names_the_setting():
    assert check_working_size(None) is None
    assert check_working_size(8) == 8 and check_working_size(np.int64(512)) == 512
    for bad in (7, 0, -256, 64.0, True, "256"):
        with pytest.raises(InpaintError, match=rf"--working-size must be a whole number of pixels >= 8, got {bad!r}"):
            check_working_size(bad, "--working-size")
    with pytest.raises(InpaintError, match="working_size must be a whole number of pixels >= 8, got 4"):
        working_dims(100, 100, 4)  # the same check guards the low-level functions
    with pytest.raises(InpaintError, match="got 4"):
        processed_dims(100, 100, 4)
