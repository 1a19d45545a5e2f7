"""A probability-weighted mixture of hole generators: choose one per sample, or overlay several."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from dmfn_lightning.masks.base import MaskGenerator, MaskResult, bbox_around

__all__ = ["MixedMask"]


class MixedMask(MaskGenerator, kind="mixed"):
    """A probability-weighted mixture of other generators.

    ``combine="choose"``: pick one generator with probability proportional to its weight; ``bbox`` is that
    generator's. ``combine="union"``: include each generator independently with its probability (at least one:
    if none is drawn, one is chosen by weight) and OR the holes; ``bbox`` is centred on the union
    (:func:`bbox_around`). ``masks`` and ``probs`` are mappings with the same keys (as composed by
    ``conf/mask/mixed.yaml``) or sequences of the same length.

    Not a kind for photos (``for_photos``): whether a mixture needs mask files depends on its parts.
    """

    def __init__(
        self,
        masks: Mapping[str, MaskGenerator] | Sequence[MaskGenerator],
        probs: Mapping[str, float] | Sequence[float] | None = None,
        combine: str = "choose",
    ) -> None:
        if isinstance(masks, Mapping):
            names = [str(k) for k in masks]
            generators = [masks[k] for k in masks]
            if probs is None:
                weights = [1.0] * len(names)
            elif isinstance(probs, Mapping):
                unknown = set(probs) - set(names)
                if unknown:
                    raise ValueError(f"probs names unknown masks {sorted(unknown)}; masks are {names}")
                weights = [float(probs.get(k, 0.0)) for k in names]
            else:
                weights = [float(p) for p in probs]
        else:
            generators = list(masks)
            names = [type(g).__name__ for g in generators]
            weights = [1.0] * len(generators) if probs is None else [float(p) for p in probs]  # type: ignore[union-attr]
        if not generators:
            raise ValueError("MixedMask needs at least one mask generator")
        if len(weights) != len(generators):
            raise ValueError(f"MixedMask got {len(generators)} masks but {len(weights)} probabilities")
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"MixedMask probabilities must be >= 0 and not all 0, got {weights}")
        if combine not in ("choose", "union"):
            raise ValueError(f"MixedMask combine must be 'choose' or 'union', got {combine!r}")
        if combine == "union" and any(w > 1 for w in weights):
            raise ValueError(f"with combine='union' each probability must be <= 1, got {weights}")
        self.names = names
        self.masks = generators
        self.probs = weights
        self.combine = combine

    def __call__(self, height: int, width: int, rng: np.random.Generator) -> MaskResult:
        p = np.asarray(self.probs, dtype=np.float64)
        if self.combine == "choose":
            k = int(rng.choice(len(self.masks), p=p / p.sum()))
            return self.masks[k](height, width, rng)
        chosen = [k for k in range(len(self.masks)) if rng.random() < p[k]]
        if not chosen:
            chosen = [int(rng.choice(len(self.masks), p=p / p.sum()))]
        if len(chosen) == 1:
            return self.masks[chosen[0]](height, width, rng)
        union = torch.zeros(1, height, width, dtype=torch.float32)
        for k in chosen:
            union = torch.maximum(union, self.masks[k](height, width, rng)[0])
        return union, bbox_around(union)
