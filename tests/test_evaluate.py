"""The evaluate command on a tiny generated image folder (data=folder, random LPIPS trunk): the Table 1 protocol end
to end, its config and command-line errors, FID/KID, and evaluating through manifests (manifest=, manifest_out=).
The modules it is built from have their own tests in tests/evaluation/."""

from __future__ import annotations

import csv
import importlib.metadata
import json
import os
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dmfn_lightning.core.errors import ConfigError, ManifestError, OutputPathError
from dmfn_lightning.evaluate import compose_config, evaluate
from dmfn_lightning.evaluation.manifests.files import COLUMNS, pixels_sha256, read_manifest, write_manifest
from dmfn_lightning.evaluation.manifests.masks import materialise
from dmfn_lightning.metrics.pixel import psnr_from_mse
from tests.cli import run_module
from tests.conftest import EVAL_IMAGES, eval_overrides, run_evaluation


def test_evaluate_twice_gives_identical_results(eval_setup, tmp_path):
    first = run_evaluation(eval_setup, tmp_path / "a")
    second = run_evaluation(eval_setup, tmp_path / "b")
    assert (tmp_path / "a" / "summary.json").read_bytes() == (tmp_path / "b" / "summary.json").read_bytes()
    assert (tmp_path / "a" / "per_image.csv").read_bytes() == (tmp_path / "b" / "per_image.csv").read_bytes()
    assert first["metrics"] == second["metrics"]

    with (tmp_path / "a" / "per_image.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == EVAL_IMAGES
    assert [int(r["index"]) for r in rows] == list(range(EVAL_IMAGES))
    # every convention is a column; the summary's means are the means of the per-image rows
    assert {"psnr", "mse", "ssim", "ssim_full", "ssim_cropped", "ssim_uniform7"} <= set(rows[0])
    for key in ("psnr", "ssim", "ssim_full", "ssim_cropped", "ssim_uniform7", "lpips", "l1", "l1_hole"):
        assert first["metrics"][key] == pytest.approx(np.mean([float(r[key]) for r in rows]), abs=1e-5), key
    assert [r["ssim"] for r in rows] == [r["ssim_full"] for r in rows]  # the default headline
    mean_mse = torch.tensor(np.mean([float(r["mse"]) for r in rows]), dtype=torch.float64)
    assert first["metrics"]["psnr_dataset"] == pytest.approx(float(psnr_from_mse(mean_mse)[0]), abs=1e-4)
    assert all(float(r["hole_ratio"]) == 0.25 for r in rows)  # the centred half-size box

    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["n_images"] == EVAL_IMAGES
    assert summary["protocol"]["table1"] is False  # 32 px, not 256
    assert summary["lpips"] == {
        "net": "alex",
        "version": "0.1",
        "package_version": importlib.metadata.version("lpips"),
        "backbone": "random",
    }
    assert "by_hole_ratio" not in summary  # box holes
    conventions = {"psnr", "psnr_dataset", "ssim", "ssim_full", "ssim_cropped", "ssim_uniform7"}
    assert set(summary["conventions"]) >= conventions | {"lpips", "l1", "l1_hole"}
    assert set(summary["metrics"]) >= conventions
    assert summary["ssim_convention"] == "full" and "ssim_full" in summary["conventions"]["ssim"]
    table = (tmp_path / "a" / "table1.md").read_text()
    assert "Not the Table 1 protocol" in table and "RANDOM trunk" in table and f"({EVAL_IMAGES} images)" in table
    assert "The SSIM column is `ssim_full` (metrics.ssim=full)" in table
    for key in conventions - {"ssim"}:
        assert f"| `{key}`: " in table, key
    assert f"lpips package {importlib.metadata.version('lpips')}" in table


def test_headline_ssim_convention_and_scikit_image_on_the_saved_images(eval_setup, tmp_path):
    from skimage.metrics import structural_similarity

    from dmfn_lightning.evaluate import _build_datamodule
    from dmfn_lightning.metrics.pixel import quantize

    summary = run_evaluation(eval_setup, tmp_path, "metrics.ssim=cropped", "save_images=true")
    assert summary["ssim_convention"] == "cropped"
    assert summary["metrics"]["ssim"] == summary["metrics"]["ssim_cropped"] != summary["metrics"]["ssim_full"]
    assert "The SSIM column is `ssim_cropped` (metrics.ssim=cropped)" in (tmp_path / "table1.md").read_text()
    with (tmp_path / "per_image.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["ssim"] for r in rows] == [r["ssim_cropped"] for r in rows]

    # scikit-image reproduces the cropped conventions from the same uint8 images: the saved composited outputs and
    # the ground truths as the data layer delivers them
    cfg = compose_config(eval_overrides(eval_setup, tmp_path), run_dir=tmp_path / "hydra")
    datamodule = _build_datamodule(cfg)
    truths = {}
    for batch in datamodule.test_dataloader():
        pixels = quantize(batch["image"]).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        truths.update({int(i): p for i, p in zip(batch["index"], pixels)})
    for row in rows:
        index = int(row["index"])
        output = np.asarray(Image.open(tmp_path / "images" / f"{index:05d}_img{index}.png"))
        gt = truths[index]
        cropped = structural_similarity(
            output, gt, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=2
        )
        uniform7 = structural_similarity(output, gt, data_range=255, channel_axis=2)
        assert float(row["ssim_cropped"]) == pytest.approx(cropped, abs=1e-4)
        assert float(row["ssim_uniform7"]) == pytest.approx(uniform7, abs=1e-4)


def test_ssim_convention_config_errors(eval_setup, tmp_path):
    with pytest.raises(ConfigError, match=r"metrics\.ssim='matlab'; allowed: full, cropped, uniform7"):
        run_evaluation(eval_setup, tmp_path / "a", "metrics.ssim=matlab")
    # the headline must be defined for the evaluated size; the error names what would fit
    with pytest.raises(ConfigError, match=r"metrics\.ssim=cropped needs images of at least 11 px.*metrics\.ssim=full"):
        run_evaluation(eval_setup, tmp_path / "b", "metrics.ssim=cropped", "data.image_size=8")


def test_free_form_buckets_and_saved_images(eval_setup, tmp_path):
    summary = run_evaluation(eval_setup, tmp_path, "mask=free_form", "save_images=true")
    buckets = summary["by_hole_ratio"]
    assert [b["bucket"] for b in buckets][:6] == ["0-10%", "10-20%", "20-30%", "30-40%", "40-50%", "50-60%"]
    assert sum(b["count"] for b in buckets) == EVAL_IMAGES
    assert "## By hole ratio" in (tmp_path / "table1.md").read_text()
    saved = sorted(p.name for p in (tmp_path / "images").iterdir())
    assert saved == [f"{i:05d}_img{i}.png" for i in range(EVAL_IMAGES)]
    assert Image.open(tmp_path / "images" / saved[0]).size == (32, 32)


def test_paper_row_from_the_data_group(eval_setup, tmp_path):
    from tests.fakes import fake_dataset_layouts

    data = fake_dataset_layouts(tmp_path / "data")
    out = tmp_path / "out"
    cfg = compose_config(
        [
            f"ckpt={eval_setup['ckpt']}",
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


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return run_module("evaluate", args, cwd, timeout=180)


def test_cli_subprocess(eval_setup, tmp_path):
    done = _cli([*eval_overrides(eval_setup, tmp_path / "out"), "data.num_workers=1"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["n_images"] == EVAL_IMAGES
    assert (tmp_path / "outputs" / "eval" / "folder").is_dir()  # the Hydra run dir (config record, log)


def test_cli_errors_are_one_paragraph(eval_setup, tmp_path):
    missing_ckpt = _cli(["data=folder", f"data.root={eval_setup['data']}"], cwd=tmp_path)
    assert missing_ckpt.returncode != 0
    assert "no checkpoint given: add ckpt=" in missing_ckpt.stderr and "Traceback" not in missing_ckpt.stderr


def _error_line(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_cli_output_dir_that_is_a_file_fails_before_any_work(eval_setup, tmp_path):
    target = tmp_path / "results.txt"
    target.write_text("not a folder\n")
    done = _cli(eval_overrides(eval_setup, target), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    line = _error_line(done)
    assert str(target) in line and "is an existing file" in line
    assert target.read_text() == "not a folder\n"


@pytest.mark.parametrize("kind", ["file", "beneath_a_file", "read_only"])
def test_unwritable_output_dir_fails_before_loading_anything(eval_setup, tmp_path, monkeypatch, kind):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = {"file": blocker, "beneath_a_file": blocker / "sub", "read_only": tmp_path / "ro"}[kind]
    if kind == "read_only":
        out.mkdir()
        out.chmod(0o555)
        if os.geteuid() == 0:
            # root writes through permission bits; make the write probe fail as a read-only mount would
            def refuse(*args, **kwargs):
                raise PermissionError(13, "Permission denied", str(out))

            monkeypatch.setattr(tempfile, "mkstemp", refuse)
    # a missing checkpoint would fail too, but later: the output folder is checked first
    args = [
        a if not a.startswith("ckpt=") else f"ckpt={tmp_path / 'missing.ckpt'}" for a in eval_overrides(eval_setup, out)
    ]
    cfg = compose_config(args, run_dir=tmp_path / "hydra")
    try:
        with pytest.raises(ConfigError) as info:
            evaluate(cfg)
    finally:
        if kind == "read_only":
            out.chmod(0o755)
    message = str(info.value)
    assert str(out) in message and "\n" not in message
    assert {"file": "existing file", "beneath_a_file": "cannot create", "read_only": "not writable"}[kind] in message


def test_cuda_unavailable_error_names_the_hydra_override(eval_setup, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = compose_config(eval_overrides(eval_setup, tmp_path, "device=cuda"), run_dir=tmp_path / "hydra")
    with pytest.raises(ConfigError) as info:
        evaluate(cfg)
    message = str(info.value)
    assert "device=cpu" in message and "--device" not in message
    with pytest.raises(ConfigError, match=r"device='tpu'.*auto, cpu, cuda, cuda:N"):
        evaluate(compose_config(eval_overrides(eval_setup, tmp_path, "device=tpu"), run_dir=tmp_path / "hydra"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cli_cuda_unavailable_exits_2_naming_device_override(eval_setup, tmp_path):
    done = _cli([*eval_overrides(eval_setup, tmp_path / "out"), "device=cuda"], cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    line = _error_line(done)
    assert "use device=cpu or device=auto" in line and "--device" not in done.stderr


def test_missing_data_is_a_data_error(eval_setup, tmp_path):
    from dmfn_lightning.data import DataError

    cfg = compose_config(eval_overrides(eval_setup, tmp_path, f"data.root={tmp_path / 'nowhere'}"), run_dir=tmp_path)
    with pytest.raises(DataError, match=r"nowhere.*DMFN_DATA"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        evaluate(cfg)


def test_fid_kid_without_inception_weights_finish_and_say_where_to_put_them(
    eval_setup, tmp_path, empty_torch_home, capfd
):
    from dmfn_lightning.metrics import INCEPTION_WEIGHTS_FILE

    summary = run_evaluation(eval_setup, tmp_path, "metrics.fid=true", "metrics.kid=true")
    lines = [line for line in capfd.readouterr().err.splitlines() if "FID/KID skipped" in line]
    assert len(lines) == 1, lines
    assert INCEPTION_WEIGHTS_FILE in lines[0] and f"{empty_torch_home / 'hub' / 'checkpoints'}/" in lines[0]
    assert "the other metrics are computed" in lines[0]
    assert "fid" not in summary["metrics"] and summary["metrics"]["psnr"] > 0 and summary["n_images"] == EVAL_IMAGES
    assert INCEPTION_WEIGHTS_FILE in summary["fid_kid"]["skipped"]
    table = (tmp_path / "table1.md").read_text()
    assert "## FID and KID" in table and "Not computed: FID/KID skipped" in table


def test_fid_kid_with_a_custom_feature_extractor(eval_setup, tmp_path, random_features):
    summaries = []
    for name in ("a", "b"):
        cfg = compose_config(eval_overrides(eval_setup, tmp_path / name, "metrics.fid=true", "metrics.kid=true"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            summaries.append(evaluate(cfg, feature_extractor=random_features()))
    first, second = summaries
    assert first["metrics"] == second["metrics"]  # KID's subsets are seeded
    assert first["metrics"]["fid"] > 0 and first["metrics"]["kid"] is not None and first["metrics"]["kid_std"] >= 0
    info = first["fid_kid"]
    assert info["metrics"] == ["fid", "kid"] and info["weights"] == "custom"
    assert info["kid_subset_size"] == EVAL_IMAGES  # clamped to the test set
    table = (tmp_path / "a" / "table1.md").read_text()
    assert "## FID and KID" in table and "custom: RandomFeatures (32-d), weights: custom" in table
    assert (tmp_path / "a" / "summary.json").read_bytes() == (tmp_path / "b" / "summary.json").read_bytes()


def test_fid_kid_config_errors(eval_setup, tmp_path):
    with pytest.raises(ConfigError, match=r"metrics\.fid='yes'; allowed: true, false"):
        run_evaluation(eval_setup, tmp_path, "metrics.fid=yes")
    with pytest.raises(ConfigError, match=r"metrics\.kid_subset_size=0"):
        run_evaluation(eval_setup, tmp_path, "metrics.kid_subset_size=0")


def test_evaluate_re_exports_the_names_of_its_modules():
    from dmfn_lightning import evaluate as facade
    from dmfn_lightning.evaluation import buckets, reports
    from dmfn_lightning.evaluation import data as evaluation_data
    from dmfn_lightning.evaluation import run as evaluation_run

    for module in (evaluation_data, evaluation_run, buckets, reports):
        for name in set(module.__all__) & set(facade.__all__):
            assert getattr(facade, name) is getattr(module, name), name
    assert facade._build_datamodule is evaluation_data.build_datamodule


# ---------------------------------------------------------------------------------------------------------------
# manifests: manifest_out= writes the evaluated pairs, manifest= evaluates exactly them


MANIFEST_ROW_METRICS = (
    "psnr",
    "ssim",
    "ssim_full",
    "ssim_cropped",
    "ssim_uniform7",
    "lpips",
    "l1",
    "l1_hole",
    "hole_ratio",
)


def per_image(out: Path) -> list[dict[str, str]]:
    with (out / "per_image.csv").open() as f:
        return list(csv.DictReader(f))


def test_written_manifest_rows_and_masks(eval_setup, written_manifest):
    path = written_manifest["manifest"]
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == COLUMNS and len(rows) == EVAL_IMAGES
    assert [r["image"] for r in rows] == [f"val/img{i}.png" for i in range(EVAL_IMAGES)]  # relative to data.root
    assert [r["id"] for r in rows] == [f"{i:05d}_img{i}" for i in range(EVAL_IMAGES)]
    for row, evaluated in zip(rows, per_image(written_manifest["run"])):
        mask = path.parent / row["mask"]
        assert row["mask"].startswith("eval_masks/") and mask.is_file()
        with Image.open(mask) as img:
            assert img.mode == "L" and img.size == (32, 32) and set(np.unique(np.asarray(img))) <= {0, 255}
            assert pixels_sha256(img) == row["mask_sha256"]
            assert float(row["hole_ratio"]) == pytest.approx((np.asarray(img) > 127).mean(), abs=1e-6)
        assert float(row["hole_ratio"]) == pytest.approx(float(evaluated["hole_ratio"]), abs=1e-6)
        assert row["seed"] == "0" and row["generator"] == ""  # the mask file is the definition
        assert row["bucket"].endswith("%")


def test_evaluating_through_a_manifest_twice_and_through_its_copy_is_identical(eval_setup, written_manifest, tmp_path):
    manifest = written_manifest["manifest"]
    copy = tmp_path / "copy" / "eval.csv"  # same name elsewhere: summary.json may then be compared byte for byte
    first = run_evaluation(
        eval_setup, tmp_path / "a", f"manifest={manifest}", f"manifest_out={copy}", "save_images=true"
    )
    second = run_evaluation(eval_setup, tmp_path / "b", f"manifest={manifest}")
    through_copy = run_evaluation(eval_setup, tmp_path / "c", f"manifest={copy}")

    # the manifest's pairs are the dataset's pairs: the numbers of the run that wrote it, exactly
    assert first["metrics"] == written_manifest["summary"]["metrics"]
    assert first["metrics"] == second["metrics"] == through_copy["metrics"]
    for name in ("a", "b"):
        assert (tmp_path / name / "per_image.csv").read_bytes() == (tmp_path / "c" / "per_image.csv").read_bytes()
    assert (tmp_path / "b" / "summary.json").read_bytes() == (tmp_path / "c" / "summary.json").read_bytes()
    rows, original = per_image(tmp_path / "a"), per_image(written_manifest["run"])
    assert [r["id"] for r in rows] == [f"{i:05d}_img{i}" for i in range(EVAL_IMAGES)]
    for row, reference in zip(rows, original):
        assert {k: row[k] for k in MANIFEST_ROW_METRICS} == {k: reference[k] for k in MANIFEST_ROW_METRICS}

    summary = json.loads((tmp_path / "c" / "summary.json").read_text())
    assert summary["manifest"]["rows"] == EVAL_IMAGES and summary["protocol"]["mask"] == "manifest eval"
    assert summary["manifest"]["content_sha256"] == read_manifest(manifest).content_sha256()
    assert "Evaluated through the manifest `eval`" in (tmp_path / "c" / "table1.md").read_text()
    assert read_manifest(copy).rows == read_manifest(manifest).rows
    # scoring the saved images as another framework's outputs: tests/evaluation/manifests/test_scoring.py


def test_an_edited_mask_stops_evaluation_naming_the_file(eval_setup, written_manifest, tmp_path):
    folder = tmp_path / "edited"
    shutil.copytree(written_manifest["manifest"].parent, folder)
    manifest = folder / "eval.csv"
    target = folder / read_manifest(manifest).rows[2].mask
    pixels = np.asarray(Image.open(target)).copy()
    pixels[0, 0] = 255 - pixels[0, 0]  # one pixel
    Image.fromarray(pixels).save(target)
    with pytest.raises(ManifestError) as info:
        run_evaluation(eval_setup, tmp_path / "out", f"manifest={manifest}")
    message = str(info.value)
    assert str(target) in message and "checksum" in message and "\n" not in message
    assert not (tmp_path / "out" / "summary.json").exists()
    # that the checksum covers the decoded pixels, not the PNG bytes: tests/evaluation/manifests/test_files.py


def test_cli_edited_mask_exits_2_with_one_line(eval_setup, written_manifest, tmp_path):
    folder = tmp_path / "edited"
    shutil.copytree(written_manifest["manifest"].parent, folder)
    target = folder / read_manifest(folder / "eval.csv").rows[0].mask
    Image.new("L", (32, 32), 255).save(target)
    done = run_module(
        "evaluate", eval_overrides(eval_setup, tmp_path / "out", f"manifest={folder / 'eval.csv'}"), tmp_path
    )
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and str(target) in lines[0] and "checksum" in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_evaluate_a_shipped_manifest(eval_setup, tmp_path, monkeypatch):
    """pkg:paris_center: masks made once into $DMFN_CACHE; its first rows evaluated on Paris stand-ins at 256 px give
    the data group's Table 1 numbers for the same images."""
    from tests.fakes import fake_dataset_layouts

    monkeypatch.setenv("DMFN_CACHE", str(tmp_path / "cache"))
    shipped = read_manifest("pkg:paris_center")
    assert materialise(shipped) == 1
    made = sorted(p.name for p in (tmp_path / "cache" / "manifests" / "paris_center" / "masks").iterdir())
    assert made == ["center_256.png"]

    # a 4-row manifest cut from it (masks made again beside it from the rows' generators and seeds)
    subset = write_manifest(tmp_path / "subset" / "paris4.csv", shipped.rows[:4])
    data = fake_dataset_layouts(tmp_path / "data")
    args = [
        f"ckpt={eval_setup['ckpt']}",
        "data=paris",
        f"data.root={data / 'paris'}",
        "data.num_workers=0",
        "batch_size=4",
        "lpips.enabled=false",
        "progress=false",
    ]
    summary = evaluate(compose_config([*args, f"manifest={subset}", f"output_dir={tmp_path / 'a'}"]))
    assert summary["n_images"] == 4 and summary["protocol"]["table1"] is True  # the exact centre box at 256
    assert "by_hole_ratio" not in summary and (tmp_path / "subset" / "masks" / "center_256.png").is_file()
    first_four = ["+data.val.limit=4", "data.val.expected_count=null", f"output_dir={tmp_path / 'b'}"]
    direct = evaluate(compose_config([*args, *first_four]))
    assert direct["metrics"] == summary["metrics"]


def test_manifest_out_needs_centre_cropped_test_images(eval_setup, tmp_path):
    args = [
        f"ckpt={eval_setup['ckpt']}",
        "data=demo",
        "data.image_size=32",
        "data.num_workers=0",
        "lpips.enabled=false",
    ]
    args += ["progress=false", f"output_dir={tmp_path / 'out'}", f"manifest_out={tmp_path / 'm.csv'}"]
    with pytest.raises(ConfigError, match="manifest_out needs centre-cropped test images"):
        evaluate(compose_config(args))
    assert not (tmp_path / "out" / "summary.json").exists()


# ---------------------------------------------------------------------------------------------------------------
# where an evaluation writes: never inside what it reads, never mixed with another evaluation's files


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("where", ["val/eval_out", "val", "val/deeper/eval_out"])
def test_an_output_dir_inside_the_folder_it_reads_is_refused(eval_setup, tmp_path, where):
    data = tmp_path / "data"
    shutil.copytree(eval_setup["data"], data)
    before, tree = _files(data), _tree(data)
    setup = {**eval_setup, "data": data}
    with pytest.raises(ConfigError) as info:
        run_evaluation(setup, data / where, "save_images=true")
    message = str(info.value)
    assert str(data / where) in message and str(data / "val") in message and "\n" not in message
    assert _files(data) == before and _tree(data) == tree  # not even an empty folder was made


def test_a_manifest_out_inside_the_folder_it_reads_is_refused(eval_setup, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(eval_setup["data"], data)
    with pytest.raises(ConfigError, match=r"manifest_out=.*eval_masks.*set manifest_out to a folder outside it"):
        run_evaluation({**eval_setup, "data": data}, tmp_path / "out", f"manifest_out={data / 'val' / 'eval.csv'}")
    assert sorted(p.name for p in (data / "val").iterdir()) == [f"img{i}.png" for i in range(EVAL_IMAGES)]


@pytest.fixture(scope="module")
def second_generator(tmp_path_factory) -> Path:
    from dmfn_lightning.models import DMFNGenerator, export_generator

    torch.manual_seed(1)
    return export_generator(DMFNGenerator(num_blocks=1, base_channels=16), tmp_path_factory.mktemp("g2") / "g2.pt")


def test_a_second_evaluation_replaces_the_first_and_an_interrupted_one_changes_nothing(
    eval_setup, second_generator, tmp_path, monkeypatch
):
    import dmfn_lightning.evaluate as evaluate_module

    out = tmp_path / "out"
    run_evaluation(eval_setup, out, "save_images=true")
    first = _files(out)
    assert len([name for name in first if name.startswith("images/")]) == EVAL_IMAGES

    # the second generator's run stops after its first batch of images: the first run's files stay as they were
    calls = {"n": 0}
    original = evaluate_module.save_images

    def stop_after_one_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(evaluate_module, "save_images", stop_after_one_batch)
    second = {**eval_setup, "ckpt": second_generator}
    with pytest.raises(KeyboardInterrupt):
        run_evaluation(second, out, "save_images=true")
    assert calls["n"] == 2
    assert _files(out) == first
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    monkeypatch.undo()

    # completed, it replaces every file of the first: exactly what it writes into an empty folder
    run_evaluation(second, out, "save_images=true")
    run_evaluation(second, tmp_path / "fresh", "save_images=true")
    assert _files(out) == _files(tmp_path / "fresh") != first
    assert json.loads((out / "summary.json").read_text())["checkpoint"] == str(second_generator)

    # a run without images leaves none of the previous run's beside its summary
    run_evaluation(eval_setup, out)
    assert not (out / "images").exists()
    assert json.loads((out / "summary.json").read_text())["checkpoint"] == str(eval_setup["ckpt"])


@pytest.mark.parametrize("mine", ["summary.json", "images/holiday.png", "table1.md"])
def test_files_of_the_same_names_that_are_not_an_evaluations_are_refused(eval_setup, tmp_path, mine):
    out = tmp_path / "out"
    (out / mine).parent.mkdir(parents=True, exist_ok=True)
    (out / mine).write_bytes(b"my own notes\n")
    with pytest.raises(OutputPathError) as info:
        run_evaluation(eval_setup, out, "save_images=true")
    message = str(info.value)
    assert str(out) in message and mine.split("/")[0] in message and "\n" not in message
    assert _files(out) == {mine: b"my own notes\n"}
