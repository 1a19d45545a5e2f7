"""What a generator file records about its training (dmfn_lightning.models.generator_files, issue case 8): the
training image size, mask and data, written into generator.pt, read back from it and from a Lightning checkpoint's
run config, kept by a re-export, absent from older files (which load as before), and the warning for a generator
run at another size than it was trained at."""

from __future__ import annotations

import pytest
import torch

from dmfn_lightning.models import DMFNGenerator, export_generator, load_generator
from dmfn_lightning.models.generator_files import (
    TRAINING_KEYS,
    recorded_image_size,
    training_metadata,
    warn_if_other_size,
)

RUN_CONFIG = {
    "data": {"_target_": "dmfn_lightning.data.DMFNDataModule", "root": "/data/paris", "image_size": 128},
    "mask": {"_target_": "dmfn_lightning.masks.RandomBoxMask", "max_delta": 32},
    "model": {"generator": {"num_blocks": 1}},
}


def tiny() -> DMFNGenerator:
    torch.manual_seed(0)
    return DMFNGenerator(num_blocks=1, base_channels=8).eval()


class TrainingModule:
    """The parts of DMFNModule that export_generator reads: its evaluation generator and its run config."""

    def __init__(self, generator: DMFNGenerator, run_config: dict) -> None:
        self.eval_generator = generator
        self.run_config = run_config


def test_training_metadata_from_a_run_config():
    assert training_metadata(RUN_CONFIG) == {"image_size": 128, "data": "paris", "mask": "RandomBoxMask"}
    demo = {"data": {"_target_": "dmfn_lightning.data.demo.DemoDataModule", "image_size": 64}, "mask": "x"}
    assert training_metadata(demo) == {"image_size": 64, "data": "DemoDataModule"}
    assert training_metadata({"data": {"image_size": True}}) == {}  # a bool is no size
    assert training_metadata(None) == {} and training_metadata({}) == {}
    assert TRAINING_KEYS == ("image_size", "mask", "data")


def test_generator_pt_written_from_training_records_the_training_size(tmp_path):
    """Training writes generator.pt from the module: the run config's data.image_size (and mask, data) is kept
    beside the iteration; the file's own metadata wins for keys it gives."""
    generator = tiny()
    path = export_generator(
        TrainingModule(generator, RUN_CONFIG), tmp_path / "generator.pt", metadata={"iteration": 5, "vgg_weights": "x"}
    )
    saved = torch.load(path, weights_only=True)["metadata"]
    assert saved == {"image_size": 128, "data": "paris", "mask": "RandomBoxMask", "iteration": 5, "vgg_weights": "x"}
    loaded = load_generator(path)
    assert recorded_image_size(loaded) == 128
    for a, b in zip(generator.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    # the same from a generator and an explicit run config, and again from the loaded generator (a re-export)
    export_generator(generator, tmp_path / "b.pt", run_config={"data": {"image_size": 96}})
    assert recorded_image_size(load_generator(tmp_path / "b.pt")) == 96
    export_generator(loaded, tmp_path / "copy.pt", metadata={"exported_by": "test"})
    assert load_generator(tmp_path / "copy.pt").metadata["image_size"] == 128


@pytest.mark.parametrize("where", ["hyper_parameters", "dmfn"])
def test_a_lightning_checkpoint_gives_its_run_config(where, tmp_path):
    generator = tiny()
    state = {f"generator.{k}": v for k, v in generator.state_dict().items()}
    torch.save({"state_dict": state, "global_step": 12, where: {"config": RUN_CONFIG}}, tmp_path / "last.ckpt")
    loaded = load_generator(tmp_path / "last.ckpt")
    assert loaded.metadata == {"global_step": 12, "image_size": 128, "data": "paris", "mask": "RandomBoxMask"}
    assert recorded_image_size(loaded) == 128


def test_older_files_load_as_before_without_a_size(tmp_path):
    old = {
        "format": "dmfn_lightning.generator",
        "version": 1,
        "config": tiny().config,
        "metadata": {"iteration": 3, "vgg_weights": "imagenet"},  # all training used to record
        "state_dict": tiny().state_dict(),
    }
    torch.save(old, tmp_path / "old.pt")
    loaded = load_generator(tmp_path / "old.pt")
    assert loaded.metadata == {"iteration": 3, "vgg_weights": "imagenet"} and recorded_image_size(loaded) is None
    state = {f"generator.{k}": v for k, v in tiny().state_dict().items()}
    torch.save({"state_dict": state, "global_step": 2}, tmp_path / "old.ckpt")
    assert load_generator(tmp_path / "old.ckpt").metadata == {"global_step": 2}


def test_running_at_another_size_is_said_once_per_generator_and_size():
    generator = tiny()
    generator.metadata = {"image_size": 128}
    said: list[str] = []
    assert warn_if_other_size(generator, 128, warn=said.append) is None and said == []
    message = warn_if_other_size(generator, 256, warn=said.append)
    assert said == [message] and "trained on 128x128" in message and "256x256" in message
    assert warn_if_other_size(generator, 256, warn=said.append) == message and len(said) == 1  # once
    warn_if_other_size(generator, 64, 96, warn=said.append)
    assert len(said) == 2 and "96x64" in said[1]
    unknown = tiny()  # nothing recorded: nothing to compare
    assert warn_if_other_size(unknown, 256, warn=said.append) is None and len(said) == 2
    assert warn_if_other_size(generator, None, warn=said.append) is None
    other = tiny()
    other.metadata = {"image_size": 64}
    with pytest.warns(UserWarning, match="trained on 64x64 images but runs on 256x256"):
        warn_if_other_size(other, 256)


def test_export_command_keeps_the_training_size(tmp_path):
    """python -m dmfn_lightning.export from a Lightning checkpoint: the generator.pt written records the size too,
    so inpaint --strategy resize of the exported file uses it."""
    from dmfn_lightning.export import main

    generator = tiny()
    state = {f"generator.{k}": v for k, v in generator.state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": {"config": RUN_CONFIG}}, tmp_path / "last.ckpt")
    args = ["--checkpoint", str(tmp_path / "last.ckpt"), "--output", str(tmp_path / "out"), "--format", "generator"]
    assert main([*args, "--verify-sizes", "16x16"]) == 0
    assert recorded_image_size(load_generator(tmp_path / "out" / "generator.pt")) == 128
