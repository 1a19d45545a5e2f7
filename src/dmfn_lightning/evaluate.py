"""Evaluate a generator with the paper's Table 1 protocol: ``python -m dmfn_lightning.evaluate ckpt=... data=paris``.

Protocol (Hui et al., arXiv:2002.02609, Section 4 and Table 1): the data group's test split at ``data.image_size``
(256), the exact centred 128 x 128 hole (``mask=center``), metrics on the whole composited image: LPIPS (AlexNet,
v0.1), PSNR and SSIM on [0, 255] RGB, plus L1 (whole image and hole only). SSIM and PSNR are reported under every
convention in use (``ssim_full``, ``ssim_cropped``, ``ssim_uniform7``; ``psnr`` per image and ``psnr_dataset``),
``metrics.ssim`` picks the headline ``ssim``; the conventions are described in :mod:`dmfn_lightning.metrics`.
Holes and crops are a pure function of (seed, image index), inference runs in eval mode with deterministic
kernels, so evaluating twice gives identical numbers.

Outputs (in the Hydra run dir, or ``output_dir=``, checked writable before any work): ``per_image.csv`` (one row per
image, every convention a column), ``summary.json`` (means, conventions, the paper's row, the LPIPS trunk and
package version; nothing run-dependent such as times or paths of the run dir, so two evaluations give
byte-identical files), ``table1.md`` (the paper's Table 1 row beside ours, then each SSIM/PSNR convention; for
free-form/irregular holes also a table by hole ratio 0-10 %, ..., 50-60 %), and with ``save_images=true`` the
inpainted PNGs in ``images/``.

Manifests (:mod:`dmfn_lightning.manifest`): ``manifest=eval.csv`` (or a shipped one, ``manifest=pkg:paris_center``)
evaluates exactly the manifest's (image, mask) pairs, after checking every mask against its checksum;
``manifest_out=eval.csv`` writes the evaluated pairs as a manifest (the CSV plus ``eval_masks/`` PNGs) that any
generator, or another framework through :func:`dmfn_lightning.manifest.score_outputs`, can be evaluated on.

FID and KID (``metrics.fid=true``, ``metrics.kid=true``; torchmetrics, over the whole test set, composited outputs
against ground truths): when the Inception weights are not cached the run says in one line where to put the file
and goes on with the other metrics.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from dmfn_lightning.config import compose, config_dir
from dmfn_lightning.errors import ConfigError, exit_on_user_error

if TYPE_CHECKING:
    from torch import nn

    from dmfn_lightning.manifest import Manifest

log = logging.getLogger(__name__)

# Paper Table 1 (LPIPS / PSNR / SSIM), centre 128x128 hole at 256x256.
PAPER_TABLE1: dict[str, dict[str, Any]] = {
    "paris": {"name": "Paris StreetView", "images": 100, "lpips": 0.1018, "psnr": 25.00, "ssim": 0.8563},
    "places2": {"name": "Places2", "images": 100, "lpips": 0.1361, "psnr": 21.53, "ssim": 0.8079},
    "celeba_hq": {"name": "CelebA-HQ", "images": 2000, "lpips": 0.0460, "psnr": 26.50, "ssim": 0.8932},
    "ffhq": {"name": "FFHQ", "images": 10000, "lpips": 0.0457, "psnr": 26.49, "ssim": 0.8985},
}
# Hole-ratio buckets (low, high] as in the irregular-mask literature; 0 joins the first bucket.
BUCKETS = (*((i / 10, (i + 1) / 10) for i in range(6)), (0.6, 1.0))
CSV_COLUMNS = (
    "index",
    "path",
    "hole_ratio",
    "psnr",
    "psnr_capped",
    "mse",
    "ssim",
    "ssim_full",
    "ssim_cropped",
    "ssim_uniform7",
    "lpips",
    "l1",
    "l1_hole",
)
# Per-image metrics averaged in the by-hole-ratio table (psnr_dataset is a dataset-level number, not a row's).
_ROW_METRICS = ("psnr", "ssim", "ssim_full", "ssim_cropped", "ssim_uniform7", "lpips", "l1", "l1_hole")
# The conventions' section of table1.md: (summary key, label).
_CONVENTION_LABELS = (
    ("psnr", "PSNR, mean of per-image values"),
    ("psnr_dataset", "PSNR of the mean MSE over the test set"),
    ("ssim_full", "SSIM full (torchmetrics: reflect-padded, whole map)"),
    ("ssim_cropped", "SSIM cropped (scikit-image, Gaussian 11 / 1.5, 5 px border cropped)"),
    ("ssim_uniform7", "SSIM uniform7 (scikit-image defaults: uniform 7x7, sample covariance)"),
)
_METRIC_LABELS = (
    ("lpips", "LPIPS ↓"),
    ("psnr", "PSNR ↑"),
    ("ssim", "SSIM ↑"),
    ("l1", "L1 ↓"),
    ("l1_hole", "L1 hole ↓"),
)


def compose_config(overrides: Sequence[str] | None = None, run_dir: str | Path | None = None) -> DictConfig:
    """The evaluation config composed in Python (tests, notebooks) as ``python -m dmfn_lightning.evaluate`` would."""
    return compose("eval", overrides, run_dir, job_name="evaluate")


# ---------------------------------------------------------------------------------------------------------------
# pieces


def _dataset_name(cfg: DictConfig) -> str | None:
    if cfg.get("dataset"):
        return str(cfg.dataset)
    if HydraConfig.initialized():
        return HydraConfig.get().runtime.choices.get("data")
    return None


def _output_dir(cfg: DictConfig) -> Path:
    if cfg.get("output_dir"):
        return Path(str(cfg.output_dir)).expanduser()
    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path.cwd()


def _ssim_choice(cfg: DictConfig) -> str:
    return str(OmegaConf.select(cfg, "metrics.ssim", default="full"))


def _check_config(cfg: DictConfig) -> None:
    if OmegaConf.is_missing(cfg, "ckpt") or not cfg.ckpt:
        raise ConfigError(
            "no checkpoint given: add ckpt=/path/to/checkpoint (a Lightning .ckpt, an exported generator.pt or the "
            "authors' released generator weights), e.g. `python -m dmfn_lightning.evaluate ckpt=outputs/.../last.ckpt "
            "data=paris`"
        )
    from dmfn_lightning.inpainting import PRECISIONS
    from dmfn_lightning.metrics import LPIPS_NETS, SSIM_CONVENTIONS

    if cfg.precision not in PRECISIONS:
        raise ConfigError(f"invalid config: precision={cfg.precision!r}; allowed: {', '.join(PRECISIONS)}")
    if cfg.lpips.net not in LPIPS_NETS:
        raise ConfigError(f"invalid config: lpips.net={cfg.lpips.net!r}; allowed: {', '.join(LPIPS_NETS)}")
    if cfg.batch_size is not None and int(cfg.batch_size) < 1:
        raise ConfigError(f"invalid config: batch_size={cfg.batch_size!r}; allowed: an integer >= 1 or null")
    for key in ("fid", "kid"):
        value = OmegaConf.select(cfg, f"metrics.{key}", default=False)
        if not isinstance(value, bool):
            raise ConfigError(f"invalid config: metrics.{key}={value!r}; allowed: true, false")
    for key in ("kid_subsets", "kid_subset_size"):
        value = OmegaConf.select(cfg, f"metrics.{key}", default=1)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"invalid config: metrics.{key}={value!r}; allowed: an integer >= 1")
    if cfg.get("manifest") and cfg.get("manifest_out"):
        source, target = str(cfg.manifest), str(cfg.manifest_out)
        if not source.startswith("pkg:") and Path(source).expanduser().resolve() == Path(target).expanduser().resolve():
            raise ConfigError(f"manifest_out={target} is the manifest being evaluated; write the copy elsewhere")
    ssim = _ssim_choice(cfg)
    if ssim not in SSIM_CONVENTIONS:
        raise ConfigError(f"invalid config: metrics.ssim={ssim!r}; allowed: {', '.join(SSIM_CONVENTIONS)}")
    size = OmegaConf.select(cfg, "data.image_size")
    if size is not None and int(size) < SSIM_CONVENTIONS[ssim].min_side:
        # The other conventions are reported as empty cells when they do not fit; the headline must be defined.
        fits = [n for n, c in SSIM_CONVENTIONS.items() if int(size) >= c.min_side]
        raise ConfigError(
            f"invalid config: metrics.ssim={ssim} needs images of at least {SSIM_CONVENTIONS[ssim].min_side} px, "
            f"data.image_size={size}; use larger images" + (f" or metrics.ssim={'|'.join(fits)}" if fits else "")
        )


def _resolve_device(cfg: DictConfig) -> torch.device:
    """``cfg.device`` as a torch device; errors name the Hydra override ``device=``, not a command-line flag."""
    from dmfn_lightning.inpainting import resolve_device

    name = str(cfg.device)
    if name.lower() != "auto":
        try:
            requested = torch.device(name.lower())
        except RuntimeError as err:
            raise ConfigError(f"invalid config: device={name!r}; allowed: auto, cpu, cuda, cuda:N") from err
        if requested.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device={name} requested but CUDA is not available here; use device=cpu or device=auto")
    return resolve_device(name)


def _check_output_dir(out_dir: Path) -> None:
    """Create the output folder and prove it writable, so a bad ``output_dir`` fails before any work."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(
            f"output_dir {out_dir} is an existing file, not a folder; choose a folder with output_dir=..."
        )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(
            f"cannot create output_dir {out_dir} ({err.strerror or err}); choose another with output_dir=..."
        ) from err
    # Permission bits are not the whole story (root, ACLs, read-only mounts): actually write a file.
    try:
        handle, probe = tempfile.mkstemp(prefix=".write-test-", dir=out_dir)
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        raise ConfigError(
            f"output_dir {out_dir} is not writable ({err.strerror or err}); choose another with output_dir=..."
        ) from err


