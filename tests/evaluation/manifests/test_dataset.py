"""evaluation.manifests.dataset: a manifest's images found under the data root (a flat FFHQ folder by file name)
and its evaluation samples."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from dmfn_lightning.core.errors import ManifestError
from dmfn_lightning.evaluation.manifests.dataset import ManifestDataset, mask_size, resolve_images
from dmfn_lightning.evaluation.manifests.files import Manifest, read_manifest
from dmfn_lightning.evaluation.manifests.masks import materialise


def test_a_flat_ffhq_folder_is_matched_by_file_name(tmp_path):
    rows = read_manifest("pkg:ffhq_center").rows[:3]  # images1024x1024/60000/6000N.png, the official tree
    flat = tmp_path / "ffhq" / "images1024x1024"
    flat.mkdir(parents=True)
    for row in rows:
        Image.new("RGB", (8, 8)).save(flat / Path(row.image).name)
    manifest = Manifest(rows, "pkg:ffhq_center", tmp_path)
    with pytest.raises(ManifestError, match=r"3 of 3 images of pkg:ffhq_center do not exist"):
        resolve_images(manifest, tmp_path / "ffhq")
    paths = resolve_images(manifest, tmp_path / "ffhq", lambda: sorted(flat.iterdir()))
    assert paths == [flat / Path(row.image).name for row in rows]


def test_samples_are_prepared_as_the_data_groups_prepare_test_images(written_manifest, eval_setup):
    manifest = read_manifest(written_manifest["manifest"])
    materialise(manifest)
    size = mask_size(manifest)
    assert size == 32
    dataset = ManifestDataset(manifest, resolve_images(manifest, eval_setup["data"]), size, False)
    assert len(dataset) == len(manifest.rows)
    sample = dataset[1]
    assert sample["id"] == manifest.rows[1].id and sample["bucket"] == manifest.rows[1].bucket
    assert sample["image"].shape == (3, 32, 32) and sample["mask"].shape == (1, 32, 32)
    assert float(sample["image"].min()) >= -1.0 and float(sample["image"].max()) <= 1.0
    assert float(sample["mask"].mean()) == pytest.approx(manifest.rows[1].hole_ratio, abs=1e-6)
    assert set(torch.unique(sample["mask"]).tolist()) <= {0.0, 1.0}
