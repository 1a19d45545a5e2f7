"""models.generator: parameter counts, output shapes and range, input checks, the released initialisation and
the checkerboard-free upsampling option."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dmfn_lightning.models import DMFNGenerator, GlobalLocalDiscriminator, export_generator, load_generator
from tests.models.model_fakes import n_params


@pytest.mark.parametrize("block,expected", [("dmfb", 5_729_411), ("released", 9_037_443)])
def test_generator_parameter_counts(block, expected):
    assert n_params(DMFNGenerator(block=block)) == expected


def test_generator_without_blocks_count():
    assert n_params(DMFNGenerator(num_blocks=0)) == 1_954_947


@pytest.mark.parametrize("size", [(64, 64), (128, 96), (256, 256)])
def test_generator_output_shape(size):
    g = DMFNGenerator(num_blocks=1)
    x = torch.randn(1, 4, *size)
    with torch.no_grad():
        y = g(x)
    assert y.shape == (1, 3, *size)
    assert y.abs().max() <= 1.0  # tanh output


def test_generator_rejects_bad_input():
    g = DMFNGenerator(num_blocks=1)
    with pytest.raises(ValueError, match="divisible by 4"):
        g(torch.randn(1, 4, 30, 32))
    with pytest.raises(ValueError, match=r"\[N, 4, H, W\]"):
        g(torch.randn(1, 3, 32, 32))


def test_released_initialisation_statistics():
    torch.manual_seed(0)
    g = DMFNGenerator()
    conv_w = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, nn.Conv2d)])
    assert abs(conv_w.std().item() - 0.02) < 1e-3
    assert all(m.bias.abs().max() == 0 for m in g.modules() if isinstance(m, nn.Conv2d))
    d = GlobalLocalDiscriminator(64)
    bn_w = torch.cat([m.weight for m in d.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(bn_w.mean().item() - 1.0) < 5e-3


def _checkerboard(y: torch.Tensor) -> float:
    """Mean deviation of the four 2x2 sub-pixel phases from their mean: 0 for an output without a 2x2 pattern."""
    phases = [y[..., i::2, j::2] for i in range(2) for j in range(2)]
    mean = sum(phases) / 4
    return float(sum((p - mean).abs().mean() for p in phases) / 4)


def test_bilinear_upsample_init_starts_without_a_checkerboard(tmp_path):
    x = torch.zeros(2, 4, 64, 64)
    x[:, :3] = torch.linspace(-0.5, 0.5, 64)  # a smooth ramp around a square hole
    x[:, 3, 16:48, 16:48] = 1
    x[:, :3] *= 1 - x[:, 3:4]
    energies = {}
    for init in ("pytorch", "bilinear"):
        torch.manual_seed(0)
        g = DMFNGenerator(num_blocks=1, base_channels=16, upsample_init=init).eval()
        with torch.no_grad():
            energies[init] = _checkerboard(g(x)[..., 16:48, 16:48])
    assert energies["bilinear"] < 0.5 * energies["pytorch"], energies
    # The choice travels with the file; the default is not written, so the released layout is unchanged.
    g = DMFNGenerator(num_blocks=1, base_channels=16, upsample_init="bilinear")
    assert load_generator(export_generator(g, tmp_path / "g.pt")).config["upsample_init"] == "bilinear"
    assert "upsample_init" not in DMFNGenerator(num_blocks=1).config
    with pytest.raises(ValueError, match="upsample_init must be one of pytorch, bilinear, got 'icnr'"):
        DMFNGenerator(num_blocks=1, upsample_init="icnr")
