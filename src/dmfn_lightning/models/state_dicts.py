"""Comparing and loading state dicts strictly, with errors that name the keys that do not fit."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from dmfn_lightning.core.errors import CheckpointError

__all__ = ["load_state_into", "state_mismatch"]


def state_mismatch(own: Mapping[str, Tensor], state: Mapping[str, Tensor]) -> str:
    """'' when ``state`` fits ``own`` key for key and shape for shape, else a summary naming the bad keys."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if tuple(state[k].shape) != tuple(own[k].shape)
    ]
    parts = []
    for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatch", shapes)):
        if keys:
            more = f" (+{len(keys) - 6} more)" if len(keys) > 6 else ""
            parts.append(f"{label}: {', '.join(keys[:6])}{more}")
    return "; ".join(parts)


def load_state_into(model: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` whose error names the missing, unexpected and mis-shaped keys."""
    mismatch = state_mismatch(model.state_dict(), state)
    if mismatch:
        raise CheckpointError(
            f"{source} does not match a DMFNGenerator{model.config if hasattr(model, 'config') else ''}: "
            f"{mismatch}. Was it trained with another model/block variant?"
        )
    model.load_state_dict(state, strict=True)
