"""The metrics of one evaluation, batch by batch, and its reports: shared by ``evaluate`` and ``score_outputs``.

:class:`EvaluationRun` scores composited outputs with :class:`~dmfn_lightning.metrics.InpaintingMetrics` (LPIPS,
PSNR and SSIM on [0, 255] RGB under every convention, L1; Hui et al., arXiv:2002.02609, Table 1) and, when asked
for, FID/KID with :class:`~dmfn_lightning.metrics.DistributionMetrics`; it then builds ``summary.json`` and writes the
reports of :mod:`dmfn_lightning.evaluation.reports`. :mod:`dmfn_lightning.evaluate` feeds it a generator's outputs,
:func:`dmfn_lightning.evaluation.manifests.scoring.score_outputs` the PNGs of another framework; both describe the
metrics they want with one :class:`~dmfn_lightning.metrics.options.MetricOptions`.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from dmfn_lightning.core.devices import resolve_device
from dmfn_lightning.core.errors import DataError
from dmfn_lightning.evaluation.buckets import by_hole_ratio
from dmfn_lightning.evaluation.manifests.files import Manifest
from dmfn_lightning.evaluation.manifests.protocols import is_table1_manifest
from dmfn_lightning.evaluation.outputs import check_plain_name
from dmfn_lightning.evaluation.reports import CSV_COLUMNS, ROW_METRICS, render_table1, write_csv
from dmfn_lightning.metrics import FeatureExtractorUnavailableError, MetricOptions
from dmfn_lightning.metrics.pixel import quantize

__all__ = ["EvaluationRun", "row_ids", "save_images"]


def save_images(out_dir: Path, output: torch.Tensor, names: Sequence[str]) -> None:
    """The composited outputs ``[B, 3, H, W]`` in [-1, 1] as ``<name>.png``, quantized as the metrics see them.

    Every name must be a plain file name (:class:`~dmfn_lightning.core.errors.OutputPathError` before anything is
    written): nothing is written outside ``out_dir``."""
    for name in names:
        check_plain_name(name, out_dir, "image name")
    pixels = quantize(output).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    for array, name in zip(pixels, names):
        Image.fromarray(array, "RGB").save(out_dir / f"{name}.png")


def row_ids(batch: Mapping[str, Any]) -> list[str]:
    """Names of a batch's rows: the manifest ids, else ``<index>_<image stem>`` (also the saved images' names)."""
    if "id" in batch:
        return [str(i) for i in batch["id"]]
    return [f"{int(index):05d}_{Path(path).stem}" for index, path in zip(batch["index"].tolist(), batch["path"])]


class EvaluationRun:
    """Metrics of one evaluation, batch by batch, and the reports built from them.

    ``options`` (:class:`~dmfn_lightning.metrics.options.MetricOptions`) say which metrics and how; ``seed`` seeds
    a random LPIPS trunk and KID's subsets. ``add_batch(batch, output)`` takes a data batch (``image``, ``mask``,
    ``index``, ``path``; ``id`` and ``bucket`` from a manifest) and the composited outputs; :meth:`summary` and
    :meth:`write_reports` make ``summary.json``, ``per_image.csv`` and ``table1.md``. FID/KID are computed when
    asked for and available; when the Inception weights are missing, :attr:`fid_kid_note` holds the one-line reason
    (printed once) and the rest goes on.
    """

    def __init__(
        self,
        device: str | torch.device = "cpu",
        options: MetricOptions | None = None,
        seed: int = 0,
        manifest: Manifest | None = None,
        console: Any = None,
    ) -> None:
        self.device = resolve_device(device)
        self.options = options if options is not None else MetricOptions()
        # A random LPIPS trunk (smoke tests) is then the same function of the seed in every entry point.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            self.metrics = self.options.inpainting_metrics(all_conventions=True).to(self.device)
        self.manifest = manifest
        self.rows: list[dict[str, Any]] = []
        self.fid_kid_requested = self.options.fid_kid
        self.fid_kid_note: str | None = None
        self.distribution = None
        if self.fid_kid_requested:
            try:
                self.distribution = self.options.distribution_metrics(seed=int(seed)).to(self.device)
            except FeatureExtractorUnavailableError as err:
                self.fid_kid_note = f"FID/KID skipped: {err}; the other metrics are computed"
                if console is not None:
                    console.print(self.fid_kid_note, markup=False, highlight=False, soft_wrap=True)
                else:
                    print(self.fid_kid_note, file=sys.stderr)

    def add_batch(self, batch: Mapping[str, Any], output: torch.Tensor) -> list[str]:
        """Score one batch of composited outputs; returns the rows' names (for saved images)."""
        image = batch["image"].to(self.device, non_blocking=True)
        mask = batch["mask"].to(self.device, non_blocking=True)
        # Outside inference mode so the metric states stay ordinary tensors (DDP-gatherable, resettable).
        self.metrics.update(output, image, mask)
        if self.distribution is not None:
            self.distribution.update(output, image)
        values = {k: v.cpu().tolist() for k, v in self.metrics.last_per_image.items()}
        names = row_ids(batch)
        for j, index in enumerate(batch["index"].tolist()):
            row: dict[str, Any] = {"index": int(index), "path": str(batch["path"][j]), "id": names[j]}
            if "bucket" in batch:
                row["bucket"] = str(batch["bucket"][j])
            row.update({k: v[j] for k, v in values.items()})
            self.rows.append(row)
        return names

    @property
    def columns(self) -> tuple[str, ...]:
        if self.manifest is None:
            return CSV_COLUMNS
        return (*CSV_COLUMNS[:2], "id", "bucket", *CSV_COLUMNS[2:])

    def summary(self, **fields: Any) -> dict[str, Any]:
        """The summary: ``fields`` (dataset, checkpoint, protocol, ...) plus the metrics and conventions."""
        if not self.rows:
            raise DataError("no image could be evaluated (all were skipped as unreadable)")
        self.rows.sort(key=lambda r: r["index"])
        # NaN (e.g. no image had a hole) is null in JSON: json.dumps would write the invalid token NaN.
        means: dict[str, float | None] = {
            k: (None if math.isnan(float(v)) else float(v)) for k, v in self.metrics.compute().items()
        }
        if self.distribution is not None:
            means.update(self.distribution.compute())
        description = self.metrics.settings()
        summary: dict[str, Any] = {
            "dataset": fields.pop("dataset", None),
            "dataset_name": fields.pop("dataset_name", "custom data"),
            "checkpoint": fields.pop("checkpoint", None),
            "checkpoint_name": fields.pop("checkpoint_name", None),
            **{k: fields.pop(k) for k in ("generator",) if k in fields},
            "n_images": len(self.rows),
            **{k: fields.pop(k) for k in ("skipped_images",) if k in fields},
            "metrics": means,
            "psnr_capped_images": sum(bool(r["psnr_capped"]) for r in self.rows),
            "paper_table1": fields.pop("paper_table1", None),
        }
        protocol = dict(fields.pop("protocol", {}))
        if self.manifest is not None:
            protocol.setdefault("table1", protocol.get("image_size") == 256 and is_table1_manifest(self.manifest))
            protocol.setdefault("mask", f"manifest {self.manifest.name}")
        protocol.setdefault("table1", False)
        protocol.setdefault("mask", "unknown")
        summary["protocol"] = protocol
        summary.update(
            {
                "ssim_convention": description["ssim_convention"],
                "lpips": description["lpips"],
                "conventions": description["conventions"],
            }
        )
        if self.fid_kid_requested:
            summary["fid_kid"] = (
                self.distribution.settings() if self.distribution is not None else {"skipped": self.fid_kid_note}
            )
        if self.manifest is not None:
            summary["manifest"] = {
                "name": self.manifest.name,
                "rows": len(self.manifest.rows),
                "content_sha256": self.manifest.content_sha256(),
                "buckets": self.manifest.buckets(),
            }
        show_buckets = fields.pop("by_hole_ratio", None)
        if show_buckets is None:
            show_buckets = self.manifest is not None and len(self.manifest.buckets()) > 1
        if show_buckets:
            summary["by_hole_ratio"] = by_hole_ratio(self.rows, [n for n in ROW_METRICS if n in self.metrics.names])
        summary.update(fields)
        return summary

    def write_reports(self, out_dir: Path, summary: Mapping[str, Any]) -> None:
        """``per_image.csv``, ``summary.json`` and ``table1.md`` in ``out_dir``."""
        out_dir.mkdir(parents=True, exist_ok=True)
        write_csv(out_dir / "per_image.csv", self.rows, self.columns)
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        (out_dir / "table1.md").write_text(render_table1(summary))