def _freeze_mask_augmentation(mask_generator: Any) -> None:
    """Irregular mask files are flipped/rotated for training; an evaluation uses each file as it is."""
    if hasattr(mask_generator, "augment"):
        mask_generator.augment = False
    for child in getattr(mask_generator, "masks", None) or []:
        _freeze_mask_augmentation(child)


def _build_datamodule(cfg: DictConfig):
    from hydra.utils import instantiate

    from dmfn_lightning.data.datasets import DataError

    data_cfg = cfg.data.copy()
    with open_dict(data_cfg):
        if cfg.batch_size is not None:
            data_cfg.eval_batch_size = int(cfg.batch_size)
        if cfg.num_workers is not None:
            data_cfg.num_workers = int(cfg.num_workers)
    try:
        datamodule = instantiate(data_cfg)
        _freeze_mask_augmentation(datamodule.eval_mask)
        datamodule.setup("test")
    except DataError as err:
        raise DataError(
            f"{err}. Evaluation data is read from $DMFN_DATA/<dataset> (or data.root=...); see conf/data/ and the "
            "README's 'Reproducing the paper' section for the expected layout."
        ) from err
    return datamodule


def is_box_mask(mask_generator: Any) -> bool:
    """Box holes (Table 1) get no by-hole-ratio table."""
    from dmfn_lightning.data.masks import CenterMask, RandomBoxMask

    return isinstance(mask_generator, CenterMask | RandomBoxMask)


