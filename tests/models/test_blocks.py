"""models.blocks: the DMFB variants of Tables 2 and 3 (parameter counts, dilations, the combination rules of
Fig. 3) and the authors' released block, computed by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dmfn_lightning.models import BLOCK_SPECS, DMFB, build_block, convert_released_state_dict
from tests.models.model_fakes import n_params, released_layout_state_dict


@pytest.mark.parametrize(
    "name,expected",
    [
        ("dmfb", 471_808),
        ("no_ki", 361_024),
        ("no_combination", 361_024),
        ("rate2", 471_808),
        ("rate8", 471_808),
        ("released", 885_312),
    ],
)
def test_block_parameter_counts(name, expected):
    assert n_params(build_block(name)) == expected


def test_unknown_block_lists_valid_names():
    with pytest.raises(ValueError) as err:
        build_block("dmfb2")
    message = str(err.value)
    assert "dmfb2" in message
    for name in BLOCK_SPECS:
        assert name in message


@pytest.mark.parametrize(
    "name,dilations",
    [
        ("dmfb", (1, 2, 4, 8)),
        ("no_ki", (1, 2, 4, 8)),
        ("no_combination", (1, 2, 4, 8)),
        ("rate2", (2, 2, 2, 2)),
        ("rate8", (8, 8, 8, 8)),
        ("released", (1, 2, 4, 8)),
    ],
)
def test_block_dilations_and_structure(name, dilations):
    block = build_block(name)
    assert tuple(conv.dilation[0] for conv in block.branches) == dilations
    assert tuple(conv.padding[0] for conv in block.branches) == dilations  # "same" output size
    assert all(conv.kernel_size == (3, 3) for conv in block.branches)
    n_k = 0 if block.combine is None else len(block.combine)
    assert n_k == (3 if name in ("dmfb", "rate2", "rate8") else 0)
    assert block.fusion.kernel_size == ((3, 3) if name == "released" else (1, 1))
    x = torch.randn(1, 256, 12, 12)
    assert block(x).shape == x.shape


def _fusion_input(block: DMFB, x: torch.Tensor) -> torch.Tensor:
    captured = []
    handle = block.norm.register_forward_pre_hook(lambda m, inp: captured.append(inp[0].clone()))
    block(x)
    handle.remove()
    return captured[0]  # the first IN call normalises the concatenation


@pytest.mark.parametrize("combination", ["hierarchical", "cumulative", "none"])
def test_combination_rules_follow_fig3(combination):
    """The concatenation fed to the fusion follows Fig. 3: y_1 = x_1, y_i = K_i(x_i + y_(i-1)) (hierarchical),
    y_i = x_i + y_(i-1) (cumulative, 'w/o K_i'), or the raw branches ('w/o combination')."""
    torch.manual_seed(0)
    x = torch.randn(1, 8, 6, 6)
    block = DMFB(8, combination=combination)
    with torch.no_grad():
        got = _fusion_input(block, x)
        reduced = block.c1(x)
        xs = [b(reduced) for b in block.branches]
        if combination == "none":
            ys = xs
        else:
            ys = [xs[0]]
            for i in range(1, 4):
                s = xs[i] + ys[-1]
                ys.append(block.combine[i - 1](s) if combination == "hierarchical" else s)
    torch.testing.assert_close(got, torch.cat(ys, dim=1))


def test_released_block_forward_matches_released_formula():
    """Our released variant computes x + IN(c2(ReLU(IN(cat(d1, d1+d2, d1+d2+d3, d1+..+d4))))) with c1 + IN + ReLU."""
    state = {k.removeprefix("module."): v for k, v in released_layout_state_dict(1).items()}
    block = build_block("released")
    block.load_state_dict(
        {
            k.removeprefix("blocks.0."): v
            for k, v in convert_released_state_dict(state).items()
            if k.startswith("blocks.0.")
        }
    )
    x = torch.randn(1, 256, 8, 8)
    norm = nn.InstanceNorm2d(256)

    def conv(t, key, d=1):
        return nn.functional.conv2d(
            t, state[f"blocks.0.{key}.weight"], state[f"blocks.0.{key}.bias"], padding=d, dilation=d
        )

    out1 = torch.relu(norm(conv(x, "c1")))
    d = [conv(out1, f"d{k}", r) for k, r in zip(range(1, 5), (1, 2, 4, 8))]
    combine = torch.cat([d[0], d[0] + d[1], d[0] + d[1] + d[2], d[0] + d[1] + d[2] + d[3]], 1)
    expected = x + norm(conv(torch.relu(norm(combine)), "c2"))
    torch.testing.assert_close(block(x), expected, atol=1e-5, rtol=1e-4)
