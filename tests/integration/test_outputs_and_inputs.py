"""Nothing a user owns is overwritten, nothing a file says is executed, every refusal is one clear line: the
commands run as a user runs them (``python -m dmfn_lightning.<command>``) on manifests that climb out of their
folders or are cut off, output folders inside the data they read, and a second evaluation into the same folder that
fails mid-run. Every refusal: exit status 2, one ``error:`` line, no traceback, no file written outside the named
output folder, no input file changed."""

from __future__ import annotations

import csv
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

import pytest
import torch
from PIL import Image

from dmfn_lightning.core.errors import ConfigError
from dmfn_lightning.evaluation.manifests.files import read_manifest
from dmfn_lightning.train import compose_config as compose_train_config
from tests.cli import run_module
from tests.conftest import EVAL_IMAGES, eval_overrides


def _snapshot(root: Path, skip: Iterable[Path] = ()) -> dict[str, bytes | None]:
    """Every path under ``root`` (files with their bytes, folders as None), except those under ``skip``."""
    skipped = [s.resolve() for s in skip]
    found: dict[str, bytes | None] = {}
    for path in sorted(root.rglob("*")):
        if any(path.resolve() == s or s in path.resolve().parents for s in skipped):
            continue
        found[str(path.relative_to(root))] = path.read_bytes() if path.is_file() else None
    return found


def _refused(done: subprocess.CompletedProcess, *needles: str) -> str:
    """The one ``error:`` line of a refused command (exit status 2, no traceback), holding every needle."""
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, done.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def world(eval_setup, tmp_path) -> dict[str, Path]:
    """A copy of the evaluation data in ``tmp_path/data`` and a working directory of its own (``tmp_path/cwd``, where
    Hydra keeps its run records), so that everything else under ``tmp_path`` must stay as it was."""
    shutil.copytree(eval_setup["data"], tmp_path / "data")
    (tmp_path / "cwd").mkdir()
    return {"root": tmp_path, "data": tmp_path / "data", "cwd": tmp_path / "cwd", "ckpt": eval_setup["ckpt"]}


def _copy_manifest(written_manifest, folder: Path) -> Path:
    shutil.copytree(written_manifest["manifest"].parent, folder)
    return folder / written_manifest["manifest"].name


def _edit_first_row(path: Path, **values: str) -> None:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    rows[0].update(values)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


# -- case 2: ids and mask paths that climb out of their folders -------------------------------------------------


@pytest.mark.parametrize("row_id", ["../../../victim", "a/b"])
def test_cli_a_manifest_id_that_is_not_a_file_name_writes_nothing(world, written_manifest, row_id):
    manifest = _copy_manifest(written_manifest, world["root"] / "m")
    _edit_first_row(manifest, id=row_id)
    out = world["root"] / "runs" / "one" / "out"
    victim = world["root"] / "runs" / "victim.png"  # where out/images/../../../victim.png points
    victim.parent.mkdir()
    victim.write_bytes(b"the user's own picture")
    before = _snapshot(world["root"], skip=[world["cwd"]])
    setup = {"ckpt": world["ckpt"], "data": world["data"]}
    done = run_module(
        "evaluate", eval_overrides(setup, out, f"manifest={manifest}", "save_images=true"), world["cwd"], timeout=180
    )
    _refused(done, f"{manifest} line 2", repr(row_id), "plain file name")
    assert _snapshot(world["root"], skip=[world["cwd"]]) == before  # the victim too; not even out/ was made


def test_cli_materialise_never_makes_a_mask_outside_the_mask_folder(world):
    shipped = read_manifest("pkg:paris_center").rows[0]  # a generator and seed that make a real mask
    manifest = world["root"] / "m" / "m.csv"
    manifest.parent.mkdir()
    header = "id,image,mask,hole_ratio,bucket,seed,generator,mask_sha256"
    row = f"r0,img0.png,../outside/center.png,{shipped.hole_ratio:.6f},,0,{shipped.generator},{shipped.mask_sha256}"
    manifest.write_text(f"{header}\n{row}\n")
    before = _snapshot(world["root"], skip=[world["cwd"]])
    done = run_module("manifest", ["materialise", str(manifest)], world["cwd"], timeout=120)
    _refused(done, f"{manifest} line 2", "'../outside/center.png'", "stay inside")
    assert _snapshot(world["root"], skip=[world["cwd"]]) == before
    assert not (world["root"] / "outside").exists()


# -- case 4: an output folder inside the data it reads ---------------------------------------------------------


@pytest.mark.parametrize("where", ["val/eval_out", "val"])
def test_cli_an_output_dir_inside_the_data_it_reads_is_refused(world, where):
    before = _snapshot(world["root"], skip=[world["cwd"]])
    setup = {"ckpt": world["ckpt"], "data": world["data"]}
    out = world["data"] / where
    done = run_module("evaluate", eval_overrides(setup, out, "save_images=true"), world["cwd"], timeout=180)
    _refused(
        done, f"output_dir='{out}'", f"data.val '{world['data'] / 'val'}'", "set output_dir to a folder outside it"
    )
    assert _snapshot(world["root"], skip=[world["cwd"]]) == before