def table1_protocol(datamodule: Any) -> bool:
    """True for the exact Table 1 setting: 256 px images and the exact centred half-size box."""
    from dmfn_lightning.data.masks import CenterMask

    mask = getattr(datamodule, "eval_mask", None)
    return (
        isinstance(mask, CenterMask)
        and mask.hole_size == (0.5, 0.5)
        and not mask.shrink
        and int(getattr(datamodule, "image_size", 0)) == 256
    )


def bucket_label(low: float, high: float) -> str:
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


def _fmt(name: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.2f}" if name.startswith(("psnr", "fid")) else f"{value:.4f}"


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
    names = [n for n, _ in _METRIC_LABELS]
    header = "| | " + " | ".join(label for _, label in _METRIC_LABELS) + " |"
    lines = [f"# DMFN evaluation: {summary['dataset_name']}", ""]
    if not summary["protocol"]["table1"]:
        lines += [
            "> **Not the Table 1 protocol** (it needs 256x256 images and the exact centred 128x128 box): the paper's "
            "numbers below are not comparable to ours.",
            "",
        ]
    if summary["lpips"] and summary["lpips"]["backbone"] == "random":
        lines += ["> **LPIPS uses a RANDOM trunk** (lpips.backbone_weights=random): its numbers mean nothing.", ""]
    lines += [header, "|---" * (len(names) + 1) + "|"]
    paper = summary.get("paper_table1")
    if paper:
        lines.append(
            f"| DMFN, paper Table 1 ({paper['images']} images) | "
            + " | ".join(_fmt(n, paper.get(n)) for n in names)
            + " |"
        )
    ours = summary["metrics"]
    lines.append(
        f"| ours: {summary['checkpoint_name']} ({summary['n_images']} images) | "
        + " | ".join(_fmt(n, ours.get(n)) for n in names)
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
    shown = [(key, label) for key, label in _CONVENTION_LABELS if key in ours]
    if shown:
        lines += ["", "## SSIM and PSNR under each convention", "", "| | ours |", "|---|---|"]
        for key, label in shown:
            headline = " (headline)" if key in ("psnr", f"ssim_{ssim}") else ""
            lines.append(f"| `{key}`: {label}{headline} | {_fmt(key, ours.get(key))} |")
    buckets = summary.get("by_hole_ratio")
    if buckets:
        lines += ["", "## By hole ratio", "", "| hole | images | " + " | ".join(lb for _, lb in _METRIC_LABELS) + " |"]
        lines.append("|---" * (len(names) + 2) + "|")
        for entry in buckets:
            cells = " | ".join(_fmt(n, entry.get(n)) for n in names)
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
    header = {"fid": "FID ↓", "kid": "KID ↓ (± std over subsets)"}
    lines += ["| " + " | ".join(header[n] for n in names) + " |", "|---" * len(names) + "|"]
    cells = []
    for name in names:
        cell = _fmt(name, ours.get(name))
        if name == "kid" and ours.get("kid_std") is not None:
            cell += f" ± {_fmt('kid', ours['kid_std'])}"
        cells.append(cell)
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


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = CSV_COLUMNS) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if _missing(row.get(k)) else row[k]) for k in columns})


