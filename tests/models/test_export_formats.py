"""models.export_formats: each deployment format (TorchScript, ONNX with either exporter, torch.export, the
generator file) written and loaded back matches PyTorch, at any height and width where the format pads inside itself;
the two-stage instance norm; one registry entry per format. The command line (dmfn_lightning.export) is tested in
tests/test_export.py."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from dmfn_lightning.export import export
from dmfn_lightning.models import DMFNGenerator, load_generator
from dmfn_lightning.models.export_formats import FILENAMES, example_input
from tests.models.model_fakes import SIZES, TOLERANCE, export_test_generator, reference


@pytest.fixture(scope="module")
def generator() -> DMFNGenerator:
    return export_test_generator()


def test_torchscript_matches_pytorch(generator, tmp_path):
    report = export(generator, tmp_path, formats=["torchscript"], verify_sizes=SIZES, log=lambda *_: None)
    entry = report["formats"]["torchscript"]
    assert entry["verified"] is True and max(entry["max_abs_diff"].values()) <= TOLERANCE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice
        module = torch.jit.load(str(tmp_path / FILENAMES["torchscript"]))
    for batch, (h, w) in zip((1, 3), SIZES):  # independent of export()'s own check: other batch sizes too
        x = example_input(batch, h, w, seed=7)
        assert (module(x) - reference(generator, x)).abs().max() <= TOLERANCE


def test_onnx_matches_pytorch(generator, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed: pip install 'dmfn_lightning[export]'")
    pytest.importorskip("onnxscript", reason="the dynamo ONNX exporter needs onnxscript")
    report = export(generator, tmp_path, formats=["onnx"], verify_sizes=SIZES, log=lambda *_: None)
    entry = report["formats"]["onnx"]
    assert entry["verified"] is True and entry["exporter"] == "dynamo" and entry["opset"] >= 17
    assert entry["instance_norm"] == "two-stage reductions"
    assert not list(tmp_path.glob("*.data"))  # one self-contained file
    session = ort.InferenceSession(str(tmp_path / FILENAMES["onnx"]), providers=["CPUExecutionProvider"])
    for batch, (h, w) in zip((1, 3), SIZES):  # dynamic batch, height and width
        x = example_input(batch, h, w, seed=8)
        out = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
        assert out.shape == (batch, 3, h, w)
        assert (out - reference(generator, x)).abs().max() <= TOLERANCE


def test_two_stage_instance_norm_is_the_same_function(generator):
    from dmfn_lightning.models.export_formats import TwoStageInstanceNorm, with_two_stage_instance_norm

    swapped = with_two_stage_instance_norm(generator)
    assert not any(isinstance(m, torch.nn.InstanceNorm2d) for m in swapped.modules())
    assert any(isinstance(m, torch.nn.InstanceNorm2d) for m in generator.modules())  # the original is untouched
    x = example_input(2, 32, 48)
    assert (reference(swapped, x) - reference(generator, x)).abs().max() <= 1e-5
    y = torch.randn(2, 5, 7, 9) * 3 + 10
    expected = torch.nn.functional.instance_norm(y)
    assert (TwoStageInstanceNorm()(y) - expected).abs().max() <= 1e-5


def test_legacy_onnx_exporter_matches_too(generator, tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed: pip install 'dmfn_lightning[export]'")
    report = export(
        generator, tmp_path, formats=["onnx"], onnx_exporter="torchscript", verify_sizes=SIZES, log=lambda *_: None
    )
    assert report["formats"]["onnx"]["verified"] is True and report["formats"]["onnx"]["opset"] == 17


def test_pt2_and_generator_file(generator, tmp_path):
    report = export(generator, tmp_path, formats=["pt2", "generator"], verify_sizes=SIZES, log=lambda *_: None)
    assert all(entry["verified"] is True for entry in report["formats"].values())
    assert load_generator(tmp_path / FILENAMES["generator"]).config == generator.config
    saved = json.loads((tmp_path / "export.json").read_text())
    assert set(saved["formats"]) == {"pt2", "generator"}


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_exported_models_keep_the_input_size_for_any_height_and_width(fmt, generator, tmp_path):
    """Item 8: a 30x46 input (not multiples of 4) gives a 30x46 output, padded and cropped inside the model as
    run_generator does, instead of a silently larger prediction."""

    def padded_reference(model, x):  # what run_generator does: reflect-pad to multiples of 4, crop back
        h, w = x.shape[-2:]
        padded = torch.nn.functional.pad(x, (0, -w % 4, 0, -h % 4), mode="reflect")
        return reference(model, padded)[..., :h, :w]

    if fmt == "onnx":
        ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
        pytest.importorskip("onnxscript", reason="the dynamo ONNX exporter needs onnxscript")
    report = export(generator, tmp_path, formats=[fmt], verify_sizes=SIZES, log=lambda *_: None)
    assert report["formats"][fmt]["verified"] is True
    path = str(tmp_path / FILENAMES[fmt])
    if fmt == "onnx":
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])

        def run(x):
            return torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(path)

        def run(x):
            with torch.no_grad():
                return module(x)

    for batch, (h, w) in ((1, (30, 46)), (2, (33, 41)), (1, (32, 48))):
        x = example_input(batch, h, w, seed=3)
        out = run(x)
        assert out.shape == (batch, 3, h, w)
        assert (out - padded_reference(generator, x)).abs().max() <= TOLERANCE
    with pytest.raises(ValueError, match="divisible by 4"):  # the eager model still refuses: the wrapper pads
        generator(example_input(1, 30, 46))
    assert "30x47" in report["formats"][fmt]["max_abs_diff"]  # export() itself checks a size that needs padding


def test_every_format_has_one_registry_entry(generator, tmp_path):
    """The export and the verification read the same table: its names are the CLI's choices and file names."""
    from dmfn_lightning.core.errors import ExportError
    from dmfn_lightning.export import verify
    from dmfn_lightning.models.export_formats import EXPORT_FORMATS, FORMATS

    assert tuple(EXPORT_FORMATS) == FORMATS and set(FILENAMES) == set(FORMATS)
    assert {name for name, spec in EXPORT_FORMATS.items() if spec.any_size} == {"torchscript", "onnx"}
    with pytest.raises(ExportError, match="unknown format 'tflite'"):
        verify(generator, "tflite", tmp_path / "generator.tflite", SIZES)


