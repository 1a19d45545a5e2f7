"""The networks and pretrained-weight policy: parameter counts, shapes, dilations, weight policy, converter."""

import re

import pytest
import torch
from torch import nn

from dmfn_lightning.core.errors import WeightsUnavailableError
from dmfn_lightning.models import (
    BLOCK_SPECS,
    DMFB,
    CheckpointError,
    DMFNGenerator,
    GlobalLocalDiscriminator,
    VGG19Features,
    build_block,
    convert_released_state_dict,
    crop_local,
    export_generator,
    load_generator,
)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    "name,expected",
    [
        ("dmfb", 471_808),
        ("no_ki", 361_024),
        ("no_combination", 361_024),
        ("rate2", 471_808),
        ("rate8", 471_808),
        ("released", 885_312),
    ],
)
def test_block_parameter_counts(name, expected):
    assert n_params(build_block(name)) == expected


def test_unknown_block_lists_valid_names():
    with pytest.raises(ValueError) as err:
        build_block("dmfb2")
    message = str(err.value)
    assert "dmfb2" in message
    for name in BLOCK_SPECS:
        assert name in message


@pytest.mark.parametrize(
    "name,dilations",
    [
        ("dmfb", (1, 2, 4, 8)),
        ("no_ki", (1, 2, 4, 8)),
        ("no_combination", (1, 2, 4, 8)),
        ("rate2", (2, 2, 2, 2)),
        ("rate8", (8, 8, 8, 8)),
        ("released", (1, 2, 4, 8)),
    ],
)
def test_block_dilations_and_structure(name, dilations):
    block = build_block(name)
    assert tuple(conv.dilation[0] for conv in block.branches) == dilations
    assert tuple(conv.padding[0] for conv in block.branches) == dilations  # "same" output size
    assert all(conv.kernel_size == (3, 3) for conv in block.branches)
    n_k = 0 if block.combine is None else len(block.combine)
    assert n_k == (3 if name in ("dmfb", "rate2", "rate8") else 0)
    assert block.fusion.kernel_size == ((3, 3) if name == "released" else (1, 1))
    x = torch.randn(1, 256, 12, 12)
    assert block(x).shape == x.shape


def _fusion_input(block: DMFB, x: torch.Tensor) -> torch.Tensor:
    captured = []
    handle = block.norm.register_forward_pre_hook(lambda m, inp: captured.append(inp[0].clone()))
    block(x)
    handle.remove()
    return captured[0]  # the first IN call normalises the concatenation


@pytest.mark.parametrize("combination", ["hierarchical", "cumulative", "none"])
def test_combination_rules_follow_fig3(combination):
    """The concatenation fed to the fusion follows Fig. 3: y_1 = x_1, y_i = K_i(x_i + y_(i-1)) (hierarchical),
    y_i = x_i + y_(i-1) (cumulative, 'w/o K_i'), or the raw branches ('w/o combination')."""
    torch.manual_seed(0)
    x = torch.randn(1, 8, 6, 6)
    block = DMFB(8, combination=combination)
    with torch.no_grad():
        got = _fusion_input(block, x)
        reduced = block.c1(x)
        xs = [b(reduced) for b in block.branches]
        if combination == "none":
            ys = xs
        else:
            ys = [xs[0]]
            for i in range(1, 4):
                s = xs[i] + ys[-1]
                ys.append(block.combine[i - 1](s) if combination == "hierarchical" else s)
    torch.testing.assert_close(got, torch.cat(ys, dim=1))


@pytest.mark.parametrize("block,expected", [("dmfb", 5_729_411), ("released", 9_037_443)])
def test_generator_parameter_counts(block, expected):
    assert n_params(DMFNGenerator(block=block)) == expected


def test_generator_without_blocks_count():
    assert n_params(DMFNGenerator(num_blocks=0)) == 1_954_947


@pytest.mark.parametrize("size", [(64, 64), (128, 96), (256, 256)])
def test_generator_output_shape(size):
    g = DMFNGenerator(num_blocks=1)
    x = torch.randn(1, 4, *size)
    with torch.no_grad():
        y = g(x)
    assert y.shape == (1, 3, *size)
    assert y.abs().max() <= 1.0  # tanh output


