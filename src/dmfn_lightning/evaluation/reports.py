"""The reports of an evaluation: ``table1.md`` (the paper's Table 1 row beside ours) and ``per_image.csv``.

Table 1 of Hui et al. (arXiv:2002.02609) reports LPIPS / PSNR / SSIM with the centred 128 x 128 hole at 256 x 256;
:data:`PAPER_TABLE1` holds those rows. :func:`render_table1` turns an evaluation summary (as ``summary.json``) into
the Markdown report: the Table 1 comparison, each SSIM/PSNR convention, the by-hole-ratio table
(:mod:`dmfn_lightning.evaluation.buckets`) for free-form holes, FID/KID and the conventions used. Every column,
label, direction and number format is read from the table of metrics (:mod:`dmfn_lightning.metrics.table`).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dmfn_lightning.metrics.table import (
    METRICS,
    PER_IMAGE_COLUMNS,
    PER_IMAGE_MEANS,
    REPORT_METRICS,
    format_value,
    metric_spec,
)

__all__ = [
    "CSV_COLUMNS",
    "NOT_TABLE1_PROTOCOL",
    "PAPER_TABLE1",
    "ROW_METRICS",
    "format_value",
    "render_table1",
    "write_csv",
]

# Paper Table 1 (LPIPS / PSNR / SSIM), centre 128x128 hole at 256x256.
PAPER_TABLE1: dict[str, dict[str, Any]] = {
    "paris": {"name": "Paris StreetView", "images": 100, "lpips": 0.1018, "psnr": 25.00, "ssim": 0.8563},
    "places2": {"name": "Places2", "images": 100, "lpips": 0.1361, "psnr": 21.53, "ssim": 0.8079},
    "celeba_hq": {"name": "CelebA-HQ", "images": 2000, "lpips": 0.0460, "psnr": 26.50, "ssim": 0.8932},
    "ffhq": {"name": "FFHQ", "images": 10000, "lpips": 0.0457, "psnr": 26.49, "ssim": 0.8985},
}
# The columns of per_image.csv (a manifest run adds ``id`` and ``bucket`` after ``path``): the image, then every
# per-image value of the table of metrics.
CSV_COLUMNS = ("index", "path", "hole_ratio", *PER_IMAGE_COLUMNS)
# Per-image metrics averaged in the by-hole-ratio table (psnr_dataset is a dataset-level number, not a row's).
ROW_METRICS = PER_IMAGE_MEANS
# The warning above every comparison of our numbers with the paper's that were not measured with Table 1's protocol
# (table1.md here, experiments/collect.py for validation numbers).
NOT_TABLE1_PROTOCOL = (
    "> **Not the Table 1 protocol** (it needs 256x256 images and the exact centred 128x128 box): the paper's "
    "numbers below are not comparable to ours."
)


def _describe_lpips(info: Mapping[str, Any] | None) -> str:
    if not info:
        return "disabled"
    package = info.get("package_version")
    return (
        f"net {info['net']}, linear layers v{info['version']}"
        + (f", lpips package {package}" if package else "")
        + f", trunk weights: {info['backbone']}"
    )


def render_table1(summary: Mapping[str, Any]) -> str:
    """The Markdown report: the paper's Table 1 row beside ours, then the conventions."""
    names = [m.name for m in REPORT_METRICS]
    headers = [m.header for m in REPORT_METRICS]
    header = "| | " + " | ".join(headers) + " |"
    lines = [f"# DMFN evaluation: {summary['dataset_name']}", ""]
    if not summary["protocol"]["table1"]:
        lines += [NOT_TABLE1_PROTOCOL, ""]
    if summary["lpips"] and summary["lpips"]["backbone"] == "random":
        lines += ["> **LPIPS uses a RANDOM trunk** (lpips.backbone_weights=random): its numbers mean nothing.", ""]
    lines += [header, "|---" * (len(names) + 1) + "|"]
    paper = summary.get("paper_table1")
    if paper:
        lines.append(
            f"| DMFN, paper Table 1 ({paper['images']} images) | "
            + " | ".join(format_value(n, paper.get(n)) for n in names)
            + " |"
        )
    ours = summary["metrics"]
    lines.append(
        f"| ours: {summary['checkpoint_name']} ({summary['n_images']} images) | "
        + " | ".join(format_value(n, ours.get(n)) for n in names)
        + " |"
    )
    if not paper:
        lines += ["", f"(no Table 1 row in the paper for dataset {summary['dataset']!r})"]
    ssim = summary.get("ssim_convention")
    if ssim:
        lines += [
            "",
            f"The SSIM column is `ssim_{ssim}` (metrics.ssim={ssim}); the paper does not say which SSIM convention "
            "its Table 1 used, and the choice moves SSIM by about 0.02 (the table below has each).",
        ]
    shown = [(c.name, c.label) for m in METRICS for c in m.conventions if c.name in ours]
    if shown:
        lines += ["", "## SSIM and PSNR under each convention", "", "| | ours |", "|---|---|"]
        for key, label in shown:
            headline = " (headline)" if key in ("psnr", f"ssim_{ssim}") else ""
            lines.append(f"| `{key}`: {label}{headline} | {format_value(key, ours.get(key))} |")
    buckets = summary.get("by_hole_ratio")
    if buckets:
        lines += ["", "## By hole ratio", "", "| hole | images | " + " | ".join(headers) + " |"]
        lines.append("|---" * (len(names) + 2) + "|")
        for entry in buckets:
            cells = " | ".join(format_value(n, entry.get(n)) for n in names)
            lines.append(f"| {entry['bucket']} | {entry['count']} | {cells} |")
    lines += _render_fid_kid(summary)
    manifest = summary.get("manifest")
    if manifest:
        lines += [
            "",
            f"Evaluated through the manifest `{manifest['name']}`: {manifest['rows']} (image, mask) pairs, every mask "
            f"checked against its sha256 (content digest `{manifest['content_sha256'][:16]}`).",
        ]
    lines += ["", "## Conventions", ""]
    lines += [f"- **{k}**: {v}" for k, v in summary["conventions"].items()]
    lines += [
        f"- **mask**: {summary['protocol']['mask']}",
        f"- **image size**: {summary['protocol']['image_size']}",
        f"- **LPIPS**: {_describe_lpips(summary['lpips'])}",
        f"- **PSNR capped** (identical images): {summary['psnr_capped_images']}",
        "",
    ]
    return "\n".join(lines)


