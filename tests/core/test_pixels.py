"""core.pixels: the one pixel convention, 8-bit level v <-> v / 127.5 - 1: exact round trips of all 256 levels,
clamping and rounding on the way back, and decoded [H, W, 3] arrays as [3, H, W] tensors."""

from __future__ import annotations

import numpy as np
import torch

from dmfn_lightning.core.pixels import from_levels, from_rgb_array, to_levels, to_uint8

ALL_LEVELS = torch.arange(256, dtype=torch.uint8)


def test_every_level_maps_to_v_over_127_5_minus_1_and_back_exactly():
    x = from_levels(ALL_LEVELS)
    assert x.dtype == torch.float32
    assert x[0].item() == -1.0 and x[255].item() == 1.0 and x[51].item() == np.float32(51 / 127.5 - 1)
    torch.testing.assert_close(x.double(), ALL_LEVELS.double() / 127.5 - 1, rtol=0, atol=1e-7)
    assert torch.equal(to_uint8(x), ALL_LEVELS)  # all 256 levels survive the round trip
    assert torch.equal(to_levels(x), ALL_LEVELS.float())
    assert torch.equal(from_levels(ALL_LEVELS.float()), x)  # float 0..255 levels too


def test_to_levels_clamps_and_rounds_to_the_nearest_level():
    x = torch.tensor([-3.0, -1.0, 1.0, 7.0, float("inf"), float("-inf")])
    assert to_levels(x).tolist() == [0.0, 0.0, 255.0, 255.0, 255.0, 0.0]
    assert to_uint8(x).dtype == torch.uint8
    levels = ALL_LEVELS.double()
    nudged = (levels + 0.4) / 127.5 - 1  # 0.4 of a level above: rounds down to the level
    assert torch.equal(to_uint8(nudged.clamp(max=1.0)), ALL_LEVELS)
    assert torch.equal(to_uint8(((levels - 0.4) / 127.5 - 1).clamp(min=-1.0)), ALL_LEVELS)
    assert to_levels(torch.tensor([100.6 / 127.5 - 1])).item() == 101.0
    assert to_levels(torch.tensor([0.25], dtype=torch.float64)).dtype == torch.float32


def test_rgb_array_becomes_channels_first_in_minus_one_to_one_and_is_copied():
    array = np.zeros((2, 3, 3), dtype=np.uint8)
    array[..., 0] = 255  # red
    array[1, 2] = (0, 51, 102)
    x = from_rgb_array(array)
    assert x.shape == (3, 2, 3) and x.dtype == torch.float32
    assert x[:, 0, 0].tolist() == [1.0, -1.0, -1.0]
    assert to_uint8(x[:, 1, 2]).tolist() == [0, 51, 102]
    array[0, 0] = 0  # the tensor does not share the array's memory
    assert x[0, 0, 0].item() == 1.0
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(to_uint8(from_rgb_array(image)).permute(1, 2, 0).numpy(), image)  # byte-identical
