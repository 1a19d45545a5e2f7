"""Scoring someone else's inpainted outputs (``<id>.png``, any framework's) against a manifest with this library's
metric conventions (composited output, uint8; :mod:`dmfn_lightning.metrics.suite`), with the same
:class:`~dmfn_lightning.metrics.options.MetricOptions` as an evaluation."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Dataset

from dmfn_lightning.core.decode import IMAGE_FILE_EXTENSIONS, load_rgb
from dmfn_lightning.core.errors import DataError, ManifestError
from dmfn_lightning.core.pixels import from_rgb_array
from dmfn_lightning.data.datasets import collate_samples
from dmfn_lightning.evaluation.manifests.dataset import ManifestDataset, mask_size, resolve_images
from dmfn_lightning.evaluation.manifests.files import Manifest, read_manifest
from dmfn_lightning.evaluation.manifests.masks import materialise
from dmfn_lightning.evaluation.run import EvaluationRun
from dmfn_lightning.metrics.options import MetricOptions

__all__ = ["score_outputs"]


def _find_output(folder: Path, row_id: str) -> Path | None:
    for ext in IMAGE_FILE_EXTENSIONS:
        path = folder / f"{row_id}{ext}"
        if path.is_file():
            return path
    return None


class _OutputsDataset(Dataset):
    """Ground truths and masks of a manifest plus the outputs ``<id>.<ext>`` of another framework."""

    def __init__(self, pairs: ManifestDataset, outputs: Sequence[Path]) -> None:
        self.pairs = pairs
        self.outputs = list(outputs)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.pairs[index]
        path = self.outputs[index]
        try:
            img = load_rgb(path)
        except DataError as err:
            raise ManifestError(str(err)) from err
        size = self.pairs.image_size
        if img.size != (size, size):
            raise ManifestError(
                f"{path}: output is {img.width}x{img.height}, the manifest's pairs are {size}x{size} (outputs are "
                "compared pixel for pixel; nothing is resized)"
            )
        sample["output"] = from_rgb_array(np.asarray(img))
        return sample


def score_outputs(
    manifest: str | os.PathLike | Manifest,
    outputs_dir: str | os.PathLike,
    data_root: str | os.PathLike | None = None,
    *,
    mask_root: str | os.PathLike | None = None,
    output_dir: str | os.PathLike | None = None,
    allow_upscale: bool = True,
    composite: bool = True,
    options: MetricOptions | None = None,
    seed: int = 0,
    device: str = "cpu",
    batch_size: int = 16,
    name: str | None = None,
) -> dict[str, Any]:
    """Score a folder of inpainted outputs (any framework's) against a manifest with our metric conventions.

    Args:
        manifest: a manifest path, ``pkg:<name>``, or a :class:`Manifest`.
        outputs_dir: one image per row, named ``<id>.png`` (or ``.jpg``, ...), at the masks' size.
        data_root: the dataset root the manifest's image paths are relative to (the ground truths are prepared
            from the images as our evaluation prepares them: centred square crop, bicubic resize).
        mask_root: where the masks are (default: beside the CSV; the cache for shipped manifests).
        output_dir: if given, ``per_image.csv``, ``summary.json`` and ``table1.md`` are written there.
        allow_upscale: accept images smaller than the masks (Paris StreetView's 227 px test images), as the data
            groups do for such sets.
        composite: paste the known pixels of the ground truth back (``mask * out + (1 - mask) * gt``) before
            scoring, as every number of ours is computed; a no-op for outputs that are composited already.
        options: the metrics and their settings (LPIPS, the headline SSIM, FID/KID), as for ``evaluate``; default
            :class:`~dmfn_lightning.metrics.options.MetricOptions` ``()``. When FID/KID are asked for and the
            Inception weights are missing a note is printed and recorded, and the other metrics are still computed.
        seed: seeds a random LPIPS trunk and KID's subsets.

    Returns the summary (as ``summary.json``): ``metrics`` (means), ``n_images``, ``by_hole_ratio`` and the
    conventions. Raises :class:`ManifestError` for a missing/mis-sized output or a mask that fails its checksum.
    """
    if not isinstance(manifest, Manifest):
        manifest = read_manifest(manifest, mask_root)
    materialise(manifest)
    folder = Path(outputs_dir).expanduser()
    if not folder.is_dir():
        raise ManifestError(f"{folder}: outputs folder does not exist")
    outputs = [_find_output(folder, row.id) for row in manifest.rows]
    missing = [row.id for row, path in zip(manifest.rows, outputs) if path is None]
    if missing:
        raise ManifestError(
            f"{folder}: {len(missing)} of {len(outputs)} outputs are missing (expected <id>.png for each manifest "
            f"row), e.g. {', '.join(m + '.png' for m in missing[:3])}"
        )
    pairs = ManifestDataset(manifest, resolve_images(manifest, data_root), mask_size(manifest), allow_upscale)
    loader = DataLoader(
        _OutputsDataset(pairs, outputs), batch_size=int(batch_size), shuffle=False, collate_fn=collate_samples
    )
    run = EvaluationRun(device=device, options=options, seed=seed, manifest=manifest)
    for batch in loader:
        output = batch["output"].to(run.device)
        if composite:
            image, mask = batch["image"].to(run.device), batch["mask"].to(run.device)
            output = mask * output + (1 - mask) * image
        run.add_batch(batch, output)
    summary = run.summary(
        dataset=None,
        dataset_name=name or f"outputs in {folder.name}",
        checkpoint=str(folder),
        checkpoint_name=name or folder.name,
        protocol={"image_size": pairs.image_size, "composite": bool(composite)},
    )
    if output_dir is not None:
        run.write_reports(Path(output_dir).expanduser(), summary)
    return summary
