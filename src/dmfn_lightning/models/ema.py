"""Exponential moving average of the generator's weights (an option, not part of the paper)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA(nn.Module):
    """Holds ``shadow``, a frozen copy of ``model`` updated as ``shadow = decay * shadow + (1 - decay) * model``.

    Registered as a submodule of the LightningModule, so its weights are saved in and restored from checkpoints
    like any other state.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay={decay} must be in (0, 1)")
        self.decay = decay
        self.shadow = copy.deepcopy(model).requires_grad_(False).eval()

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        shadow_params = list(self.shadow.parameters())
        params = [p.detach() for p in model.parameters()]
        # One fused op for all tensors: lerp towards the live weights by (1 - decay).
        torch._foreach_lerp_(shadow_params, params, 1.0 - self.decay)
        for b_shadow, b in zip(self.shadow.buffers(), model.buffers()):
            b_shadow.copy_(b)
