"""The manifest command line (python -m dmfn_lightning.manifest): score, list, and the metric options its flags
make."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dmfn_lightning import manifest as manifest_cli
from dmfn_lightning.evaluation.manifests.files import read_manifest, shipped_manifests
from dmfn_lightning.metrics import MetricOptions
from tests.cli import run_module
from tests.conftest import EVAL_IMAGES


def per_image(out: Path) -> list[dict[str, str]]:
    with (out / "per_image.csv").open() as f:
        return list(csv.DictReader(f))


def test_score_cli_and_its_errors(eval_setup, written_manifest, tmp_path):
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    manifest = read_manifest(written_manifest["manifest"])
    rng = np.random.default_rng(1)
    for row in manifest.rows[:-1]:
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(outputs / f"{row.id}.png")
    args = [
        "score",
        str(written_manifest["manifest"]),
        str(outputs),
        "--data-root",
        str(eval_setup["data"]),
        "--no-lpips",
    ]
    missing = run_module("manifest", args, tmp_path, timeout=120)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "1 of 5 outputs are missing" in missing.stderr and f"{manifest.rows[-1].id}.png" in missing.stderr

    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(outputs / f"{manifest.rows[-1].id}.jpg")
    done = run_module("manifest", [*args, "--out", str(tmp_path / "report")], tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)) >= {"psnr", "ssim", "l1", "l1_hole"}
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["n_images"] == EVAL_IMAGES and summary["protocol"]["composite"] is True
    # composited: the known pixels are the ground truth's, so the error sits in the hole only
    rows = per_image(tmp_path / "report")
    for row in rows:
        ratio = float(row["hole_ratio"])
        assert float(row["l1"]) == pytest.approx(float(row["l1_hole"]) * ratio, rel=1e-4)


def test_score_flags_make_the_metric_options():
    args = manifest_cli._parser().parse_args(["score", "m.csv", "out", "--data-root", "d"])
    assert manifest_cli._metric_options(args) == MetricOptions(
        lpips_override="--lpips-weights", inception_override="--inception-weights"
    )  # the defaults are conf/eval.yaml's; errors about missing weights name the flags
    flags = ["--no-lpips", "--lpips-net", "vgg", "--lpips-weights", "random", "--ssim", "uniform7", "--fid", "--kid"]
    args = manifest_cli._parser().parse_args(["score", "m.csv", "out", "--data-root", "d", *flags])
    options = manifest_cli._metric_options(args)
    assert (options.lpips, options.lpips_net, options.lpips_backbone_weights) == (False, "vgg", "random")
    assert (options.ssim, options.fid, options.kid, options.inception_weights) == ("uniform7", True, True, "auto")
    with pytest.raises(SystemExit):
        manifest_cli._parser().parse_args(["score", "m.csv", "out", "--data-root", "d", "--ssim", "gaussian"])


def test_list_prints_the_shipped_manifests(capsys):
    assert manifest_cli._cli(["list"]) == 0
    assert capsys.readouterr().out.split() == shipped_manifests()


def test_materialise_writes_a_standalone_copy(written_manifest, tmp_path, capsys):
    copy = tmp_path / "copy" / "eval.csv"
    assert manifest_cli._cli(["materialise", str(written_manifest["manifest"]), "--out", str(copy)]) == 0
    assert f"{EVAL_IMAGES} rows verified" in capsys.readouterr().out
    assert read_manifest(copy).rows == read_manifest(written_manifest["manifest"]).rows
