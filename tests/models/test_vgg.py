"""models.vgg: VGG19 features (shapes, frozen), the pretrained-weight policy (cache, explicit file, loud random
fallback) and the two input normalisations."""

from __future__ import annotations

import pytest
import torch

from dmfn_lightning.core.errors import WeightsUnavailableError
from dmfn_lightning.models import VGG19Features


def test_vgg_feature_shapes_and_frozen():
    with pytest.warns(UserWarning, match="RANDOM"):
        vgg = VGG19Features("random")
    feats = vgg(torch.rand(1, 3, 64, 64) * 2 - 1)
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512, 512]
    assert [64 // f.shape[-1] for f in feats] == [1, 2, 4, 8, 16]
    assert all(not p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training


def test_vgg_imagenet_missing_names_file_and_override(empty_torch_home):
    with pytest.raises(WeightsUnavailableError) as err:
        VGG19Features("imagenet")
    message = str(err.value)
    expected = empty_torch_home / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    assert str(expected) in message
    assert "model.vgg.weights=random" in message


def test_vgg_fallback_is_loud(empty_torch_home):
    with pytest.warns(UserWarning, match="RANDOM"):
        vgg = VGG19Features("imagenet", fallback_to_random=True)
    assert vgg.weights_used == "random"


def test_vgg_loads_from_cache_and_path(empty_torch_home, tmp_path):
    import torchvision

    reference = torchvision.models.vgg19(weights=None)
    cache = empty_torch_home / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(reference.state_dict(), cache / "vgg19-dcbb9e9d.pth")
    vgg = VGG19Features("imagenet")
    assert vgg.weights_used.endswith("vgg19-dcbb9e9d.pth")
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    normalised = ((x + 1) / 2 - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]
    ).view(1, 3, 1, 1)
    torch.testing.assert_close(vgg(x)[3], reference.features[:21](normalised))
    torch.save(reference.features.state_dict(), tmp_path / "features.pth")
    assert VGG19Features(str(tmp_path / "features.pth")).weights_used == str(tmp_path / "features.pth")
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        VGG19Features(str(tmp_path / "nope.pth"))


def test_vgg_released_normalisation_is_the_imagenet_input_shifted_by_mean_over_two_std():
    with pytest.warns(UserWarning, match="RANDOM"):
        imagenet = VGG19Features("random")
        released = VGG19Features("random", normalization="released")
    released.load_state_dict(imagenet.state_dict())
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64) * 2 - 1
    imagenet, released = imagenet.double(), released.double()
    mean = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64).view(1, 3, 1, 1)
    # imagenet: ((x + 1) / 2 - mean) / std; released (the authors' code): (x - (mean - 1)) / (2 std)
    torch.testing.assert_close(imagenet.normalize(x), ((x + 1) / 2 - mean) / std)
    torch.testing.assert_close(released.normalize(x), (x - (mean - 1)) / (2 * std))
    shift = released.normalize(x) - imagenet.normalize(x)
    expected = torch.tensor([1.0589519650655022, 1.0178571428571428, 0.9022222222222221], dtype=torch.float64)
    torch.testing.assert_close(shift, expected.view(1, 3, 1, 1).expand_as(shift))  # mean / (2 std) per channel
    # so the released features of x are the correct features of x + mean (on the [-1, 1] scale)
    for a, b in zip(released(x), imagenet(x + mean)):
        torch.testing.assert_close(a, b)
    assert any(not torch.allclose(a, b) for a, b in zip(released(x), imagenet(x)))
    with pytest.raises(ValueError, match=r"model\.vgg\.normalization='caffe'; allowed: imagenet, released"):
        VGG19Features("random", normalization="caffe")
