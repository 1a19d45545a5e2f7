"""Evaluation manifests: written by evaluate, evaluated through (twice, and through a copy, with identical numbers),
edited masks refused with a one-line error naming the file, other frameworks' outputs scored, and the shipped
protocol manifests checked against the mask generators that make them."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli import run_module
from conftest import EVAL_IMAGES, eval_overrides, run_evaluation
from PIL import Image

from dmfn_lightning.core.errors import ManifestError
from dmfn_lightning.evaluate import compose_config, evaluate
from dmfn_lightning.evaluation.manifests.dataset import resolve_images
from dmfn_lightning.evaluation.manifests.files import (
    COLUMNS,
    Manifest,
    ManifestRow,
    pixels_sha256,
    read_manifest,
    shipped_manifests,
    write_manifest,
)
from dmfn_lightning.evaluation.manifests.masks import generate_mask, load_generators, materialise
from dmfn_lightning.evaluation.manifests.protocols import (
    FULL_PRODUCT_MAX_IMAGES,
    PROTOCOLS,
    _test_split_images,
    build_protocol,
    protocol_generators,
)
from dmfn_lightning.evaluation.manifests.scoring import score_outputs

DATASETS = ("paris", "places2", "celeba_hq", "ffhq")
METRICS = ("psnr", "ssim", "ssim_full", "ssim_cropped", "ssim_uniform7", "lpips", "l1", "l1_hole", "hole_ratio")


def per_image(out: Path) -> list[dict[str, str]]:
    with (out / "per_image.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def written(eval_setup, tmp_path_factory) -> dict[str, object]:
    """A free-form evaluation of the folder that also writes its pairs as a manifest."""
    out = tmp_path_factory.mktemp("written")
    summary = run_evaluation(eval_setup, out / "run", "mask=free_form", f"manifest_out={out / 'm' / 'eval.csv'}")
    return {"summary": summary, "manifest": out / "m" / "eval.csv", "run": out / "run"}


def test_written_manifest_rows_and_masks(eval_setup, written):
    path = written["manifest"]
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == COLUMNS and len(rows) == EVAL_IMAGES
    assert [r["image"] for r in rows] == [f"val/img{i}.png" for i in range(EVAL_IMAGES)]  # relative to data.root
    assert [r["id"] for r in rows] == [f"{i:05d}_img{i}" for i in range(EVAL_IMAGES)]
    for row, evaluated in zip(rows, per_image(written["run"])):
        mask = path.parent / row["mask"]
        assert row["mask"].startswith("eval_masks/") and mask.is_file()
        with Image.open(mask) as img:
            assert img.mode == "L" and img.size == (32, 32) and set(np.unique(np.asarray(img))) <= {0, 255}
            assert pixels_sha256(img) == row["mask_sha256"]
            assert float(row["hole_ratio"]) == pytest.approx((np.asarray(img) > 127).mean(), abs=1e-6)
        assert float(row["hole_ratio"]) == pytest.approx(float(evaluated["hole_ratio"]), abs=1e-6)
        assert row["seed"] == "0" and row["generator"] == ""  # the mask file is the definition
        assert row["bucket"].endswith("%")


def test_evaluating_through_a_manifest_twice_and_through_its_copy_is_identical(eval_setup, written, tmp_path):
    manifest = written["manifest"]
    copy = tmp_path / "copy" / "eval.csv"  # same name elsewhere: summary.json may then be compared byte for byte
    first = run_evaluation(
        eval_setup, tmp_path / "a", f"manifest={manifest}", f"manifest_out={copy}", "save_images=true"
    )
    second = run_evaluation(eval_setup, tmp_path / "b", f"manifest={manifest}")
    through_copy = run_evaluation(eval_setup, tmp_path / "c", f"manifest={copy}")

    # the manifest's pairs are the dataset's pairs: the numbers of the run that wrote it, exactly
    assert first["metrics"] == written["summary"]["metrics"]
    assert first["metrics"] == second["metrics"] == through_copy["metrics"]
    for name in ("a", "b"):
        assert (tmp_path / name / "per_image.csv").read_bytes() == (tmp_path / "c" / "per_image.csv").read_bytes()
    assert (tmp_path / "b" / "summary.json").read_bytes() == (tmp_path / "c" / "summary.json").read_bytes()
    rows, original = per_image(tmp_path / "a"), per_image(written["run"])
    assert [r["id"] for r in rows] == [f"{i:05d}_img{i}" for i in range(EVAL_IMAGES)]
    for row, reference in zip(rows, original):
        assert {k: row[k] for k in METRICS} == {k: reference[k] for k in METRICS}

    summary = json.loads((tmp_path / "c" / "summary.json").read_text())
    assert summary["manifest"]["rows"] == EVAL_IMAGES and summary["protocol"]["mask"] == "manifest eval"
    assert summary["manifest"]["content_sha256"] == read_manifest(manifest).content_sha256()
    assert "Evaluated through the manifest `eval`" in (tmp_path / "c" / "table1.md").read_text()
    assert read_manifest(copy).rows == read_manifest(manifest).rows

    # someone else's outputs (here: our saved PNGs) scored against the manifest give the same numbers
    scored = score_outputs(
        manifest,
        tmp_path / "a" / "images",
        eval_setup["data"],
        lpips_backbone_weights="random",
        output_dir=tmp_path / "scored",
        batch_size=3,
    )
    assert scored["n_images"] == EVAL_IMAGES
    for key, value in first["metrics"].items():
        assert scored["metrics"][key] == pytest.approx(value, abs=1e-6), key
    assert (tmp_path / "scored" / "table1.md").is_file()


def test_an_edited_mask_stops_evaluation_naming_the_file(eval_setup, written, tmp_path):
    folder = tmp_path / "edited"
    shutil.copytree(written["manifest"].parent, folder)
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

    # the checksum covers the decoded pixels, not the PNG bytes: re-encoding keeps an edit an edit, and an
    # unedited mask written by another encoder (here: other compression levels) still passes
    Image.fromarray(pixels).save(target, compress_level=0)
    with pytest.raises(ManifestError, match="checksum"):
        materialise(read_manifest(manifest))
    pixels[0, 0] = 255 - pixels[0, 0]
    Image.fromarray(pixels).save(target, compress_level=1)
    assert materialise(read_manifest(manifest)) >= 1


def test_cli_edited_mask_exits_2_with_one_line(eval_setup, written, tmp_path):
    folder = tmp_path / "edited"
    shutil.copytree(written["manifest"].parent, folder)
    target = folder / read_manifest(folder / "eval.csv").rows[0].mask
    Image.new("L", (32, 32), 255).save(target)
    done = run_module(
        "evaluate", eval_overrides(eval_setup, tmp_path / "out", f"manifest={folder / 'eval.csv'}"), tmp_path
    )
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and str(target) in lines[0] and "checksum" in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_score_cli_and_its_errors(eval_setup, written, tmp_path):
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    manifest = read_manifest(written["manifest"])
    rng = np.random.default_rng(1)
    for row in manifest.rows[:-1]:
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(outputs / f"{row.id}.png")
    args = ["score", str(written["manifest"]), str(outputs), "--data-root", str(eval_setup["data"]), "--no-lpips"]
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


def test_bad_manifests_are_one_line_errors(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(ManifestError, match="manifest file does not exist"):
        read_manifest(missing)
    with pytest.raises(ManifestError, match="no such shipped manifest"):
        read_manifest("pkg:mars_center")
    bad = tmp_path / "bad.csv"
    bad.write_text("image,mask\na.png,m.png\n")
    with pytest.raises(ManifestError, match="missing column"):
        read_manifest(bad)
    row = ManifestRow("x", "a.png", "m.png", 0.1, "0-10%", 0, "", "0" * 64)
    write_manifest(tmp_path / "dup.csv", [row, row])
    with pytest.raises(ManifestError, match="not unique"):
        read_manifest(tmp_path / "dup.csv")
    write_manifest(tmp_path / "one.csv.gz", [row])  # compressed manifests read back the same
    assert read_manifest(tmp_path / "one.csv.gz").rows == [row]
    with pytest.raises(ManifestError, match=r"m\.png: mask file of row 'x'.*does not exist"):
        materialise(read_manifest(tmp_path / "one.csv.gz"))


# ---------------------------------------------------------------------------------------------------------------
# the shipped protocol manifests


def test_every_dataset_has_both_shipped_protocols():
    assert sorted(shipped_manifests()) == sorted(f"pkg:{d}_{p}" for d in DATASETS for p in PROTOCOLS)


@pytest.mark.parametrize("dataset", DATASETS)
def test_shipped_manifests_match_the_test_lists_and_the_generators(dataset, tmp_path):
    images = _test_split_images(dataset)
    generators = load_generators()
    expected = {"paris": 100, "places2": 100, "celeba_hq": 2000, "ffhq": 10000}[dataset]
    assert len(images) == expected
    for protocol in PROTOCOLS:
        manifest = read_manifest(f"pkg:{dataset}_{protocol}", mask_root=tmp_path / protocol)
        names = protocol_generators(protocol)
        # every image in every bucket, except FFHQ's 10,000: one mask each, the buckets taking turns
        every_bucket = len(images) <= FULL_PRODUCT_MAX_IMAGES
        assert every_bucket == (dataset != "ffhq")
        assert [r.image for r in manifest.rows] == (images * len(names) if every_bucket else images)
        assert {r.generator for r in manifest.rows} == set(names) <= set(generators)
        if protocol == "center":
            assert {r.mask_sha256 for r in manifest.rows} == {manifest.rows[0].mask_sha256}
            assert {r.hole_ratio for r in manifest.rows} == {0.25}
        else:
            counts = [len(images) if every_bucket else len(range(b, len(images), 6)) for b in range(6)]
            assert manifest.buckets() == {generators[n]["bucket"]: c for n, c in zip(names, counts)}
            assert [r.seed for r in manifest.rows] == list(range(len(manifest.rows)))
            assert len({r.mask_sha256 for r in manifest.rows}) == len(manifest.rows)
        # a changed mask generator would be caught here: the first row of every bucket and a few others are made
        # again from their seeds and must match the shipped checksums and hole ratios
        picks = [next(r for r in manifest.rows if r.generator == n) for n in names] + manifest.rows[-2:]
        sample = Manifest(picks, manifest.source, manifest.mask_root)
        assert materialise(sample) == len({r.mask for r in picks})
        for row in picks:
            with Image.open(sample.mask_path(row)) as img:
                assert img.size == (256, 256)
                assert (np.asarray(img) > 127).mean() == pytest.approx(row.hole_ratio, abs=1e-6)


def test_a_changed_generator_is_detected(tmp_path):
    manifest = read_manifest("pkg:paris_free_form", mask_root=tmp_path)
    generators = load_generators()
    changed = json.loads(json.dumps(generators))
    changed["free_form_256_10-20"]["mask"]["width"] = [12, 41]
    row = next(r for r in manifest.rows if r.generator == "free_form_256_10-20")
    with pytest.raises(ManifestError) as info:
        materialise(Manifest([row], manifest.source, tmp_path), generators=changed)
    assert "mask generator changed" in str(info.value) and row.id in str(info.value)
    assert not (tmp_path / row.mask).exists()
    assert materialise(Manifest([row], manifest.source, tmp_path), generators=generators) == 1


def test_free_form_generators_hit_their_buckets():
    generators = load_generators()
    for name in protocol_generators("free_form"):
        spec = generators[name]
        low, high = (float(v) / 100 for v in spec["bucket"].rstrip("%").split("-"))
        for seed in range(3):
            ratio = float(generate_mask(spec, seed).mean())
            assert low < ratio <= high, (name, seed, ratio)


def test_build_protocol_reproduces_the_shipped_rows():
    assert build_protocol("paris", "center") == read_manifest("pkg:paris_center").rows
    assert build_protocol("places2", "free_form") == read_manifest("pkg:places2_free_form").rows


def test_evaluate_a_shipped_manifest(eval_setup, tmp_path, monkeypatch):
    """pkg:paris_center: masks made once into $DMFN_CACHE; its first rows evaluated on Paris stand-ins at 256 px give
    the data group's Table 1 numbers for the same images."""
    from fakes import fake_dataset_layouts

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


def test_manifest_out_needs_centre_cropped_test_images(eval_setup, tmp_path):
    from dmfn_lightning.core.errors import ConfigError

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