def _train_args(data: Path, run_dir: Path) -> list[str]:
    return [
        "data=folder",
        f"data.root={data}",
        "data.image_size=64",
        "data.allow_upscale=true",  # the 40 px test images
        "data.batch_size=2",
        "data.num_workers=0",
        "trainer.max_steps=1",
        "model.vgg.weights=random",  # offline
        "inpaint_val_images=true",
        f"hydra.run.dir={run_dir}",
    ]


@pytest.mark.parametrize("where", ["val", "train/run"])
def test_a_training_run_dir_inside_its_data_is_refused(world, where):
    run_dir = world["data"] / where
    cfg = compose_train_config(_train_args(world["data"], run_dir)[:-1], run_dir=run_dir)
    from dmfn_lightning.config_checks import validate_train_config

    with pytest.raises(ConfigError) as info:
        validate_train_config(cfg)
    message = str(info.value)
    assert f"hydra.run.dir='{run_dir}'" in message and str(world["data"] / where.split("/")[0]) in message
    assert "\n" not in message


def test_cli_a_training_run_dir_inside_its_data_is_refused(world):
    shutil.copytree(world["data"] / "val", world["data"] / "train")  # a dataset that trains
    run_dir = world["data"] / "val"
    images = sorted((world["data"] / "val").glob("*.png"))
    before = _snapshot(world["root"], skip=[world["cwd"], run_dir / ".hydra"])
    done = run_module("train", _train_args(world["data"], run_dir), world["cwd"], timeout=180)
    _refused(done, f"hydra.run.dir='{run_dir}'", f"data.val '{run_dir}'")
    # Hydra keeps its record of the run (.hydra/, the log) in the run dir before any task starts; nothing else
    after = _snapshot(world["root"], skip=[world["cwd"], run_dir / ".hydra"])
    assert {k: v for k, v in after.items() if not k.endswith(".log")} == before
    assert sorted((world["data"] / "val").glob("*.png")) == images


# -- case 5: a second evaluation into the same folder, failing mid-run ----------------------------------------


@pytest.fixture(scope="module")
def second_generator(tmp_path_factory) -> Path:
    from dmfn_lightning.models import DMFNGenerator, export_generator

    torch.manual_seed(1)
    return export_generator(DMFNGenerator(num_blocks=1, base_channels=16), tmp_path_factory.mktemp("g2") / "g2.pt")


def test_cli_an_evaluation_failing_mid_run_leaves_the_previous_results_intact(world, second_generator):
    out = world["root"] / "out"
    setup = {"ckpt": world["ckpt"], "data": world["data"]}
    first = run_module("evaluate", eval_overrides(setup, out, "save_images=true"), world["cwd"], timeout=180)
    assert first.returncode == 0, first.stderr
    assert len(list((out / "images").iterdir())) == EVAL_IMAGES
    # the second generator over a copy of the data whose fourth image is a JPEG cut off in the middle: its header
    # reads (checked before the run), its pixels do not, so the run fails in its second batch, after it has
    # inpainted the first two images
    broken = world["root"] / "broken"
    shutil.copytree(world["data"], broken)
    cut = broken / "val" / "img3.jpg"
    with Image.open(broken / "val" / "img3.png") as img:
        img.save(cut, quality=95)
    (broken / "val" / "img3.png").unlink()
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    before = _snapshot(world["root"], skip=[world["cwd"]])
    second = {"ckpt": second_generator, "data": broken}
    done = run_module("evaluate", eval_overrides(second, out, "save_images=true"), world["cwd"], timeout=180)
    _refused(done, str(cut))
    assert _snapshot(world["root"], skip=[world["cwd"]]) == before  # no image of the second run, no staging left


# -- case 13: a manifest cut off mid-line -----------------------------------------------------------------------


def test_cli_a_manifest_cut_off_mid_line_is_named_as_such(world, written_manifest):
    manifest = _copy_manifest(written_manifest, world["root"] / "m")
    manifest.write_bytes(manifest.read_bytes()[:-30])
    before = _snapshot(world["root"], skip=[world["cwd"]])
    setup = {"ckpt": world["ckpt"], "data": world["data"]}
    out = world["root"] / "out"
    done = run_module("evaluate", eval_overrides(setup, out, f"manifest={manifest}"), world["cwd"], timeout=180)
    line = _refused(done, f"{manifest} line {EVAL_IMAGES + 1}", "cut off")
    assert "checksum" not in line
    assert _snapshot(world["root"], skip=[world["cwd"]]) == before
