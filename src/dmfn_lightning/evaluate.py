"""Evaluate a generator with the paper's Table 1 protocol: ``python -m dmfn_lightning.evaluate ckpt=... data=paris``.

Protocol (Hui et al., arXiv:2002.02609, Section 4 and Table 1): the data group's test split at ``data.image_size``
(256), the exact centred 128 x 128 hole (``mask=center``), metrics on the whole composited image: LPIPS (AlexNet,
v0.1), PSNR and SSIM on [0, 255] RGB, plus L1 (whole image and hole only). SSIM and PSNR are reported under every
convention in use (``ssim_full``, ``ssim_cropped``, ``ssim_uniform7``; ``psnr`` per image and ``psnr_dataset``),
``metrics.ssim`` picks the headline ``ssim``; the conventions are described in :mod:`dmfn_lightning.metrics.suite`.
Holes and crops are a pure function of (seed, image index), inference runs in eval mode with deterministic
kernels, so evaluating twice gives identical numbers.

Outputs (in the Hydra run dir, or ``output_dir=``, checked writable before any work): ``per_image.csv`` (one row per
image, every convention a column), ``summary.json`` (means, conventions, the paper's row, the LPIPS trunk and
package version; nothing run-dependent such as times or paths of the run dir, so two evaluations give
byte-identical files), ``table1.md`` (the paper's Table 1 row beside ours, then each SSIM/PSNR convention; for
free-form/irregular holes also a table by hole ratio 0-10 %, ..., 50-60 %), and with ``save_images=true`` the
inpainted PNGs in ``images/``. They are written into a hidden staging folder inside the output folder and swapped in
when the evaluation is complete (:mod:`dmfn_lightning.evaluation.outputs`): a second evaluation into the same folder
replaces the first one's files as a whole (``images/`` too, even without ``save_images``), and one that fails or is
interrupted leaves them as they were, so two evaluations' outputs never mix. Files of those names that are not an
evaluation's results are refused, not replaced. An output folder (or ``manifest_out``'s masks) inside a folder the
evaluation reads images or masks from is refused before any work: the next evaluation would read them back.

Manifests (:mod:`dmfn_lightning.manifest`): ``manifest=eval.csv`` (or a shipped one, ``manifest=pkg:paris_center``)
evaluates exactly the manifest's (image, mask) pairs, after checking every mask against its checksum;
``manifest_out=eval.csv`` writes the evaluated pairs as a manifest (the CSV plus ``eval_masks/`` PNGs) that any
generator, or another framework through :func:`dmfn_lightning.evaluation.manifests.scoring.score_outputs`, can be
evaluated on.

FID and KID (``metrics.fid=true``, ``metrics.kid=true``; torchmetrics, over the whole test set, composited outputs
against ground truths): when the Inception weights are not cached the run says in one line where to put the file
and goes on with the other metrics.

Here: the config checks, the evaluation loop and the Hydra entry point. The data (test split or manifest pairs) is
built by :mod:`dmfn_lightning.evaluation.data`, scored by :class:`dmfn_lightning.evaluation.run.EvaluationRun`,
reported by :mod:`dmfn_lightning.evaluation.reports` and bucketed by hole ratio by
:mod:`dmfn_lightning.evaluation.buckets`; their public names are re-exported here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from dmfn_lightning.config_checks import check_outside_inputs, data_folders, validate_eval_config
from dmfn_lightning.core.config import check_writable_dir, compose, config_dir
from dmfn_lightning.core.devices import resolve_device
from dmfn_lightning.core.errors import ConfigError, exit_on_user_error
from dmfn_lightning.evaluation.buckets import BUCKETS, bucket_index, bucket_label, bucket_label_of, by_hole_ratio
from dmfn_lightning.evaluation.data import (
    build_datamodule,
    check_manifest_out_data,
    is_box_mask,
    manifest_folders,
    manifest_loader,
    manifest_settings,
    relative_image,
    table1_protocol,
)
from dmfn_lightning.evaluation.manifests.files import Manifest, read_manifest
from dmfn_lightning.evaluation.manifests.masks import ManifestWriter
from dmfn_lightning.evaluation.outputs import OUTPUT_NAMES, StagedOutputs
from dmfn_lightning.evaluation.reports import CSV_COLUMNS, PAPER_TABLE1, render_table1
from dmfn_lightning.evaluation.run import EvaluationRun, save_images
from dmfn_lightning.metrics import MetricOptions
from dmfn_lightning.metrics.table import format_value
from dmfn_lightning.models import load_generator
from dmfn_lightning.models.generator_files import warn_if_other_size
from dmfn_lightning.models.inference import run_generator

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "BUCKETS",
    "CSV_COLUMNS",
    "PAPER_TABLE1",
    "EvaluationRun",
    "bucket_index",
    "bucket_label",
    "bucket_label_of",
    "by_hole_ratio",
    "compose_config",
    "evaluate",
    "is_box_mask",
    "main",
    "render_table1",
    "table1_protocol",
]

log = logging.getLogger(__name__)
# The tests (and notebooks) build the data module as evaluate() does under its former private name.
_build_datamodule = build_datamodule


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


def _resolve_device(cfg: DictConfig) -> torch.device:
    """``cfg.device`` as a torch device; errors name the Hydra override ``device=``, not a command-line flag."""
    name = str(cfg.device)
    if name.lower() != "auto":
        try:
            requested = torch.device(name.lower())
        except RuntimeError as err:
            raise ConfigError(f"invalid config: device={name!r}; allowed: auto, cpu, cuda, cuda:N") from err
        if requested.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device={name} requested but CUDA is not available here; use device=cpu or device=auto")
    return resolve_device(name)


def evaluate(cfg: DictConfig, feature_extractor: nn.Module | None = None) -> dict[str, Any]:
    """Run the evaluation described by ``cfg`` (see ``conf/eval.yaml``); returns the summary.

    ``feature_extractor``: a module ``uint8 [B, 3, H, W] -> [B, d]`` used for FID/KID instead of Inception v3
    (tests, or your own feature network).
    """
    validate_eval_config(cfg)
    out_dir = _output_dir(cfg)
    manifest = read_manifest(str(cfg.manifest), cfg.get("manifest_masks")) if cfg.get("manifest") else None
    inputs = data_folders(cfg.data, ("test",))
    if manifest is not None:
        inputs += manifest_folders(manifest, cfg.data.get("root"))
    check_outside_inputs(out_dir, inputs, "output_dir", replaced=OUTPUT_NAMES)  # before the folder is made
    check_writable_dir(out_dir, "output_dir")
    outputs = StagedOutputs(out_dir)
    outputs.check()
    writer = ManifestWriter(str(cfg.manifest_out)) if cfg.get("manifest_out") else None
    if writer is not None:
        check_outside_inputs(writer.mask_dir, inputs, "manifest_out")
        writer.check_writable()
    with outputs:  # written into a staging folder inside out_dir, swapped in when complete
        return _evaluate(cfg, feature_extractor, outputs, manifest, writer)


def _evaluate(
    cfg: DictConfig,
    feature_extractor: nn.Module | None,
    outputs: StagedOutputs,
    manifest: Manifest | None,
    writer: ManifestWriter | None,
) -> dict[str, Any]:
    out_dir = outputs.folder
    start = time.perf_counter()
    device = _resolve_device(cfg)
    torch.manual_seed(int(cfg.seed))
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    console = Console(stderr=True)
    # Cheap failures first: checkpoint, LPIPS weights, then the data.
    generator = load_generator(str(cfg.ckpt), map_location=device, prefer_ema=bool(cfg.prefer_ema))
    warn_if_other_size(generator, cfg.data.get("image_size"), warn=log.warning)  # trained at another size?
    options = MetricOptions.from_config(cfg, feature_extractor=feature_extractor)
    run = EvaluationRun(device=device, options=options, seed=int(cfg.seed), console=console)
    if manifest is not None:
        data_cfg = cfg.data.copy()
        datamodule = instantiate(data_cfg)
        manifest, loader = manifest_loader(cfg, datamodule, console, manifest)
        run.manifest = manifest
    else:
        datamodule = build_datamodule(cfg)
        loader = datamodule.test_dataloader()
    if writer is not None:
        check_manifest_out_data(datamodule)
    image_dir = outputs.staging / "images"
    if cfg.save_images:
        image_dir.mkdir()
    rows_by_index = {row.id: row for row in manifest.rows} if manifest is not None else {}
    data_root = manifest_settings(datamodule)[0] if writer is not None else None

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
                save_images(image_dir, output, names)
            if writer is not None:
                holes = (batch["mask"][:, 0] > 0.5).numpy()
                for j, name in enumerate(names):
                    if manifest is not None:  # a copy keeps ids, images, seeds and generators
                        row = rows_by_index[name]
                        writer.add(name, row.image, holes[j], row.seed, row.generator, row.bucket)
                    else:
                        writer.add(name, relative_image(batch["path"][j], data_root), holes[j], int(cfg.seed))
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
    run.write_reports(outputs.staging, summary)
    outputs.commit()
    if manifest is None:
        datamodule.teardown("test")
    written = writer.close() if writer is not None else None

    elapsed = time.perf_counter() - start
    shown = ", ".join(f"{k} {format_value(k, v)}" for k, v in summary["metrics"].items())
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
