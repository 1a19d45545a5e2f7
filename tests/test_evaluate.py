"""The Table 1 evaluation entry point on a tiny generated image folder (data=folder, random LPIPS trunk)."""

from __future__ import annotations

import csv
import json
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from cli import run_module
from PIL import Image

from dmfn_lightning.evaluate import BUCKETS, by_hole_ratio, compose_config, evaluate, render_table1
from dmfn_lightning.models import DMFNGenerator, export_generator

N_IMAGES = 5


@pytest.fixture(autouse=True, scope="module")
def _reset_hydra():
    yield
    # compose_config() registers a global HydraConfig; later tests (e.g. training) must not inherit our run dir.
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().cfg = None
    GlobalHydra.instance().clear()


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("eval")
    val = root / "folder" / "val"
    val.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(N_IMAGES):  # non-square on purpose: centre-cropped to a square by the data layer
        Image.fromarray(rng.integers(0, 256, (40 + 3 * i, 36, 3), dtype=np.uint8)).save(val / f"img{i}.png")
    torch.manual_seed(0)
    ckpt = export_generator(DMFNGenerator(num_blocks=1, base_channels=16), root / "generator.pt")
    return {"root": root, "data": root / "folder", "ckpt": ckpt}


def overrides(setup, out: Path, *extra: str) -> list[str]:
    return [
        f"ckpt={setup['ckpt']}",
        "data=folder",
        f"data.root={setup['data']}",
        "data.image_size=32",
        "data.num_workers=0",
        "batch_size=2",
        "lpips.backbone_weights=random",
        "progress=false",
        f"output_dir={out}",
        *extra,
    ]


def run(setup, out: Path, *extra: str) -> dict:
    cfg = compose_config(overrides(setup, out, *extra), run_dir=out / "hydra")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the random-LPIPS-trunk warning
        return evaluate(cfg)


def test_evaluate_twice_gives_identical_results(setup, tmp_path):
    first = run(setup, tmp_path / "a")
    second = run(setup, tmp_path / "b")
    assert (tmp_path / "a" / "summary.json").read_bytes() == (tmp_path / "b" / "summary.json").read_bytes()
    assert (tmp_path / "a" / "per_image.csv").read_bytes() == (tmp_path / "b" / "per_image.csv").read_bytes()
    assert first["metrics"] == second["metrics"]

    with (tmp_path / "a" / "per_image.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == N_IMAGES
    assert [int(r["index"]) for r in rows] == list(range(N_IMAGES))
    # the summary's means are the means of the per-image rows
    for key in ("psnr", "ssim", "lpips", "l1", "l1_hole"):
        assert first["metrics"][key] == pytest.approx(np.mean([float(r[key]) for r in rows]), abs=1e-5), key
    assert all(float(r["hole_ratio"]) == 0.25 for r in rows)  # the centred half-size box

    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["n_images"] == N_IMAGES
    assert summary["protocol"]["table1"] is False  # 32 px, not 256
    assert summary["lpips"] == {"net": "alex", "version": "0.1", "backbone": "random"}
    assert "by_hole_ratio" not in summary  # box holes
    assert set(summary["conventions"]) >= {"psnr", "ssim", "lpips", "l1", "l1_hole"}
    table = (tmp_path / "a" / "table1.md").read_text()
    assert "Not the Table 1 protocol" in table and "RANDOM trunk" in table and f"({N_IMAGES} images)" in table


def test_free_form_buckets_and_saved_images(setup, tmp_path):
    summary = run(setup, tmp_path, "mask=free_form", "save_images=true")
    buckets = summary["by_hole_ratio"]
    assert [b["bucket"] for b in buckets][:6] == ["0-10%", "10-20%", "20-30%", "30-40%", "40-50%", "50-60%"]
    assert sum(b["count"] for b in buckets) == N_IMAGES
    assert "## By hole ratio" in (tmp_path / "table1.md").read_text()
    saved = sorted(p.name for p in (tmp_path / "images").iterdir())
    assert saved == [f"{i:05d}_img{i}.png" for i in range(N_IMAGES)]
    assert Image.open(tmp_path / "images" / saved[0]).size == (32, 32)


def test_paper_row_from_the_data_group(setup, tmp_path):
    from fakes import fake_dataset_layouts

    data = fake_dataset_layouts(tmp_path / "data")
    out = tmp_path / "out"
    cfg = compose_config(
        [
            f"ckpt={setup['ckpt']}",
            "data=paris",  # the 100 listed Paris StreetView test images (20 px stand-ins, upscaled as released)
            f"data.root={data / 'paris'}",
            "data.image_size=32",
            "data.num_workers=0",
            "batch_size=50",
            "lpips.enabled=false",
            "progress=false",
            f"output_dir={out}",
        ],
        run_dir=out,
    )
    summary = evaluate(cfg)
    assert summary["n_images"] == 100 and summary["dataset"] == "paris"
    assert summary["paper_table1"]["psnr"] == 25.00 and summary["lpips"] is None
    table = (out / "table1.md").read_text()
    assert "# DMFN evaluation: Paris StreetView" in table
    assert "| DMFN, paper Table 1 (100 images) | 0.1018 | 25.00 | 0.8563 | n/a | n/a |" in table
    assert "| n/a |" in table.split("ours:")[1].splitlines()[0]  # our LPIPS column: disabled


def test_paper_row_and_bucket_edges():
    rows = [{"hole_ratio": r, "psnr": 20.0 + i} for i, r in enumerate([0.0, 0.1, 0.1001, 0.55, 0.9])]
    buckets = by_hole_ratio(rows, ["psnr"])
    assert len(buckets) == len(BUCKETS)
    assert [b["count"] for b in buckets] == [2, 1, 0, 0, 0, 1, 1]  # (low, high]; 0 joins 0-10 %
    assert buckets[0]["psnr"] == 20.5 and buckets[2]["psnr"] is None
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
    table = render_table1(summary)
    assert "| DMFN, paper Table 1 (100 images) | 0.1018 | 25.00 | 0.8563 | n/a | n/a |" in table
    assert "| ours: last.ckpt (100 images) | 0.1000 | 25.50 | 0.8600 | 0.0200 | 0.1000 |" in table
    assert "Not the Table 1 protocol" not in table


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return run_module("evaluate", args, cwd, timeout=180)


def test_cli_subprocess(setup, tmp_path):
    done = _cli([*overrides(setup, tmp_path / "out"), "data.num_workers=1"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["n_images"] == N_IMAGES
    assert (tmp_path / "outputs" / "eval" / "folder").is_dir()  # the Hydra run dir (config record, log)


def test_cli_errors_are_one_paragraph(setup, tmp_path):
    missing_ckpt = _cli(["data=folder", f"data.root={setup['data']}"], cwd=tmp_path)
    assert missing_ckpt.returncode != 0
    assert "no checkpoint given: add ckpt=" in missing_ckpt.stderr and "Traceback" not in missing_ckpt.stderr


def test_missing_data_is_a_data_error(setup, tmp_path):
    from dmfn_lightning.data import DataError

    cfg = compose_config(overrides(setup, tmp_path, f"data.root={tmp_path / 'nowhere'}"), run_dir=tmp_path)
    with pytest.raises(DataError, match=r"nowhere.*DMFN_DATA"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        evaluate(cfg)
