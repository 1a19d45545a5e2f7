"""evaluation.reports: table1.md (the paper's row beside ours, the conventions, the by-hole-ratio table, FID/KID)
and per_image.csv, from hand-made summaries."""

from __future__ import annotations

import csv

from dmfn_lightning.evaluation.reports import CSV_COLUMNS, NOT_TABLE1_PROTOCOL, PAPER_TABLE1, render_table1, write_csv


def _summary(**changes) -> dict:
    summary = {
        "dataset": "paris",
        "dataset_name": "Paris StreetView",
        "checkpoint_name": "last.ckpt",
        "n_images": 100,
        "metrics": {"psnr": 25.5, "ssim": 0.86, "lpips": 0.1, "l1": 0.02, "l1_hole": 0.1},
        "paper_table1": {"images": 100, "lpips": 0.1018, "psnr": 25.00, "ssim": 0.8563},
        "protocol": {"table1": True, "mask": "CenterMask()", "image_size": 256},
        "lpips": {"net": "alex", "version": "0.1", "backbone": "/x/alexnet.pth"},
        "psnr_capped_images": 0,
        "conventions": {"psnr": "..."},
    }
    summary.update(changes)
    return summary


def test_paper_row_beside_ours():
    table = render_table1(_summary())
    assert "| | LPIPS ↓ | PSNR ↑ | SSIM ↑ | L1 ↓ | L1 hole ↓ |" in table
    assert "| DMFN, paper Table 1 (100 images) | 0.1018 | 25.00 | 0.8563 | n/a | n/a |" in table
    assert "| ours: last.ckpt (100 images) | 0.1000 | 25.50 | 0.8600 | 0.0200 | 0.1000 |" in table
    assert "Not the Table 1 protocol" not in table
    assert PAPER_TABLE1["paris"]["psnr"] == 25.00


def test_not_the_table1_protocol_is_said_first():
    # experiments/collect.py says it with the same line (tests/experiments/test_collect.py)
    assert NOT_TABLE1_PROTOCOL == (
        "> **Not the Table 1 protocol** (it needs 256x256 images and the exact centred 128x128 box): the paper's "
        "numbers below are not comparable to ours."
    )
    table = render_table1(_summary(protocol={"table1": False, "mask": "FreeFormMask()", "image_size": 64}))
    assert table.splitlines()[:3] == ["# DMFN evaluation: Paris StreetView", "", NOT_TABLE1_PROTOCOL]


def test_conventions_by_hole_ratio_and_fid_kid_sections():
    metrics = {
        "psnr": 25.5, "ssim": 0.85, "lpips": None, "l1": 0.02, "l1_hole": float("nan"), "psnr_dataset": 24.987,
        "ssim_full": 0.85, "ssim_cropped": 0.84, "ssim_uniform7": 0.83, "fid": 12.3456, "kid": 0.01, "kid_std": 0.002,
    }  # fmt: skip
    buckets = [{"bucket": "0-10%", "count": 2, "psnr": 30.0, "ssim": None}, {"bucket": "10-20%", "count": 0}]
    fid_kid = {
        "metrics": ["fid", "kid"], "feature_extractor": "custom: F", "num_features": 8, "weights": "custom",
        "images": "composited outputs vs ground truths", "kid_subsets": 3, "kid_subset_size": 2, "kid_seed": 0,
    }  # fmt: skip
    table = render_table1(
        _summary(metrics=metrics, ssim_convention="cropped", by_hole_ratio=buckets, fid_kid=fid_kid, lpips=None)
    )
    assert "| `psnr`: PSNR, mean of per-image values (headline) | 25.50 |" in table
    assert "| `psnr_dataset`: PSNR of the mean MSE over the test set | 24.99 |" in table
    assert "| `ssim_full`: SSIM full (torchmetrics: reflect-padded, whole map) | 0.8500 |" in table
    assert "(scikit-image, Gaussian 11 / 1.5, 5 px border cropped) (headline) | 0.8400 |" in table
    assert "| hole | images | LPIPS ↓ | PSNR ↑ | SSIM ↑ | L1 ↓ | L1 hole ↓ |" in table
    assert "| 0-10% | 2 | n/a | 30.00 | n/a | n/a | n/a |" in table and "| 10-20% | 0 | n/a |" in table
    assert "| FID ↓ | KID ↓ (± std over subsets) |" in table and "| 12.35 | 0.0100 ± 0.0020 |" in table
    assert "KID 3 subsets of 2 (seed 0)" in table and "- **LPIPS**: disabled" in table
    skipped = render_table1(_summary(fid_kid={"skipped": "FID/KID skipped: no weights"}))
    assert "Not computed: FID/KID skipped: no weights" in skipped


def test_per_image_csv_writes_missing_values_as_empty_cells(tmp_path):
    rows = [
        {"index": 0, "path": "a.png", "hole_ratio": 0.0, "psnr": 30.0, "l1_hole": float("nan"), "extra": 1},
        {"index": 1, "path": "b.png", "hole_ratio": 0.25, "psnr": 20.5, "lpips": None, "l1_hole": 0.1},
    ]
    write_csv(tmp_path / "per_image.csv", rows)
    with (tmp_path / "per_image.csv").open() as f:
        written = list(csv.DictReader(f))
    assert tuple(written[0]) == CSV_COLUMNS  # extra keys are not columns
    assert written[0]["l1_hole"] == "" and written[0]["psnr"] == "30.0" and written[0]["ssim"] == ""
    assert written[1]["lpips"] == "" and written[1]["l1_hole"] == "0.1"
