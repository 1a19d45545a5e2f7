"""evaluation.manifests.scoring: another framework's outputs (<id>.png) scored against a manifest with our
conventions and the metric options of an evaluation; the outputs it refuses."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dmfn_lightning.core.errors import ManifestError
from dmfn_lightning.evaluation.manifests.files import read_manifest
from dmfn_lightning.evaluation.manifests.scoring import score_outputs
from dmfn_lightning.metrics import MetricOptions
from tests.conftest import EVAL_IMAGES, run_evaluation


@pytest.fixture(scope="module")
def saved(eval_setup, written_manifest, tmp_path_factory) -> dict:
    """An evaluation through the written manifest that saved its composited outputs as <id>.png."""
    out = tmp_path_factory.mktemp("saved")
    summary = run_evaluation(eval_setup, out, f"manifest={written_manifest['manifest']}", "save_images=true")
    return {"summary": summary, "images": out / "images"}


def test_our_saved_outputs_score_as_the_evaluation_that_saved_them(eval_setup, written_manifest, saved, tmp_path):
    # (split from the manifest evaluation of tests/test_evaluate.py)
    # someone else's outputs (here: our saved PNGs) scored against the manifest give the same numbers
    scored = score_outputs(
        written_manifest["manifest"],
        saved["images"],
        eval_setup["data"],
        options=MetricOptions(lpips_backbone_weights="random"),
        output_dir=tmp_path / "scored",
        batch_size=3,
    )
    assert scored["n_images"] == EVAL_IMAGES
    for key, value in saved["summary"]["metrics"].items():
        assert scored["metrics"][key] == pytest.approx(value, abs=1e-6), key
    assert (tmp_path / "scored" / "table1.md").is_file()


def test_the_options_choose_the_metrics(eval_setup, written_manifest, saved):
    scored = score_outputs(
        written_manifest["manifest"],
        saved["images"],
        eval_setup["data"],
        options=MetricOptions(lpips=False, ssim="uniform7"),
        name="theirs",
    )
    assert scored["lpips"] is None and "lpips" not in scored["metrics"] and scored["ssim_convention"] == "uniform7"
    assert scored["metrics"]["ssim"] == scored["metrics"]["ssim_uniform7"]
    assert scored["checkpoint_name"] == "theirs" and scored["dataset_name"] == "theirs"


def test_composite_pastes_the_known_pixels_back(eval_setup, written_manifest, tmp_path):
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    for row in read_manifest(written_manifest["manifest"]).rows:
        Image.new("RGB", (32, 32), (255, 0, 0)).save(outputs / f"{row.id}.png")
    args = (written_manifest["manifest"], outputs, eval_setup["data"])
    composited = score_outputs(*args, options=MetricOptions(lpips=False))
    raw = score_outputs(*args, options=MetricOptions(lpips=False), composite=False)
    assert composited["protocol"]["composite"] is True and raw["protocol"]["composite"] is False
    assert composited["metrics"]["l1_hole"] == pytest.approx(raw["metrics"]["l1_hole"], abs=1e-9)  # the hole: theirs
    assert composited["metrics"]["l1"] < raw["metrics"]["l1"]  # outside it: the ground truth's pixels


def test_refused_outputs_are_one_line_errors(eval_setup, written_manifest, tmp_path):
    manifest = written_manifest["manifest"]
    with pytest.raises(ManifestError, match="outputs folder does not exist"):
        score_outputs(manifest, tmp_path / "nowhere", eval_setup["data"])
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    rows = read_manifest(manifest).rows
    for row in rows:
        Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(outputs / f"{row.id}.png")
    Image.new("RGB", (16, 16)).save(outputs / f"{rows[0].id}.png")
    with pytest.raises(ManifestError, match=r"output is 16x16, the manifest's pairs are 32x32") as info:
        score_outputs(manifest, outputs, eval_setup["data"], options=MetricOptions(lpips=False))
    assert "\n" not in str(info.value)