def _save_images(out_dir: Path, output, names: Sequence[str]) -> None:
    from PIL import Image

    from dmfn_lightning.metrics import quantize

    pixels = quantize(output).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    for array, name in zip(pixels, names):
        Image.fromarray(array, "RGB").save(out_dir / f"{name}.png")


def _row_ids(batch: Mapping[str, Any]) -> list[str]:
    """Names of a batch's rows: the manifest ids, else ``<index>_<image stem>`` (also the saved images' names)."""
    if "id" in batch:
        return [str(i) for i in batch["id"]]
    return [f"{int(index):05d}_{Path(path).stem}" for index, path in zip(batch["index"].tolist(), batch["path"])]


# ---------------------------------------------------------------------------------------------------------------
# metrics over a run, and its reports (shared with dmfn_lightning.manifest.score_outputs)


class EvaluationRun:
    """Metrics of one evaluation, batch by batch, and the reports built from them.

    ``add_batch(batch, output)`` takes a data batch (``image``, ``mask``, ``index``, ``path``; ``id`` and ``bucket``
    from a manifest) and the composited outputs; :meth:`summary` and :meth:`write_reports` make ``summary.json``,
    ``per_image.csv`` and ``table1.md``. FID/KID are computed when asked for and available; when the Inception
    weights are missing, :attr:`fid_kid_note` holds the one-line reason (printed once) and the rest goes on.
    """

    def __init__(
        self,
        device: str | torch.device = "cpu",
        lpips: bool | str = True,
        lpips_net: str = "alex",
        lpips_backbone_weights: str = "imagenet",
        lpips_override: str = "lpips.backbone_weights",
        ssim: str = "full",
        fid: bool = False,
        kid: bool = False,
        inception_weights: str = "auto",
        inception_override: str = "metrics.inception_weights",
        feature_extractor: nn.Module | None = None,
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        seed: int = 0,
        manifest: Manifest | None = None,
        console: Any = None,
    ) -> None:
        from dmfn_lightning.inpainting import resolve_device
        from dmfn_lightning.metrics import InpaintingMetrics

        self.device = resolve_device(device)
        # A random LPIPS trunk (smoke tests) is then the same function of the seed in every entry point.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            self.metrics = InpaintingMetrics(
                lpips=lpips,
                lpips_net=lpips_net,
                lpips_backbone_weights=lpips_backbone_weights,
                lpips_override=lpips_override,
                ssim=ssim,
                all_conventions=True,
            ).to(self.device)
        self.manifest = manifest
        self.rows: list[dict[str, Any]] = []
        self.fid_kid_requested = bool(fid or kid)
        self.fid_kid_note: str | None = None
        self.distribution = None
        if self.fid_kid_requested:
            from dmfn_lightning.metrics import DistributionMetrics, FeatureExtractorUnavailableError

            try:
                self.distribution = DistributionMetrics(
                    fid=fid,
                    kid=kid,
                    feature=feature_extractor,
                    weights=str(inception_weights),
                    kid_subsets=kid_subsets,
                    kid_subset_size=kid_subset_size,
                    seed=seed,
                    override=inception_override,
                ).to(self.device)
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
        names = _row_ids(batch)
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
        from dmfn_lightning.data.datasets import DataError

        if not self.rows:
            raise DataError("no image could be evaluated (all were skipped as unreadable)")
        self.rows.sort(key=lambda r: r["index"])
        # NaN (e.g. no image had a hole) is null in JSON: json.dumps would write the invalid token NaN.
        means: dict[str, float | None] = {
            k: (None if math.isnan(float(v)) else float(v)) for k, v in self.metrics.compute().items()
        }
        if self.distribution is not None:
            means.update(self.distribution.compute())
        description = self.metrics.describe()
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
            from dmfn_lightning.manifest import is_table1_manifest

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
                self.distribution.describe() if self.distribution is not None else {"skipped": self.fid_kid_note}
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
            summary["by_hole_ratio"] = by_hole_ratio(self.rows, [n for n in _ROW_METRICS if n in self.metrics.names])
        summary.update(fields)
        return summary

    def write_reports(self, out_dir: Path, summary: Mapping[str, Any]) -> None:
        """``per_image.csv``, ``summary.json`` and ``table1.md`` in ``out_dir``."""
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_csv(out_dir / "per_image.csv", self.rows, self.columns)
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        (out_dir / "table1.md").write_text(render_table1(summary))


