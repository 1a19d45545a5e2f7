"""models.ema: the exponential moving average of the generator's weights (shadow = decay * shadow + (1 - decay) *
model), its frozen shadow copy, the buffers it copies and the decay it refuses."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dmfn_lightning.models.ema import EMA


def _net(weight: float) -> nn.Module:
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(weight)
    return net


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5, 1.5])
def test_decay_outside_the_open_unit_interval_is_refused(decay):
    with pytest.raises(ValueError, match=rf"ema_decay={decay} must be in \(0, 1\)"):
        EMA(_net(1.0), decay)


def test_update_moves_the_shadow_by_one_minus_decay_and_copies_buffers():
    model = _net(1.0)
    ema = EMA(model, decay=0.75)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(5.0)
    model[1].running_mean.fill_(3.0)
    assert all(torch.equal(p, torch.ones_like(p)) for p in ema.shadow.parameters())  # a copy, not a view
    ema.update(model)
    assert all(torch.equal(p, torch.full_like(p, 2.0)) for p in ema.shadow.parameters())  # 0.75 * 1 + 0.25 * 5
    assert torch.equal(ema.shadow[1].running_mean, torch.full((2,), 3.0))  # buffers: copied, not averaged
    ema.update(model)
    assert all(torch.equal(p, torch.full_like(p, 2.75)) for p in ema.shadow.parameters())  # 0.75 * 2 + 0.25 * 5
    assert all(torch.equal(p, torch.full_like(p, 5.0)) for p in model.parameters())  # the live model untouched


def test_shadow_is_frozen_in_eval_mode_and_saved_under_shadow():
    model = _net(1.0).train()
    ema = EMA(model, decay=0.9)
    assert not ema.shadow.training and model.training
    assert all(not p.requires_grad for p in ema.shadow.parameters())
    assert all(p.requires_grad for p in model.parameters())
    assert set(ema.state_dict()) == {f"shadow.{k}" for k in model.state_dict()}
    assert ema.decay == 0.9
