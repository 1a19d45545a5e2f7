"""The web demo's command line (dmfn_lightning.app): finding a checkpoint, clear messages for bad ones, the output
locations and the page's defaults checked before any work, and the generated holes it hands to the page."""

from __future__ import annotations

import os

import pytest
import torch

gr = pytest.importorskip("gradio", reason="the app extra (gradio) is not installed: pip install -e '.[app]'")

from dmfn_lightning import app  # noqa: E402
from dmfn_lightning.masks import mask_kinds, photo_mask_kinds  # noqa: E402
from dmfn_lightning.models import DMFNGenerator, export_generator  # noqa: E402


@pytest.fixture(scope="module")
def generator() -> DMFNGenerator:
    torch.manual_seed(0)
    return DMFNGenerator(num_blocks=1, base_channels=16).eval()


def test_cli_without_checkpoint_explains_how_to_get_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        app.main([])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "no --checkpoint given" in err and "make demo" in err and "+experiment=demo" in err
    with pytest.raises(SystemExit):
        app.main(["--checkpoint", "missing/generator.pt"])
    err = capsys.readouterr().err
    assert "'missing/generator.pt' does not exist" in err and "make demo" in err


def test_cli_rejects_a_file_that_is_not_a_generator(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    torch.save({"hello": torch.zeros(1)}, bad)
    with pytest.raises(SystemExit):
        app.main(["--checkpoint", str(bad)])
    assert "not a DMFN generator" in capsys.readouterr().err


def test_demo_checkpoint_is_found(tmp_path):
    assert app.find_demo_checkpoint(tmp_path) is None
    old = tmp_path / "outputs" / "demo" / "run1" / "generator.pt"
    new = tmp_path / "outputs" / "demo" / "generator.pt"
    for i, path in enumerate((old, new)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        os.utime(path, (1_000 + i, 1_000 + i))
    assert app.find_demo_checkpoint(tmp_path) == new


def test_output_locations_are_checked_before_loading_the_model(tmp_path, monkeypatch, capsys):
    """An occupied or read-only --output-dir, or an unusable Gradio cache folder, is one line and
    exit 2 before Gradio is imported or the model loaded (the checkpoint here does not even exist)."""
    from tests.readonly import unwritable_folder

    occupied = tmp_path / "results.txt"
    occupied.write_text("a file")
    missing = str(tmp_path / "missing.pt")
    for output, phrase in ((occupied, "existing file"), (unwritable_folder(tmp_path) / "out", "not writable")):
        with pytest.raises(SystemExit) as info:
            app.main(["--checkpoint", missing, "--output-dir", str(output)])
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert "--output-dir" in err and phrase in err and "missing.pt" not in err and "Traceback" not in err
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(occupied))
    with pytest.raises(SystemExit):
        app.main(["--checkpoint", missing])
    err = capsys.readouterr().err
    assert "GRADIO_TEMP_DIR" in err and "existing file" in err


def test_folder_as_checkpoint_says_it_is_a_folder(generator, tmp_path, capsys):
    """A run folder given as --checkpoint: the message names the generator file inside it."""
    export_generator(generator, tmp_path / "run" / "generator.pt")
    with pytest.raises(SystemExit):
        app.main(["--checkpoint", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert "is a folder" in err and "generator.pt" in err and "does not exist" not in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--working-size", "4"], "--working-size must be a whole number of pixels >= 8, got 4"),
        (["--working-size", "-256"], "--working-size must be a whole number of pixels >= 8, got -256"),
        (["--crop-margin", "-1"], "--crop-margin must be a whole number of pixels >= 0, got -1"),
    ],
)
def test_page_defaults_are_checked_by_the_api_before_any_work(extra, message, tmp_path, capsys):
    """The API's checks and messages, under the command line's flags; the checkpoint is not even looked at."""
    with pytest.raises(SystemExit) as info:
        app.main(["--checkpoint", str(tmp_path / "missing.pt"), *extra])
    assert info.value.code == 2
    first, *rest = capsys.readouterr().err.splitlines()
    assert first == f"error: {message}" and rest == []  # one line: the app is no Hydra program (issue case 20)


def test_a_device_that_is_not_there_is_one_line(tmp_path, monkeypatch, capsys):
    """Issue case 14: --device mps without MPS ended in a traceback; it is one line, before the model is loaded."""
    import torch

    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    with pytest.raises(SystemExit) as info:
        app.main(["--checkpoint", str(tmp_path / "missing.pt"), "--device", "mps"])
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: device 'mps' requested but MPS (Apple silicon) is not available here; use cpu or auto"
    ]


def test_cli_strategy_options():
    args = app.build_parser().parse_args(["--strategy", "crop", "--crop-margin", "64"])
    assert (args.strategy, args.crop_margin) == ("crop", 64)
    assert app.build_parser().parse_args([]).strategy == "auto"
    assert app.build_parser().parse_args([]).working_size == 0  # full resolution


def test_the_app_offers_the_registry_kinds_for_photos(generator):
    offered = app.generated_masks()
    assert tuple(offered.labels) == photo_mask_kinds()
    assert offered.labels == {kind: cls.label for kind, cls in mask_kinds(for_photos=True).items()}
    demo = app.build_app(generator, devices=["cpu"])  # the command's page: with the registry's generated holes
    (radio,) = [block for block in demo.blocks.values() if getattr(block, "elem_id", None) == "mask-kind"]
    assert [value for _, value in radio.choices] == ["none", *offered.labels.values()]
    assert list(offered.labels.values())[:3] == ["centre box", "random box", "free-form"]