# ---------------------------------------------------------------------------------------------------------------
# the evaluation


def _manifest_settings(datamodule: Any) -> tuple[Path | None, bool, Any]:
    """(data root, allow_upscale, test source) of a data module whose test images a manifest can name."""
    from dmfn_lightning.data.datamodule import DMFNDataModule

    if not isinstance(datamodule, DMFNDataModule):
        raise ConfigError(
            f"manifests need an image-folder data group (paris, places2, celeba_hq, ffhq, folder), not "
            f"{type(datamodule).__name__}"
        )
    source = datamodule.source("test")
    allow = bool(source.allow_upscale if source and source.allow_upscale is not None else datamodule.allow_upscale)
    return (Path(datamodule.root).expanduser() if datamodule.root else None), allow, source


def _check_manifest_out_data(datamodule: Any) -> None:
    """A written manifest records image paths, not crops: the test images must be centre-cropped at full scale."""
    _root, _allow, source = _manifest_settings(datamodule)
    crop = (source.crop if source else None) or "center"
    scale = tuple(source.scale) if source and source.scale else (1.0, 1.0)
    hflip = source.hflip if source and source.hflip is not None else 0.0
    if crop != "center" or scale != (1.0, 1.0) or hflip:
        raise ConfigError(
            f"manifest_out needs centre-cropped test images at scale 1 without flips (the test split has crop={crop}, "
            f"scale={list(scale)}, hflip={hflip}): a manifest records image paths, not crops"
        )


