"""Hole-ratio buckets (0-10 %, ..., 50-60 %, 60-100 %): the by-hole-ratio tables and the manifests' buckets.

The buckets are ``(low, high]`` as in the irregular-mask literature; a ratio of 0 joins the first bucket and
everything above 60 % the last. Only numpy here, so :mod:`dmfn_lightning.manifest` (mask generation, bucket
labels) and the evaluation reports can share one definition without importing each other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["BUCKETS", "bucket_index", "bucket_label", "bucket_label_of", "by_hole_ratio"]

# Hole-ratio buckets (low, high] as in the irregular-mask literature; 0 joins the first bucket.
BUCKETS = (*((i / 10, (i + 1) / 10) for i in range(6)), (0.6, 1.0))


def bucket_label(low: float, high: float) -> str:
    """The label of the bucket ``(low, high]``: ``"10-20%"``."""
    return f"{round(low * 100)}-{round(high * 100)}%"


def bucket_index(ratio: float | np.ndarray) -> Any:
    """Index into :data:`BUCKETS` of a hole ratio (or an array of them): (low, high], 0 in the first bucket."""
    # ceil(10 r) - 1, with r = 0 in the first bucket and everything above 60 % in the last.
    index = np.clip(np.ceil(np.asarray(ratio, dtype=np.float64) * 10 - 1e-9).astype(int) - 1, 0, len(BUCKETS) - 1)
    return int(index) if index.ndim == 0 else index


def bucket_label_of(ratio: float) -> str:
    """The label (``"10-20%"``) of a hole ratio's bucket."""
    return bucket_label(*BUCKETS[bucket_index(ratio)])


def by_hole_ratio(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """Mean metrics per hole-ratio bucket (0-10 %, ..., 50-60 %, then 60-100 %); empty buckets have count 0."""
    index = bucket_index(np.array([r["hole_ratio"] for r in rows], dtype=np.float64))
    out = []
    for b, (low, high) in enumerate(BUCKETS):
        selected = [r for r, i in zip(rows, index) if i == b]
        entry: dict[str, Any] = {"bucket": bucket_label(low, high), "count": len(selected)}
        for name in metrics:
            values = [float(r[name]) for r in selected if r.get(name) is not None and not math.isnan(float(r[name]))]
            entry[name] = float(np.mean(values)) if values else None
        out.append(entry)
    return out
