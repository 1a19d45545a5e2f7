"""Every entry point, run as a user would, fails fast on bad input: non-zero exit, one short message, no traceback
(unless HYDRA_FULL_ERROR=1 asks for it)."""

from __future__ import annotations

import time

import pytest

from dmfn_lightning.models import DMFNGenerator, export_generator
from tests.cli import run_module


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    empty = root / "empty"
    (empty / "train").mkdir(parents=True)
    (empty / "val").mkdir()
    texts = root / "texts"
    for split in ("train", "val"):
        (texts / split).mkdir(parents=True)
        for i in range(3):
            (texts / split / f"note{i}.txt").write_text("not an image\n")
    generator = export_generator(DMFNGenerator(num_blocks=1, base_channels=16), root / "generator.pt")
    return {"root": root, "missing": root / "does_not_exist", "empty": empty, "texts": texts, "gen": generator}


def _cases(p: dict) -> list[tuple[str, list[str], str]]:
    """(entry point, arguments, a phrase the message must contain)."""
    gen, missing, empty, texts = str(p["gen"]), str(p["missing"]), str(p["empty"]), str(p["texts"])
    out = str(p["root"] / "out")
    return [
        # missing data folder
        ("train", ["+experiment=demo", "data=folder", f"data.root={missing}"], "does not exist"),
        ("evaluate", [f"ckpt={gen}", "lpips.enabled=false", "data=folder", f"data.root={missing}"], "does not exist"),
        ("inpaint", ["--checkpoint", gen, "--image", missing, "--mask-type", "center", "--output", out], missing),
        # empty folder
        ("train", ["+experiment=demo", "data=folder", f"data.root={empty}"], "no images"),
        ("evaluate", [f"ckpt={gen}", "lpips.enabled=false", "data=folder", f"data.root={empty}"], "no images"),
        (
            "inpaint",
            ["--checkpoint", gen, "--image", f"{empty}/train", "--mask-type", "center", "--output", out],
            "no image",
        ),
        # a folder of non-images
        ("train", ["+experiment=demo", "data=folder", f"data.root={texts}"], "no images"),
        ("evaluate", [f"ckpt={gen}", "lpips.enabled=false", "data=folder", f"data.root={texts}"], "no images"),
        (
            "inpaint",
            ["--checkpoint", gen, "--image", f"{texts}/train", "--mask-type", "center", "--output", out],
            "no image",
        ),
        # a missing checkpoint
        ("train", ["+experiment=demo", f"ckpt_path={missing}.ckpt"], "does not exist"),
        (
            "evaluate",
            [f"ckpt={missing}.ckpt", "lpips.enabled=false", "data=folder", f"data.root={texts}"],
            "does not exist",
        ),
        (
            "inpaint",
            ["--checkpoint", f"{missing}.pt", "--image", gen, "--mask-type", "center", "--output", out],
            "does not exist",
        ),
        ("export", ["--checkpoint", f"{missing}.pt", "--output", out], "does not exist"),
        ("app", ["--checkpoint", f"{missing}.pt"], "does not exist"),
        # a bad override / option
        ("train", ["+experiment=demo", "trainer.max_stepz=3"], "max_stepz"),
        ("evaluate", [f"ckpt={gen}", "lpips.nett=alex"], "nett"),
        ("inpaint", ["--checkpoint", gen, "--image", gen, "--precision", "fp64", "--output", out], "fp64"),
        ("export", ["--checkpoint", gen, "--output", out, "--format", "zip"], "zip"),
    ]


def _ids() -> list[str]:
    kinds = ["missing-data"] * 3 + ["empty"] * 3 + ["non-images"] * 3 + ["missing-ckpt"] * 5 + ["bad-override"] * 4
    entries = ["train", "evaluate", "inpaint"] * 3 + ["train", "evaluate", "inpaint", "export", "app"]
    entries += ["train", "evaluate", "inpaint", "export"]
    return [f"{e}-{k}" for e, k in zip(entries, kinds)]


@pytest.mark.slow
@pytest.mark.parametrize("index", range(18), ids=_ids())
def test_entry_point_fails_fast_and_clearly(index, places, tmp_path):
    entry, args, phrase = _cases(places)[index]
    started = time.monotonic()
    proc = run_module(entry, args, tmp_path, timeout=120)
    elapsed = time.monotonic() - started
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert elapsed < 60, f"took {elapsed:.0f} s"
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert phrase.lower() in proc.stderr.lower(), proc.stderr[-3000:]
    message = [ln for ln in proc.stderr.strip().splitlines() if ln.strip() and "Warning" not in ln]
    assert len(message) <= 16, proc.stderr  # one short paragraph (Hydra adds its "full stack trace" hint)


@pytest.mark.parametrize("entry,args", [("train", ["+experiment=demo", "data.image_size=96"]), ("inpaint", None)])
def test_full_error_env_shows_the_traceback(entry, args, places, tmp_path):
    if args is None:
        args = ["--checkpoint", str(places["missing"]), "--image", str(places["gen"]), "--mask-type", "center"]
        args += ["--output", str(tmp_path)]
    proc = run_module(entry, args, tmp_path, env={"HYDRA_FULL_ERROR": "1"}, timeout=120)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["inpaint", "export", "app"])
@pytest.mark.parametrize("kind", ["existing-file", "read-only"])
def test_unusable_output_location_fails_before_any_work(entry, kind, places, tmp_path):
    """An existing file or a read-only folder as the output: one line, exit 2, no traceback, and
    before the model is loaded (the checkpoint given does not even exist, yet the output is what is reported)."""
    from tests.readonly import unwritable_folder

    if kind == "existing-file":
        output, phrase = tmp_path / "taken.png.txt", "existing file"
        output.write_text("a file")
    else:
        output, phrase = unwritable_folder(tmp_path) / "out", "not writable"
    checkpoint = str(places["missing"]) + ".pt"
    args = {
        "inpaint": ["--checkpoint", checkpoint, "--image", str(places["gen"]), "--mask-type", "center"],
        "export": ["--checkpoint", checkpoint],
        "app": ["--checkpoint", checkpoint],
    }[entry]
    option = "--output-dir" if entry == "app" else "--output"
    proc = run_module(entry, [*args, option, str(output)], tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert phrase in proc.stderr and option in proc.stderr and "does not exist" not in proc.stderr, proc.stderr
    message = [ln for ln in proc.stderr.strip().splitlines() if ln.strip() and "Warning" not in ln]
    assert len(message) <= 2, proc.stderr  # the error line and the HYDRA_FULL_ERROR hint