def _render_fid_kid(summary: Mapping[str, Any]) -> list[str]:
    info = summary.get("fid_kid")
    if not info:
        return []
    lines = ["", "## FID and KID", ""]
    if info.get("skipped"):
        return [*lines, f"Not computed: {info['skipped']}"]
    ours = summary["metrics"]
    names = info["metrics"]
    headers, cells = [], []
    for name in names:
        spec = metric_spec(name)
        # A dataset-level metric with a `<name>_std` column (KID over its subsets) shows it as "± std".
        std = f"{name}_std" if spec is not None and f"{name}_std" in spec.columns else None
        headers.append((spec.header if spec is not None else name) + (" (± std over subsets)" if std else ""))
        cell = format_value(name, ours.get(name))
        if std and ours.get(std) is not None:
            cell += f" ± {format_value(name, ours[std])}"
        cells.append(cell)
    lines += ["| " + " | ".join(headers) + " |", "|---" * len(names) + "|"]
    lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Features: {info['feature_extractor']} ({info['num_features']}-d), weights: {info['weights']}; "
        f"{info['images']}"
        + (
            f"; KID {info['kid_subsets']} subsets of {info['kid_subset_size']} (seed {info['kid_seed']})"
            if "kid" in names
            else ""
        )
        + ".",
    ]
    return lines


def _missing(value: Any) -> bool:
    # None and NaN (no hole for l1_hole, an image too small for an SSIM window) are written as empty cells.
    return value is None or (isinstance(value, float) and math.isnan(value))


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = CSV_COLUMNS) -> None:
    """``per_image.csv``: one row per image, missing values (None, NaN) as empty cells."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if _missing(row.get(k)) else row[k]) for k in columns})
