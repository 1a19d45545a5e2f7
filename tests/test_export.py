"""TorchScript / ONNX / torch.export exports of the generator match PyTorch at two resolutions."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from dmfn_lightning.export import export, main
from dmfn_lightning.models import DMFNGenerator, export_generator, load_generator
from dmfn_lightning.models.export_formats import FILENAMES, example_input

SIZES = [(32, 48), (40, 24)]  # two resolutions, neither the one used for tracing/exporting (64x96)
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def generator() -> DMFNGenerator:
    torch.manual_seed(0)
    return DMFNGenerator(num_blocks=1, base_channels=16).eval()


def reference(generator, x):
    with torch.no_grad():
        return generator(x)


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


def test_cli(generator, tmp_path, capsys):
    ckpt = export_generator(generator, tmp_path / "in.pt")
    args = ["--checkpoint", str(ckpt), "--output", str(tmp_path / "out"), "--format", "generator"]
    assert main([*args, "--verify-sizes", "16x16", "24x32"]) == 0
    out = capsys.readouterr().out
    assert "max |diff| vs PyTorch: 16x16: 0.00e+00, 24x32: 0.00e+00  OK" in out
    with pytest.raises(SystemExit) as info:
        main(["--checkpoint", str(tmp_path / "missing.pt"), "--output", str(tmp_path / "out")])
    assert info.value.code == 2
    assert "missing.pt" in capsys.readouterr().err


def test_mismatch_is_an_error(generator, tmp_path, monkeypatch):
    import dmfn_lightning.export as export_module
    from dmfn_lightning.core.errors import ExportError

    # A negative tolerance is refused now, so the mismatch is simulated.
    monkeypatch.setattr(export_module, "verify", lambda *args, **kwargs: [1.0, 0.0])
    with pytest.raises(ExportError, match="differ from PyTorch"):
        export(generator, tmp_path, formats=["generator"], verify_sizes=SIZES, log=lambda *_: None)


# ----------------------------------------------------------------------------------------------------- bad input


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


def test_negative_tolerance_is_refused(generator, tmp_path, capsys):
    """Item 12: --tolerance -1 used to be accepted and then report FAILED for a zero difference."""
    from dmfn_lightning.core.errors import ExportError

    ckpt = export_generator(generator, tmp_path / "in.pt")
    with pytest.raises(SystemExit) as info:
        main(["--checkpoint", str(ckpt), "--output", str(tmp_path / "out"), "--tolerance", "-1"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--tolerance" in err and ">= 0" in err and "FAILED" not in err
    assert not (tmp_path / "out").exists()
    with pytest.raises(ExportError, match=">= 0"):
        export(generator, tmp_path / "api", formats=["generator"], tolerance=-1.0, log=lambda *_: None)
    assert main(["--checkpoint", str(ckpt), "--output", str(tmp_path / "zero"), "--format", "generator",
                 "--tolerance", "0", "--verify-sizes", "16x16"]) == 0  # fmt: skip


def test_export_into_the_source_folder_keeps_the_source(generator, tmp_path, capsys):
    """Item 12: exporting R/generator.pt into R would overwrite it and lose its metadata: refused; exported
    elsewhere, the copy keeps the source's provenance."""
    run = tmp_path / "run"
    source = export_generator(generator, run / "generator.pt", metadata={"iteration": 7, "vgg_weights": "x"})
    before = source.read_bytes()
    with pytest.raises(SystemExit) as info:
        main(["--checkpoint", str(source), "--output", str(run), "--format", "generator"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "overwrite" in err and "another --output" in err and "Traceback" not in err
    assert source.read_bytes() == before
    args = ["--checkpoint", str(source), "--output", str(tmp_path / "copy"), "--format", "generator"]
    assert main([*args, "--verify-sizes", "16x16"]) == 0
    copied = torch.load(tmp_path / "copy" / "generator.pt", weights_only=True)["metadata"]
    assert copied["source"] == str(source) and copied["source_metadata"] == {"iteration": 7, "vgg_weights": "x"}


def test_export_output_is_checked_before_loading_the_model(generator, tmp_path, monkeypatch, capsys):
    """Item 6: an existing file or a read-only folder as --output: one line, exit 2, before anything is loaded."""
    import dmfn_lightning.export as export_module
    from tests.readonly import unwritable_folder

    monkeypatch.setattr(
        export_module, "load_generator", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded"))
    )
    occupied = tmp_path / "exported.onnx"
    occupied.write_text("a file")
    for output, phrase in ((occupied, "existing file"), (unwritable_folder(tmp_path) / "out", "not writable")):
        with pytest.raises(SystemExit) as info:
            main(["--checkpoint", str(tmp_path / "missing.pt"), "--output", str(output)])
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert phrase in err and "Traceback" not in err and "missing.pt" not in err


def test_folder_as_checkpoint_says_it_is_a_folder(generator, tmp_path, capsys):
    """Item 12: a folder as --checkpoint is "a folder", not "does not exist"."""
    export_generator(generator, tmp_path / "run" / "generator.pt")
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(tmp_path / "run"), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert "is a folder" in err and "does not exist" not in err


def test_every_format_has_one_registry_entry(generator, tmp_path):
    """The export and the verification read the same table: its names are the CLI's choices and file names."""
    from dmfn_lightning.core.errors import ExportError
    from dmfn_lightning.export import verify
    from dmfn_lightning.models.export_formats import EXPORT_FORMATS, FORMATS

    assert tuple(EXPORT_FORMATS) == FORMATS and set(FILENAMES) == set(FORMATS)
    assert {name for name, spec in EXPORT_FORMATS.items() if spec.any_size} == {"torchscript", "onnx"}
    with pytest.raises(ExportError, match="unknown format 'tflite'"):
        verify(generator, "tflite", tmp_path / "generator.tflite", SIZES)
