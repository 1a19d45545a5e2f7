"""``python -m dmfn_lightning.train`` refusals, on a tiny ``+experiment=demo +debug=fast`` run: symlinked folders,
mask folders without holes, unsafe VGG19 weights, images smaller than the crop. One line each, before any harm."""

from __future__ import annotations

import errno
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dmfn_lightning.core.errors import DataError
from dmfn_lightning.train import compose_config, setup_datamodule, train
from tests.cli import run_module

TINY = ["+experiment=demo", "+debug=fast"]


class _Payload:
    """Unpickling it would create ``marker``: proof that a file was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _folder(root: Path, train_size: int = 72, val_size: int = 72) -> Path:
    rng = np.random.default_rng(0)
    for split, count, size in (("train", 4, train_size), ("val", 2, val_size)):
        (root / split).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / split / f"{i}.png")
    return root


def _folder_config(data: Path, run: Path, *extra: str):
    return compose_config([*TINY, "data=folder", f"data.root={data}", "trainer.max_steps=1", *extra], run)


def test_a_symlink_loop_in_the_training_folder_is_skipped_with_a_warning(tmp_path):
    # `ln -s .. train/loop`: 244 files listed, 80 of them validation images; training ran without a word
    data = _folder(tmp_path / "data")
    os.symlink("..", data / "train" / "loop")
    with pytest.warns(UserWarning, match=r"skipped 1 symlinked folder\(s\) that loop back"):
        datamodule = setup_datamodule(_folder_config(data, tmp_path / "run"))
    assert datamodule.sizes["train"]["files"] == 4


def test_a_link_from_the_training_folder_into_the_validation_folder_is_refused(tmp_path):
    data = _folder(tmp_path / "data")
    os.symlink(data / "val", data / "train" / "more")
    with pytest.raises(DataError, match=r"data.train and data.val share 2 image file\(s\)"):
        train(_folder_config(data, tmp_path / "run"))


def test_a_mask_folder_without_holes_is_refused_before_training(tmp_path):
    # mask=irregular_files with all-black masks trained with g_reconstruction=0.0 and d_real == d_fake
    masks = tmp_path / "black"
    masks.mkdir()
    for i in range(3):
        Image.fromarray(np.zeros((64, 64), np.uint8)).save(masks / f"{i:05d}.png")
    cfg = compose_config([*TINY, "mask=irregular_files", f"mask.root={masks}"], tmp_path / "run")
    with pytest.raises(DataError) as err:
        train(cfg)
    assert f"{masks}: none of the 3 mask images has a hole" in str(err.value) and "threshold=0.5" in str(err.value)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_training_images_smaller_than_the_crop_are_counted_in_the_error(tmp_path):
    # the final error said "every image failed to decode" although every image decoded
    data = _folder(tmp_path / "data", train_size=40)
    with warnings.catch_warnings(), pytest.raises(DataError) as err:
        warnings.simplefilter("ignore")
        train(_folder_config(data, tmp_path / "run"))
    message = str(err.value)
    assert "\n" not in message and "failed to decode" not in message
    assert "none of the 4 images is usable: 4 smaller than the 64x64 crop of data.image_size=64" in message
    assert "a smaller data.image_size, or data.allow_upscale=true" in message


def test_an_unsafe_vgg_weights_file_is_one_error_line(tmp_path):
    # a Hydra "Error executing job" dump quoting torch's "Re-running torch.load with weights_only set to False"
    unsafe = tmp_path / "vgg19.pth"
    torch.save({"features.0.weight": _Payload(tmp_path / "executed")}, unsafe)
    proc = run_module("train", [*TINY, f"model.vgg.weights={unsafe}", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Error executing job" not in proc.stderr, proc.stderr[-3000:]
    assert "weights_only set to False" not in proc.stderr and "Re-running" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and f"VGG19 weights file {unsafe} is unsafe" in errors[0], proc.stderr[-3000:]
    assert "model.vgg.weights=random" in errors[0]
    assert not (tmp_path / "executed").exists()


def test_a_full_disk_while_writing_any_other_file_is_one_error_line(tmp_path, monkeypatch, capsys):
    from dmfn_lightning import train as train_mod

    def results_on_a_full_disk(cfg):
        try:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "results.json"))
        except OSError as exc:
            raise RuntimeError("a library's own wording") from exc

    monkeypatch.setattr(train_mod, "train", results_on_a_full_disk)
    with pytest.raises(SystemExit) as exited:
        train_mod._main(compose_config(TINY, tmp_path))
    assert exited.value.code == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert errors == [
        f"error: no space left writing {tmp_path / 'results.json'}; free space or choose another hydra.run.dir"
    ]
