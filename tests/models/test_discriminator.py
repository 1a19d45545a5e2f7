"""models.discriminator: the global-local discriminator's parameter count, feature shapes, spectral norm, size
check, and the local crop."""

from __future__ import annotations

import pytest
import torch

from dmfn_lightning.models import GlobalLocalDiscriminator, crop_local
from tests.models.model_fakes import n_params


def test_discriminator_parameter_count():
    assert n_params(GlobalLocalDiscriminator(256)) == 36_673_025


@pytest.mark.parametrize("size", [64, 128, 256])
def test_discriminator_shapes(size):
    d = GlobalLocalDiscriminator(size)
    with torch.no_grad():
        logit, feats = d(torch.randn(2, 3, size, size), torch.randn(2, 3, size // 2, size // 2))
    assert logit.shape == (2, 1)
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512, 512]
    assert [f.shape[-1] for f in feats] == [size // 4, size // 8, size // 16, size // 32, size // 64]


def test_discriminator_spectral_norm_and_bad_size():
    d = GlobalLocalDiscriminator(64, spectral_norm=True)
    assert any("parametrizations" in name for name, _ in d.named_parameters())
    with pytest.raises(ValueError, match="divisible by 64"):
        GlobalLocalDiscriminator(96)


def test_crop_local_is_one_gather_matching_slices():
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    bbox = torch.tensor([[0, 4, 4, 4], [3, 1, 4, 4]])
    crops = crop_local(images, bbox)
    assert crops.shape == (2, 3, 4, 4)
    assert torch.equal(crops[0], images[0, :, 0:4, 4:8])
    assert torch.equal(crops[1], images[1, :, 3:7, 1:5])