def _relative_image(path: str, root: Path | None) -> str:
    """A manifest's image column: relative to the data root when the image is under it."""
    absolute = Path(path).expanduser().resolve()
    if root is not None:
        try:
            return absolute.relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return str(absolute)


def _manifest_loader(cfg: DictConfig, datamodule: Any, console: Any):
    """The manifest (masks made and verified) and a DataLoader over its pairs."""
    from torch.utils.data import DataLoader

    from dmfn_lightning.data.datasets import collate_samples, list_images
    from dmfn_lightning.manifest import (
        ManifestDataset,
        ManifestError,
        mask_size,
        materialise,
        read_manifest,
        resolve_images,
    )

    root, allow_upscale, source = _manifest_settings(datamodule)
    manifest = read_manifest(str(cfg.manifest), cfg.get("manifest_masks"))
    with console.status(f"checking the masks of {manifest.name} ({len(manifest.rows)} rows)"):
        materialise(manifest)
    size = mask_size(manifest)
    if size != int(datamodule.image_size):
        raise ManifestError(
            f"the masks of {manifest.source} are {size}x{size} but data.image_size={datamodule.image_size}; "
            f"set data.image_size={size}"
        )
    # A flat folder (FFHQ without its NN000/ sub-folders) is matched by file name among the test split's files.
    paths = resolve_images(manifest, root, (lambda: list_images(source)) if source is not None else None)
    dataset = ManifestDataset(manifest, paths, size, allow_upscale)
    workers = int(cfg.num_workers) if cfg.num_workers is not None else int(datamodule.num_workers)
    batch_size = int(cfg.batch_size) if cfg.batch_size is not None else int(datamodule.eval_batch_size)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate_samples)
    return manifest, loader


