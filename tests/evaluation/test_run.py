"""evaluation.run: EvaluationRun on hand-made batches (rows, summary, reports, the metric options it is given),
save_images and row_ids."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from dmfn_lightning.core.errors import DataError, OutputPathError
from dmfn_lightning.evaluation.manifests.files import Manifest, ManifestRow
from dmfn_lightning.evaluation.reports import CSV_COLUMNS
from dmfn_lightning.evaluation.run import EvaluationRun, row_ids, save_images
from dmfn_lightning.metrics import MetricOptions
from dmfn_lightning.metrics.pixel import quantize


def _batch(indices, size: int = 16, hole: bool = True, seed: int = 0) -> tuple[dict, torch.Tensor]:
    """A data batch of random images (levels / 127.5 - 1, as the data layer delivers them) and composited outputs."""
    rng = np.random.default_rng(seed)
    n = len(indices)
    image = torch.from_numpy(rng.integers(0, 256, (n, 3, size, size)).astype(np.float32)).div(127.5).sub(1)
    mask = torch.zeros(n, 1, size, size)
    if hole:
        mask[:, :, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1
    noise = torch.from_numpy(rng.integers(0, 256, (n, 3, size, size)).astype(np.float32)).div(127.5).sub(1)
    output = mask * noise + (1 - mask) * image
    batch = {"image": image, "mask": mask, "index": torch.tensor(indices), "path": [f"/d/img{i}.png" for i in indices]}
    return batch, output


def test_rows_summary_and_reports(tmp_path):
    run = EvaluationRun(options=MetricOptions(lpips=False, ssim="cropped"), seed=3)
    assert run.metrics.lpips is None and run.metrics.ssim_convention == "cropped" and run.distribution is None
    names = run.add_batch(*_batch([2, 3], seed=1))
    run.add_batch(*_batch([0, 1], hole=False, seed=2))  # no hole: l1_hole undefined
    assert names == ["00002_img2", "00003_img3"]
    summary = run.summary(dataset="x", protocol={"image_size": 16}, note="kept")
    assert [r["index"] for r in run.rows] == [0, 1, 2, 3]  # sorted by index
    assert summary["n_images"] == 4 and summary["note"] == "kept" and summary["protocol"]["table1"] is False
    assert summary["ssim_convention"] == "cropped" and summary["lpips"] is None
    assert summary["metrics"]["ssim"] == summary["metrics"]["ssim_cropped"]
    assert "lpips" not in summary["metrics"] and "by_hole_ratio" not in summary and "fid_kid" not in summary
    # the means are the per-image rows' means; l1_hole over the images with a hole
    for key in ("psnr", "ssim_full", "l1"):
        assert summary["metrics"][key] == pytest.approx(np.mean([r[key] for r in run.rows]), abs=1e-5), key
    assert summary["metrics"]["l1_hole"] == pytest.approx(np.mean([r["l1_hole"] for r in run.rows[2:]]), abs=1e-6)

    run.write_reports(tmp_path, summary)
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    with (tmp_path / "per_image.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS and rows[0]["l1_hole"] == "" and rows[0]["lpips"] == ""
    assert (tmp_path / "table1.md").read_text().startswith("# DMFN evaluation: custom data")


def test_nan_means_are_null_in_the_summary_and_buckets_on_request():
    run = EvaluationRun(options=MetricOptions(lpips=False))
    run.add_batch(*_batch([0], hole=False))
    summary = run.summary(by_hole_ratio=True)
    assert summary["metrics"]["l1_hole"] is None  # json.dumps would write the invalid token NaN
    assert json.loads(json.dumps(summary))["metrics"]["l1_hole"] is None
    assert summary["by_hole_ratio"][0]["count"] == 1 and "l1_hole" in summary["by_hole_ratio"][0]


def test_nothing_evaluated_is_a_data_error():
    with pytest.raises(DataError, match="no image could be evaluated"):
        EvaluationRun(options=MetricOptions(lpips=False)).summary()


def test_a_manifest_run_adds_ids_and_buckets(tmp_path):
    rows = [ManifestRow(f"r{i}", f"img{i}.png", "m.png", 0.25, "20-30%", i, "", "0" * 64) for i in range(2)]
    manifest = Manifest(rows, str(tmp_path / "eval.csv"), tmp_path)
    run = EvaluationRun(options=MetricOptions(lpips=False), manifest=manifest)
    batch, output = _batch([0, 1])
    batch.update(id=["r0", "r1"], bucket=["20-30%", "20-30%"])
    assert run.add_batch(batch, output) == ["r0", "r1"]
    assert run.columns == ("index", "path", "id", "bucket", *CSV_COLUMNS[2:])
    summary = run.summary(protocol={"image_size": 16})
    assert summary["manifest"] == {
        "name": "eval",
        "rows": 2,
        "content_sha256": manifest.content_sha256(),
        "buckets": {"20-30%": 2},
    }
    assert summary["protocol"] == {"image_size": 16, "table1": False, "mask": "manifest eval"}
    assert "by_hole_ratio" not in summary  # one bucket


def test_fid_kid_without_inception_weights_is_a_note_not_an_error(empty_torch_home, capsys):
    run = EvaluationRun(options=MetricOptions(lpips=False, fid=True))
    assert run.distribution is None and run.fid_kid_note.startswith("FID/KID skipped: ")
    assert "metrics.inception_weights=" in run.fid_kid_note  # the options' override names the config key
    assert run.fid_kid_note in capsys.readouterr().err
    run.add_batch(*_batch([0]))
    assert run.summary()["fid_kid"] == {"skipped": run.fid_kid_note}


def test_fid_kid_with_the_options_feature_extractor(random_features):
    options = MetricOptions(lpips=False, fid=True, kid=True, feature_extractor=random_features(), kid_subset_size=2)
    run = EvaluationRun(options=options, seed=1)
    for start in (0, 2):
        run.add_batch(*_batch([start, start + 1], size=32, seed=start))
    summary = run.summary()
    assert summary["metrics"]["fid"] is not None and summary["metrics"]["kid_std"] is not None
    assert summary["fid_kid"]["kid_seed"] == 1 and summary["fid_kid"]["kid_subset_size"] == 2


def test_save_images_and_row_ids(tmp_path):
    batch, output = _batch([4, 5])
    names = row_ids(batch)
    assert names == ["00004_img4", "00005_img5"] and row_ids({"id": ["a", 7]}) == ["a", "7"]
    save_images(tmp_path, output, names)
    saved = np.asarray(Image.open(tmp_path / "00004_img4.png"))
    assert saved.dtype == np.uint8 and np.array_equal(saved, quantize(output[0]).permute(1, 2, 0).numpy())


@pytest.mark.parametrize("name", ["../victim", "sub/name", "..", "<absolute>"])
def test_save_images_never_writes_outside_its_folder(tmp_path, name):
    name = name.replace("<absolute>", str(tmp_path / "victim"))
    folder = tmp_path / "out" / "images"
    folder.mkdir(parents=True)
    (tmp_path / "victim.png").write_bytes(b"mine")
    _, output = _batch([0])
    with pytest.raises(OutputPathError) as info:
        save_images(folder, output, [name])
    assert repr(name) in str(info.value) and "\n" not in str(info.value)
    assert (tmp_path / "victim.png").read_bytes() == b"mine" and list(folder.iterdir()) == []
