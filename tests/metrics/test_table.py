"""metrics.table: the one table of metrics and every list read from it (the names of the metric states and the
training logs, summary.json's conventions, per_image.csv's columns, table1.md's columns and labels, the formats)."""

from __future__ import annotations

import math

import pytest
import torch

from dmfn_lightning.evaluation.reports import CSV_COLUMNS, PAPER_TABLE1, ROW_METRICS
from dmfn_lightning.metrics import InpaintingMetrics, per_image_metrics
from dmfn_lightning.metrics.ssim import SSIM_CONVENTIONS
from dmfn_lightning.metrics.table import (
    CONVENTION_NAMES,
    METRIC_NAMES,
    METRICS,
    PAPER_METRICS,
    PER_IMAGE_COLUMNS,
    PER_IMAGE_MEANS,
    REPORT_METRICS,
    conventions,
    format_value,
    metric_spec,
)
from tests.metrics.metric_images import levels_to_tensor, random_levels


def test_the_lists_read_from_the_table_are_the_reports_columns():
    # What the reports, summary.json and the training logs have always had, in their order (reading the lists
    # from the table must not move a column).
    assert METRIC_NAMES == ("psnr", "ssim", "lpips", "l1", "l1_hole")
    assert CONVENTION_NAMES == ("psnr_dataset", "ssim_full", "ssim_cropped", "ssim_uniform7")
    assert CSV_COLUMNS == (
        "index", "path", "hole_ratio", "psnr", "psnr_capped", "mse", "ssim", "ssim_full", "ssim_cropped",
        "ssim_uniform7", "lpips", "l1", "l1_hole",
    )  # fmt: skip
    assert CSV_COLUMNS[3:] == PER_IMAGE_COLUMNS
    assert ROW_METRICS == PER_IMAGE_MEANS
    assert PER_IMAGE_MEANS == ("psnr", "ssim", "ssim_full", "ssim_cropped", "ssim_uniform7", "lpips", "l1", "l1_hole")
    assert [m.header for m in REPORT_METRICS] == ["LPIPS ↓", "PSNR ↑", "SSIM ↑", "L1 ↓", "L1 hole ↓"]
    labels = [(c.name, c.label) for m in METRICS for c in m.conventions]
    assert labels == [
        ("psnr", "PSNR, mean of per-image values"),
        ("psnr_dataset", "PSNR of the mean MSE over the test set"),
        ("ssim_full", "SSIM full (torchmetrics: reflect-padded, whole map)"),
        ("ssim_cropped", "SSIM cropped (scikit-image, Gaussian 11 / 1.5, 5 px border cropped)"),
        ("ssim_uniform7", "SSIM uniform7 (scikit-image defaults: uniform 7x7, sample covariance)"),
    ]


def test_the_paper_columns_are_the_papers_in_its_order():
    assert [m.name for m in PAPER_METRICS] == ["lpips", "psnr", "ssim"]  # Tables 1-3 print LPIPS, PSNR, SSIM
    assert all(set(row) - {"name", "images"} == {m.name for m in PAPER_METRICS} for row in PAPER_TABLE1.values())
    assert [m.name for m in REPORT_METRICS][: len(PAPER_METRICS)] == [m.name for m in PAPER_METRICS]


def test_every_row_is_complete_and_every_name_unique():
    keys = [key for m in METRICS for key in (m.name, *(c.name for c in m.named_conventions), *m.columns)]
    assert len(keys) == len(set(keys)), keys
    for m in METRICS:
        assert m.label and m.description and m.digits in (2, 4), m.name
        assert m.per_image == (m.name not in ("fid", "kid")), m.name
        # a per-image metric has a function, except LPIPS, whose network per_image_metrics holds
        assert (m.compute is None) == (not m.per_image or m.name == "lpips"), m.name
        for convention in m.named_conventions:
            assert convention.description, convention.name
            assert convention.per_image or (convention.from_mean_of and convention.finish), convention.name
            assert metric_spec(convention.name) is m
    directions = {m.name: m.higher_is_better for m in METRICS}
    assert directions == {
        "psnr": True, "ssim": True, "lpips": False, "l1": False, "l1_hole": False, "fid": False, "kid": False
    }  # fmt: skip


def test_per_image_metrics_and_the_means_cover_the_table(random_lpips):
    out = levels_to_tensor(random_levels((3, 3, 64, 64), seed=1))
    gt = levels_to_tensor(random_levels((3, 3, 64, 64), seed=2))
    mask = torch.zeros(3, 1, 64, 64)
    mask[:2, :, 16:48, 16:48] = 1  # the last image has no hole
    values = per_image_metrics(out, gt, mask, random_lpips)
    assert set(values) == {*PER_IMAGE_COLUMNS, "hole_ratio"}
    metric = InpaintingMetrics(lpips=random_lpips, all_conventions=True)
    metric.update(out, gt, mask)
    result = metric.compute()
    assert tuple(result) == METRIC_NAMES + CONVENTION_NAMES
    for name in PER_IMAGE_MEANS:
        spec = metric_spec(name)
        defined = values[name][~values[name].isnan()] if spec.mean_over_defined else values[name]
        assert float(result[name]) == pytest.approx(float(defined.double().mean()), abs=1e-5), name
    assert math.isnan(float(values["l1_hole"][2])) and len(values["l1_hole"][~values["l1_hole"].isnan()]) == 2


def test_conventions_describe_every_reported_name():
    described = conventions("full")
    assert list(described) == ["images", "psnr", "psnr_dataset", "ssim", "ssim_full", "ssim_cropped",
                               "ssim_uniform7", "lpips", "l1", "l1_hole"]  # fmt: skip
    assert described["ssim"] == "the headline SSIM: ssim_full (metrics.ssim=full)"
    assert conventions("uniform7")["ssim"] == "the headline SSIM: ssim_uniform7 (metrics.ssim=uniform7)"
    for name, convention in SSIM_CONVENTIONS.items():
        assert described[f"ssim_{name}"] == convention.description
    assert "capped at 100 dB" in described["psnr"] and "capped at 100 dB" in described["psnr_dataset"]
    with pytest.raises(ValueError, match="full, cropped, uniform7"):
        conventions("gaussian")


def test_format_value_uses_each_rows_decimals():
    assert format_value("psnr", 25.004) == "25.00" and format_value("psnr_dataset", 21.999) == "22.00"
    assert format_value("fid", 3.14159) == "3.14"
    for name in ("ssim", "ssim_cropped", "lpips", "l1", "l1_hole", "kid", "kid_std", "not_a_metric"):
        assert format_value(name, 0.123456) == "0.1235", name
    assert format_value("psnr", None) == format_value("ssim", float("nan")) == "n/a"
    assert metric_spec("kid").columns == ("kid_std",) and metric_spec("nope") is None