def evaluate(cfg: DictConfig, feature_extractor: nn.Module | None = None) -> dict[str, Any]:
    """Run the evaluation described by ``cfg`` (see ``conf/eval.yaml``); returns the summary.

    ``feature_extractor``: a module ``uint8 [B, 3, H, W] -> [B, d]`` used for FID/KID instead of Inception v3
    (tests, or your own feature network).
    """
    from hydra.utils import instantiate
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from dmfn_lightning.inpainting import run_generator
    from dmfn_lightning.manifest import ManifestWriter
    from dmfn_lightning.models import load_generator

    _check_config(cfg)
    out_dir = _output_dir(cfg)
    _check_output_dir(out_dir)
    writer = ManifestWriter(str(cfg.manifest_out)) if cfg.get("manifest_out") else None
    if writer is not None:
        writer.check_writable()
    start = time.perf_counter()
    device = _resolve_device(cfg)
    torch.manual_seed(int(cfg.seed))
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    console = Console(stderr=True)
    # Cheap failures first: checkpoint, LPIPS weights, then the data.
    generator = load_generator(str(cfg.ckpt), map_location=device, prefer_ema=bool(cfg.prefer_ema))
    metric_cfg = cfg.get("metrics") or {}
    run = EvaluationRun(
        device=device,
        lpips=bool(cfg.lpips.enabled),
        lpips_net=str(cfg.lpips.net),
        lpips_backbone_weights=str(cfg.lpips.backbone_weights),
        lpips_override="lpips.backbone_weights",
        ssim=_ssim_choice(cfg),
        fid=bool(metric_cfg.get("fid", False)),
        kid=bool(metric_cfg.get("kid", False)),
        inception_weights=str(metric_cfg.get("inception_weights", "auto")),
        feature_extractor=feature_extractor,
        kid_subsets=int(metric_cfg.get("kid_subsets", 100)),
        kid_subset_size=int(metric_cfg.get("kid_subset_size", 1000)),
        seed=int(cfg.seed),
        console=console,
    )
    manifest = None
    if cfg.get("manifest"):
        data_cfg = cfg.data.copy()
        datamodule = instantiate(data_cfg)
        manifest, loader = _manifest_loader(cfg, datamodule, console)
        run.manifest = manifest
    else:
        datamodule = _build_datamodule(cfg)
        loader = datamodule.test_dataloader()
    if writer is not None:
        _check_manifest_out_data(datamodule)
    image_dir = out_dir / "images"
    if cfg.save_images:
        image_dir.mkdir(exist_ok=True)
    rows_by_index = {row.id: row for row in manifest.rows} if manifest is not None else {}
    data_root = _manifest_settings(datamodule)[0] if writer is not None else None

    columns = (TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, disable=not cfg.progress) as progress:
        task = progress.add_task("eval", total=len(loader))
        for batch in loader:
            if batch["image"].shape[0] == 0:  # every image of the batch was skipped (on_bad_image=skip)
                progress.advance(task)
                continue
            image = batch["image"].to(device, non_blocking=True)
            mask = batch["mask"].to(device, non_blocking=True)
            with torch.inference_mode():
                output = run_generator(generator, image, mask, str(cfg.precision))
            names = run.add_batch(batch, output)
            if cfg.save_images:
                _save_images(image_dir, output, names)
            if writer is not None:
                holes = (batch["mask"][:, 0] > 0.5).numpy()
                for j, name in enumerate(names):
                    if manifest is not None:  # a copy keeps ids, images, seeds and generators
                        row = rows_by_index[name]
                        writer.add(name, row.image, holes[j], row.seed, row.generator, row.bucket)
                    else:
                        writer.add(name, _relative_image(batch["path"][j], data_root), holes[j], int(cfg.seed))
            progress.advance(task)

    name = _dataset_name(cfg)
    paper = PAPER_TABLE1.get(name or "")
    image_size = int(datamodule.image_size)
    protocol: dict[str, Any] = {
        "image_size": image_size,
        "seed": int(cfg.seed),
        "precision": str(cfg.precision),
        "device_type": device.type,
        "prefer_ema": bool(cfg.prefer_ema),
    }
    if manifest is None:
        protocol = {"table1": table1_protocol(datamodule), "mask": repr(datamodule.eval_mask), **protocol}
    summary = run.summary(
        dataset=name,
        dataset_name=paper["name"] if paper else (name or "custom data"),
        checkpoint=str(cfg.ckpt),
        checkpoint_name=Path(str(cfg.ckpt)).name,
        generator=dict(getattr(generator, "config", {})),
        skipped_images=int(getattr(datamodule, "skipped_count", 0)) if manifest is None else 0,
        paper_table1=paper,
        protocol=protocol,
        by_hole_ratio=None if manifest is not None else not is_box_mask(datamodule.eval_mask),
    )
    run.write_reports(out_dir, summary)
    if manifest is None:
        datamodule.teardown("test")
    written = writer.close() if writer is not None else None

    elapsed = time.perf_counter() - start
    shown = ", ".join(f"{k} {_fmt(k, v)}" for k, v in summary["metrics"].items())
    console.print(f"{summary['n_images']} images in {elapsed:.1f} s: {shown}")
    console.print(f"wrote per_image.csv, summary.json and table1.md to {out_dir}")
    if written is not None:
        console.print(f"wrote the manifest {written} ({len(writer.rows)} rows, masks in {writer.mask_dir})")
    return summary


@hydra.main(config_path=str(config_dir()), config_name="eval", version_base="1.3")
@exit_on_user_error
def _main(cfg: DictConfig) -> None:
    evaluate(cfg)


def main() -> None:
    """Command-line entry point (``dmfn-evaluate``; Hydra overrides as arguments)."""
    _main()


if __name__ == "__main__":
    main()