def test_example_input_and_the_padding_wrapper_by_hand():
    """The deterministic example input has a centred half-size hole; PadToMultipleOf4 reflect-pads to multiples of
    4, runs, and crops back to the input's size; an unknown format name lists the known ones."""
    from dmfn_lightning.core.errors import ExportError
    from dmfn_lightning.models.export_formats import FORMATS, PadToMultipleOf4, get_format

    x = example_input(2, 8, 12, seed=5)
    assert x.shape == (2, 4, 8, 12) and torch.equal(x, example_input(2, 8, 12, seed=5))
    assert not torch.equal(x, example_input(2, 8, 12, seed=6))
    hole = torch.zeros(8, 12)
    hole[2:6, 3:9] = 1
    assert torch.equal(x[:, 3], hole.expand(2, 8, 12))
    assert torch.equal(x[:, :3] * hole, torch.zeros_like(x[:, :3]))  # the image is blanked in the hole
    seen = []

    def spy(t):
        seen.append(tuple(t.shape))
        return t[:, :3]

    wrapper = PadToMultipleOf4(spy)
    y = torch.rand(1, 4, 30, 45)
    assert torch.equal(wrapper(y), y[:, :3]) and seen == [(1, 4, 32, 48)]
    assert [get_format(name).filename for name in FORMATS] == [FILENAMES[name] for name in FORMATS]
    with pytest.raises(ExportError, match="unknown format 'tflite'; choose from torchscript, onnx, pt2, generator"):
        get_format("tflite")
