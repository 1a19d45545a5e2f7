"""evaluation.buckets: the hole-ratio buckets (low, high], their labels, and the by-hole-ratio means."""

from __future__ import annotations

import numpy as np

from dmfn_lightning.evaluation.buckets import BUCKETS, bucket_index, bucket_label, bucket_label_of, by_hole_ratio


def test_bucket_edges():
    rows = [{"hole_ratio": r, "psnr": 20.0 + i} for i, r in enumerate([0.0, 0.1, 0.1001, 0.55, 0.9])]
    buckets = by_hole_ratio(rows, ["psnr"])
    assert len(buckets) == len(BUCKETS)
    assert [b["count"] for b in buckets] == [2, 1, 0, 0, 0, 1, 1]  # (low, high]; 0 joins 0-10 %
    assert buckets[0]["psnr"] == 20.5 and buckets[2]["psnr"] is None


def test_bucket_labels_and_indices():
    assert [bucket_label(*b) for b in BUCKETS] == ["0-10%", "10-20%", "20-30%", "30-40%", "40-50%", "50-60%", "60-100%"]
    assert [bucket_label_of(r) for r in (0.0, 0.1, 0.1001, 0.6, 0.61, 1.0)] == [
        "0-10%", "0-10%", "10-20%", "50-60%", "60-100%", "60-100%"
    ]  # fmt: skip
    assert bucket_index(0.35) == 3 and isinstance(bucket_index(0.35), int)
    assert bucket_index(np.array([0.0, 0.2, 0.75])).tolist() == [0, 1, 6]


def test_missing_values_do_not_count_towards_a_buckets_mean():
    rows = [
        {"hole_ratio": 0.05, "l1_hole": 0.2, "ssim": float("nan")},
        {"hole_ratio": 0.05, "l1_hole": None, "ssim": 0.5},
        {"hole_ratio": 0.05, "l1_hole": 0.4, "ssim": 0.7},
    ]
    first = by_hole_ratio(rows, ["l1_hole", "ssim", "lpips"])[0]
    assert first["count"] == 3 and first["lpips"] is None
    assert first["l1_hole"] == 0.30000000000000004 and first["ssim"] == 0.6
