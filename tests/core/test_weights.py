"""core.weights: pretrained backbone weights found in torchvision's cache or an explicit file, never downloaded
offline and never silently random (the error names the file, where it goes and the override); weights files read
without unpickling code."""

from __future__ import annotations

import pytest
import torch

from dmfn_lightning.core.errors import CheckpointError, WeightsUnavailableError
from dmfn_lightning.core.weights import load_weights, resolve_pretrained, torch_hub_checkpoint_dir, warn_random

URL = "https://download.example.invalid/models/backbone-0123abcd.pth"


def test_the_cache_is_torch_home_hub_checkpoints(empty_torch_home):
    assert torch_hub_checkpoint_dir() == empty_torch_home / "hub" / "checkpoints"


def test_an_explicit_file_is_used_as_it_is_or_named_when_missing(tmp_path):
    weights = tmp_path / "mine.pth"
    torch.save({"w": torch.zeros(1)}, weights)
    assert resolve_pretrained("Backbone", URL, "model.x.weights", str(weights)) == weights
    with pytest.raises(WeightsUnavailableError) as info:
        resolve_pretrained("Backbone", URL, "model.x.weights", str(tmp_path / "nope.pth"))
    message = str(info.value)
    assert f"Backbone weights file {str(tmp_path / 'nope.pth')!r} does not exist" in message
    assert "model.x.weights=random" in message


def test_imagenet_weights_come_from_the_cache_or_stop_naming_the_file(empty_torch_home, monkeypatch):
    monkeypatch.setenv("DMFN_OFFLINE", "1")
    target = empty_torch_home / "hub" / "checkpoints" / "backbone-0123abcd.pth"
    with pytest.raises(WeightsUnavailableError) as info:
        resolve_pretrained("Backbone", URL, "model.x.weights")
    message = str(info.value)
    assert f"expected the file {target}" in message and URL in message and "(DMFN_OFFLINE is set)" in message
    assert "model.x.weights=random" in message and "model.x.weights=/path/to/backbone-0123abcd.pth" in message
    assert not target.exists()  # nothing downloaded, nothing created
    target.parent.mkdir(parents=True)
    torch.save({"w": torch.ones(2)}, target)
    assert resolve_pretrained("Backbone", URL, "model.x.weights") == target


def test_random_weights_are_announced_loudly():
    with pytest.warns(UserWarning, match=r"^Backbone uses RANDOM weights: .*not for reproducing results\.$"):
        warn_random("Backbone")


class _RunsCode:
    def __reduce__(self):
        return (print, ("unpickled",))


def test_weights_files_are_read_without_unpickling_code(tmp_path, capsys):
    good = tmp_path / "good.pth"
    torch.save({"features.0.weight": torch.arange(3.0)}, good)
    assert torch.equal(load_weights(good, "Backbone", "model.x.weights")["features.0.weight"], torch.arange(3.0))
    torch.save({"features.0.weight": _RunsCode()}, tmp_path / "evil.pth")
    (tmp_path / "broken.pth").write_bytes(good.read_bytes()[:100])
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    for name in ("evil.pth", "broken.pth", "list.pth"):
        with pytest.raises(CheckpointError) as info:
            load_weights(tmp_path / name, "Backbone", "model.x.weights", URL)
        message = str(info.value)
        assert str(tmp_path / name) in message and "model.x.weights=random" in message and "\n" not in message
    assert "unpickled" not in capsys.readouterr().out  # the pickled call never ran