def test_generator_rejects_bad_input():
    g = DMFNGenerator(num_blocks=1)
    with pytest.raises(ValueError, match="divisible by 4"):
        g(torch.randn(1, 4, 30, 32))
    with pytest.raises(ValueError, match=r"\[N, 4, H, W\]"):
        g(torch.randn(1, 3, 32, 32))


def test_the_inference_engine_keeps_known_pixels_at_any_size():
    from dmfn_lightning.models.inference import run_generator

    g = DMFNGenerator(num_blocks=1)
    image = torch.rand(2, 3, 30, 33) * 2 - 1  # neither side a multiple of 4: padded, run, cropped back
    mask = torch.zeros(2, 1, 30, 33)
    mask[:, :, 8:16, 8:20] = 1
    with torch.no_grad():
        out = run_generator(g, image, mask)
    known = mask.expand_as(image) == 0
    assert out.shape == image.shape
    assert torch.equal(out[known], image[known])
    assert not torch.equal(out[~known], image[~known])


def test_released_initialisation_statistics():
    torch.manual_seed(0)
    g = DMFNGenerator()
    conv_w = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, nn.Conv2d)])
    assert abs(conv_w.std().item() - 0.02) < 1e-3
    assert all(m.bias.abs().max() == 0 for m in g.modules() if isinstance(m, nn.Conv2d))
    d = GlobalLocalDiscriminator(64)
    bn_w = torch.cat([m.weight for m in d.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(bn_w.mean().item() - 1.0) < 5e-3


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


def _released_state_dict(num_blocks: int = 2) -> dict:
    """A state dict with the key names of the authors' release (models/architecture.py, models/block.py)."""
    torch.manual_seed(1)
    state = {}

    def conv(key, cin, cout, k, transpose=False):
        shape = (cin, cout, k, k) if transpose else (cout, cin, k, k)
        state[f"{key}.weight"] = torch.randn(shape) * 0.02
        state[f"{key}.bias"] = torch.randn(cout) * 0.02

    conv("encoder.0.conv", 4, 64, 5)
    conv("encoder.1.conv", 64, 128, 3)
    conv("encoder.2.conv", 128, 128, 3)
    conv("encoder.3.conv", 128, 256, 3)
    for n in range(num_blocks):
        conv(f"blocks.{n}.c1", 256, 64, 3)
        for k in range(1, 5):
            conv(f"blocks.{n}.d{k}", 64, 64, 3)
        conv(f"blocks.{n}.c2", 256, 256, 3)
    conv("decoder.0.conv", 256, 256, 3)
    conv("decoder.1.deconv", 256, 128, 4, transpose=True)
    conv("decoder.1.conv.conv", 128, 128, 3)
    conv("decoder.2.deconv", 128, 64, 4, transpose=True)
    conv("decoder.2.conv.conv", 64, 64, 3)
    conv("decoder.3.conv", 64, 3, 3)
    return {f"module.{k}": v for k, v in state.items()}  # saved from nn.DataParallel


def test_converter_maps_released_keys(tmp_path):
    released = _released_state_dict(num_blocks=8)
    converted = convert_released_state_dict(released)
    g = DMFNGenerator(block="released")
    assert set(converted) == set(g.state_dict())
    torch.testing.assert_close(converted["blocks.3.branches.2.weight"], released["module.blocks.3.d3.weight"])
    torch.testing.assert_close(converted["blocks.3.fusion.bias"], released["module.blocks.3.c2.bias"])
    torch.testing.assert_close(converted["blocks.0.c1.conv.weight"], released["module.blocks.0.c1.weight"])

    torch.save(released, tmp_path / "released_G.pth")
    loaded = load_generator(tmp_path / "released_G.pth")
    assert loaded.config == {"block": "released", "num_blocks": 8, "base_channels": 64}
    torch.testing.assert_close(loaded.state_dict()["blocks.7.branches.3.weight"], released["module.blocks.7.d4.weight"])


def test_released_block_forward_matches_released_formula():
    """Our released variant computes x + IN(c2(ReLU(IN(cat(d1, d1+d2, d1+d2+d3, d1+..+d4))))) with c1 + IN + ReLU."""
    state = {k.removeprefix("module."): v for k, v in _released_state_dict(1).items()}
    block = build_block("released")
    block.load_state_dict(
        {
            k.removeprefix("blocks.0."): v
            for k, v in convert_released_state_dict(state).items()
            if k.startswith("blocks.0.")
        }
    )
    x = torch.randn(1, 256, 8, 8)
    norm = nn.InstanceNorm2d(256)

    def conv(t, key, d=1):
        return nn.functional.conv2d(
            t, state[f"blocks.0.{key}.weight"], state[f"blocks.0.{key}.bias"], padding=d, dilation=d
        )

    out1 = torch.relu(norm(conv(x, "c1")))
    d = [conv(out1, f"d{k}", r) for k, r in zip(range(1, 5), (1, 2, 4, 8))]
    combine = torch.cat([d[0], d[0] + d[1], d[0] + d[1] + d[2], d[0] + d[1] + d[2] + d[3]], 1)
    expected = x + norm(conv(torch.relu(norm(combine)), "c2"))
    torch.testing.assert_close(block(x), expected, atol=1e-5, rtol=1e-4)


def test_export_and_load_roundtrip(tmp_path):
    g = DMFNGenerator(block="rate2", num_blocks=2, base_channels=16)
    path = export_generator(g, tmp_path / "g.pt", metadata={"iteration": 5})
    loaded = load_generator(path)
    assert loaded.config == g.config
    x = torch.randn(1, 4, 32, 32)
    torch.testing.assert_close(loaded(x), g.eval()(x))


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_generator(tmp_path / "missing.pt")
    g = DMFNGenerator(num_blocks=2, base_channels=16)
    path = export_generator(g, tmp_path / "g.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_generator(truncated)
    # a file from another block variant names the mismatching keys
    payload = torch.load(path, weights_only=True)
    payload["config"]["block"] = "dmfb" if g.config["block"] == "released" else "released"
    torch.save(payload, tmp_path / "other.pt")
    with pytest.raises(CheckpointError) as err:
        load_generator(tmp_path / "other.pt")
    assert re.search(r"(missing|unexpected) keys: blocks\.0\.", str(err.value))
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        load_generator(tmp_path / "photo.png")
    torch.save({"foo": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a DMFN generator"):
        load_generator(tmp_path / "foreign.pt")


def _checkerboard(y: torch.Tensor) -> float:
    """Mean deviation of the four 2x2 sub-pixel phases from their mean: 0 for an output without a 2x2 pattern."""
    phases = [y[..., i::2, j::2] for i in range(2) for j in range(2)]
    mean = sum(phases) / 4
    return float(sum((p - mean).abs().mean() for p in phases) / 4)


def test_bilinear_upsample_init_starts_without_a_checkerboard(tmp_path):
    x = torch.zeros(2, 4, 64, 64)
    x[:, :3] = torch.linspace(-0.5, 0.5, 64)  # a smooth ramp around a square hole
    x[:, 3, 16:48, 16:48] = 1
    x[:, :3] *= 1 - x[:, 3:4]
    energies = {}
    for init in ("pytorch", "bilinear"):
        torch.manual_seed(0)
        g = DMFNGenerator(num_blocks=1, base_channels=16, upsample_init=init).eval()
        with torch.no_grad():
            energies[init] = _checkerboard(g(x)[..., 16:48, 16:48])
    assert energies["bilinear"] < 0.5 * energies["pytorch"], energies
    # The choice travels with the file; the default is not written, so the released layout is unchanged.
    g = DMFNGenerator(num_blocks=1, base_channels=16, upsample_init="bilinear")
    assert load_generator(export_generator(g, tmp_path / "g.pt")).config["upsample_init"] == "bilinear"
    assert "upsample_init" not in DMFNGenerator(num_blocks=1).config
    with pytest.raises(ValueError, match="upsample_init must be one of pytorch, bilinear, got 'icnr'"):
        DMFNGenerator(num_blocks=1, upsample_init="icnr")
