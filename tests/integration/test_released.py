"""The authors' release, switch by switch: their discriminator weights, starting runs from released
weights, the released experiment configs, and one training iteration of the released profile checked against an
independent straight-line implementation of the released code's math.

The straight-line reference (``_ref_*`` below) is written from the authors' training code (models/architecture.py,
models/block.py, models/inpainting_model.py, models/loss.py, utils.py) with plain torch ops on dicts of tensors
named as in their checkpoints; it uses nothing from dmfn_lightning. Our side is the library as a user runs it:
``+experiment=released_paris`` composed by Hydra, the module built by the training entry point, weights loaded with
``init_from_release``, one iteration under a Lightning ``Trainer``.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from dmfn_lightning.core.errors import CheckpointError
from dmfn_lightning.models import GlobalLocalDiscriminator
from dmfn_lightning.models.generator_files import (
    convert_released_discriminator_state_dict,
    convert_released_state_dict,
    discriminator_state_from_file,
    init_from_release,
)

SIZE = 64  # image side: the smallest the six stride-2 convs of the global discriminator allow
NF = 64  # the release's width (nf), so its hard-coded layer weights 1000 / C^2 apply unchanged
NUM_BLOCKS = 2
VGG_CONVS = {0: (3, 64), 2: (64, 64), 5: (64, 128), 7: (128, 128), 10: (128, 256), 12: (256, 256), 14: (256, 256)}
VGG_CONVS |= {16: (256, 256), 19: (256, 512), 21: (512, 512), 23: (512, 512), 25: (512, 512), 28: (512, 512)}


# ------------------------------------------------------------------------------------ released state dicts


def released_generator_state(num_blocks: int = NUM_BLOCKS, nf: int = NF, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under the key names and shapes of the authors' ``InpaintingGenerator``."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def conv(key: str, cin: int, cout: int, k: int, transpose: bool = False) -> None:
        shape = (cin, cout, k, k) if transpose else (cout, cin, k, k)
        state[f"{key}.weight"] = torch.randn(shape, generator=gen) * (2 / (cin * k * k)) ** 0.5
        state[f"{key}.bias"] = torch.randn(cout, generator=gen) * 0.05

    conv("encoder.0.conv", 4, nf, 5)
    conv("encoder.1.conv", nf, 2 * nf, 3)
    conv("encoder.2.conv", 2 * nf, 2 * nf, 3)
    conv("encoder.3.conv", 2 * nf, 4 * nf, 3)
    for n in range(num_blocks):
        conv(f"blocks.{n}.c1", 4 * nf, nf, 3)
        for k in range(1, 5):
            conv(f"blocks.{n}.d{k}", nf, nf, 3)
        conv(f"blocks.{n}.c2", 4 * nf, 4 * nf, 3)
    conv("decoder.0.conv", 4 * nf, 4 * nf, 3)
    conv("decoder.1.deconv", 4 * nf, 2 * nf, 4, transpose=True)
    conv("decoder.1.conv.conv", 2 * nf, 2 * nf, 3)
    conv("decoder.2.deconv", 2 * nf, nf, 4, transpose=True)
    conv("decoder.2.conv.conv", nf, nf, 3)
    conv("decoder.3.conv", nf, 3, 3)
    # float32 values held as float64: loading into the float32 networks and converting them to float64 is exact
    return {k: v.double() for k, v in state.items()}


def released_discriminator_state(size: int = SIZE, nf: int = NF, seed: int = 1) -> dict[str, torch.Tensor]:
    """Random weights (and BatchNorm statistics) under the key names and shapes of the authors' ``Discriminator``."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def block(key: str, cin: int, cout: int) -> None:
        state[f"{key}.conv.weight"] = torch.randn(cout, cin, 5, 5, generator=gen) * 0.05
        state[f"{key}.conv.bias"] = torch.randn(cout, generator=gen) * 0.05
        state[f"{key}.norm.weight"] = 1 + torch.randn(cout, generator=gen) * 0.1
        state[f"{key}.norm.bias"] = torch.randn(cout, generator=gen) * 0.1
        state[f"{key}.norm.running_mean"] = torch.randn(cout, generator=gen) * 0.1
        state[f"{key}.norm.running_var"] = 0.5 + torch.rand(cout, generator=gen)
        state[f"{key}.norm.num_batches_tracked"] = torch.tensor(7)

    def linear(key: str, cin: int, cout: int) -> None:
        state[f"{key}.weight"] = torch.randn(cout, cin, generator=gen) * cin**-0.5
        state[f"{key}.bias"] = torch.randn(cout, generator=gen) * 0.1

    widths = [3, nf, 2 * nf, 4 * nf, 8 * nf, 8 * nf, 8 * nf]
    for i in range(6):
        block(f"global_model.{i}", widths[i], widths[i + 1])
    for k in range(1, 6):
        block(f"local_fea{k}", widths[k - 1], widths[k])
    linear("global_classifier", 8 * nf * (size // 64) ** 2, 512)
    linear("local_classifier", 8 * nf * (size // 64) ** 2, 512)
    linear("classifier.1", 1024, 1)
    return {k: v.double() if v.is_floating_point() else v for k, v in state.items()}


def vgg_state(seed: int = 2) -> dict[str, torch.Tensor]:
    """Random VGG19 ``features.*`` weights (torchvision's names), scaled so activations stay O(1)."""
    gen = torch.Generator().manual_seed(seed)
    return {
        key: value
        for i, (cin, cout) in VGG_CONVS.items()
        for key, value in (
            (f"features.{i}.weight", torch.randn(cout, cin, 3, 3, generator=gen) * (2 / (9 * cin)) ** 0.5),
            (f"features.{i}.bias", torch.randn(cout, generator=gen) * 0.01),
        )
    }


# ------------------------------------------------------------------ straight-line reference (released code)


def _ref_in(x):
    return F.instance_norm(x, eps=1e-5)  # nn.InstanceNorm2d(affine=False)


def _ref_conv_block(x, params, key, pad, stride=1, norm=True, act="relu"):
    # block.conv_block: ZeroPad2d(padding), Conv2d(padding=0), optional IN, activation
    x = F.conv2d(F.pad(x, (pad, pad, pad, pad)), params[f"{key}.weight"], params[f"{key}.bias"], stride=stride)
    if norm:
        x = _ref_in(x)
    return torch.tanh(x) if act == "tanh" else F.relu(x)


def ref_generator(params, x, num_blocks=NUM_BLOCKS):
    h = _ref_conv_block(x, params, "encoder.0.conv", 2, norm=False)
    h = _ref_conv_block(h, params, "encoder.1.conv", 1, stride=2)
    h = _ref_conv_block(h, params, "encoder.2.conv", 1)
    h = _ref_conv_block(h, params, "encoder.3.conv", 1, stride=2)
    for n in range(num_blocks):  # block.ResBlock_new
        b = f"blocks.{n}"

        def conv(t, k, d=1):
            return F.conv2d(t, params[f"{b}.{k}.weight"], params[f"{b}.{k}.bias"], padding=d, dilation=d)  # noqa: B023

        output1 = F.relu(_ref_in(conv(h, "c1")))
        d1, d2, d3, d4 = conv(output1, "d1", 1), conv(output1, "d2", 2), conv(output1, "d3", 4), conv(output1, "d4", 8)
        add1 = d1 + d2
        add2 = add1 + d3
        add3 = add2 + d4
        output2 = conv(F.relu(_ref_in(torch.cat([d1, add1, add2, add3], 1))), "c2")
        h = h + _ref_in(output2)
    h = _ref_conv_block(h, params, "decoder.0.conv", 1)
    for k in (1, 2):  # block.upconv_block
        h = F.conv_transpose2d(
            h, params[f"decoder.{k}.deconv.weight"], params[f"decoder.{k}.deconv.bias"], stride=2, padding=1
        )
        h = F.relu(_ref_in(h))
        h = _ref_conv_block(h, params, f"decoder.{k}.conv.conv", 1)
    return _ref_conv_block(h, params, "decoder.3.conv", 1, norm=False, act="tanh")


def ref_discriminator(params, x_local, x_global, training=True):
    """architecture.Discriminator.forward(x_local, x_global): note the [local, global] concatenation."""

    def conv_block(t, key):
        t = F.conv2d(F.pad(t, (2, 2, 2, 2)), params[f"{key}.conv.weight"], params[f"{key}.conv.bias"], stride=2)
        mean, var = params[f"{key}.norm.running_mean"], params[f"{key}.norm.running_var"]
        t = F.batch_norm(t, mean, var, params[f"{key}.norm.weight"], params[f"{key}.norm.bias"], training, 0.1, 1e-5)
        return F.leaky_relu(t, 0.2)

    local_feas = []
    h = x_local
    for k in range(1, 6):
        h = conv_block(h, f"local_fea{k}")
        local_feas.append(h)
    out_local = F.linear(h.reshape(h.shape[0], -1), params["local_classifier.weight"], params["local_classifier.bias"])
    g = x_global
    for i in range(6):
        g = conv_block(g, f"global_model.{i}")
    out_global = F.linear(
        g.reshape(g.shape[0], -1), params["global_classifier.weight"], params["global_classifier.bias"]
    )
    out = torch.cat([out_local, out_global], dim=1)
    out = F.linear(F.leaky_relu(out, 0.2), params["classifier.1.weight"], params["classifier.1.bias"])
    return out, local_feas


def ref_vgg(weights, x, released_normalization=True):
    """architecture.VGGFeatureExtractor: relu1_1 .. relu5_1 of VGG19 on (x - (mean - 1)) / (2 std)."""
    # float32 constants, as the released buffers (torch.Tensor([...])), even when x is float64
    mean = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float32).to(x.dtype).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float32).to(x.dtype).view(1, 3, 1, 1)
    h = (x - (mean - 1)) / (std * 2) if released_normalization else ((x + 1) / 2 - mean) / std

    def conv(t, i):
        return F.relu(F.conv2d(t, weights[f"features.{i}.weight"], weights[f"features.{i}.bias"], padding=1))

    feats = []
    h = conv(h, 0)
    feats.append(h)  # relu1_1
    h = F.max_pool2d(conv(h, 2), 2, 2)
    h = conv(h, 5)
    feats.append(h)  # relu2_1
    h = F.max_pool2d(conv(h, 7), 2, 2)
    h = conv(h, 10)
    feats.append(h)  # relu3_1
    for i in (12, 14, 16):
        h = conv(h, i)
    h = conv(F.max_pool2d(h, 2, 2), 19)
    feats.append(h)  # relu4_1
    for i in (21, 23, 25):
        h = conv(h, i)
    h = conv(F.max_pool2d(h, 2, 2), 28)
    feats.append(h)  # relu5_1
    return feats


def ref_centers(fea, epsilon=1e-7):
    """utils.batch_get_centers, coordinate maps built as in utils.get_coordinate_tensors(H, W)."""
    B, C, H, W = fea.shape
    fea_map = fea + epsilon
    pdf = fea_map / torch.sum(fea_map, dim=(2, 3), keepdim=True)
    x_map = torch.arange(H, dtype=fea.dtype).repeat(W, 1) / H * 2 - 1.0  # np.tile(np.arange(x_max), (y_max, 1))
    y_map = torch.arange(W, dtype=fea.dtype).repeat(H, 1) / W * 2 - 1.0
    x_center = torch.sum(pdf * x_map.repeat(B, C, 1, 1), dim=(2, 3), keepdim=True)
    y_center = torch.sum(pdf * y_map.repeat(B, C, 1, 1), dim=(2, 3), keepdim=True)
    return torch.cat((x_center, y_center), dim=3)


def ref_crop(t, bbox):
    """InpaintingModel.crop_patch: bbox = (top, left, height, width) per sample."""
    return torch.stack([t[i, :, b[0] : b[0] + b[2], b[1] : b[1] + b[3]] for i, b in enumerate(bbox.tolist())])


def _bce(x, label):
    return F.binary_cross_entropy_with_logits(x, torch.full_like(x, label))


def ref_generator_loss(gen_params, dis_params, vgg_weights, image, mask, bbox, released_normalization=True):
    """InpaintingModel.optimize_parameters, G half: returns (l_g_total, output)."""
    var_input = image * (1 - mask)
    output = mask * ref_generator(gen_params, torch.cat([var_input, mask], dim=1)) + (1 - mask) * var_input
    l_pix = torch.mean(torch.abs(output - image))  # nn.L1Loss, pixel_weight 1
    target_feas = [f.detach() for f in ref_vgg(vgg_weights, image, released_normalization)]
    output_feas = ref_vgg(vgg_weights, output, released_normalization)
    error_map = torch.mean(torch.pow(torch.abs(output.detach() - image), 2.0), dim=1, keepdim=True)
    error_map_max = torch.max(torch.max(error_map, dim=3, keepdim=True)[0], dim=2, keepdim=True)[0]
    error_map_normalized = error_map / error_map_max
    weights = [1e3 / n**2 for n in [64, 128, 256, 512, 512]]

    def masked_l1(a, b, m):  # loss.MaskedL1Loss
        m = m.expand(-1, a.size(1), -1, -1)
        return torch.mean(torch.abs(a * m - b * m))

    vgg_losses = [weights[0] * masked_l1(output_feas[0], target_feas[0], 1.0 + error_map_normalized)]
    down = F.avg_pool2d(error_map_normalized, kernel_size=2, stride=2)
    vgg_losses.append(weights[1] * masked_l1(output_feas[1], target_feas[1], 1.0 + down))
    for i in range(2, 5):
        vgg_losses.append(weights[i] * torch.mean(torch.abs(output_feas[i] - target_feas[i])))
    l_g_fea = 25 * sum(vgg_losses)  # feature_weight
    l_g_center = 1 * torch.mean((ref_centers(output_feas[3]) - ref_centers(target_feas[3])) ** 2)  # center_weight
    pred_g_fake, dis_feas_fake = ref_discriminator(dis_params, ref_crop(output, bbox), output)
    pred_g_real, dis_feas_real = ref_discriminator(dis_params, ref_crop(image, bbox), image)
    pred_g_real = pred_g_real.detach()
    l_g_gan = (
        0.003
        * (_bce(pred_g_real - torch.mean(pred_g_fake), 0.0) + _bce(pred_g_fake - torch.mean(pred_g_real), 1.0))
        / 2
    )
    l_g_dis_fea = 5 * sum(
        w * torch.mean(torch.abs(f - r.detach())) for w, f, r in zip(weights, dis_feas_fake, dis_feas_real)
    )
    return l_pix + l_g_fea + l_g_center + l_g_gan + l_g_dis_fea, output


def ref_discriminator_loss(dis_params, image, output, bbox):
    pred_d_real, _ = ref_discriminator(dis_params, ref_crop(image, bbox), image)
    pred_d_fake, _ = ref_discriminator(dis_params, ref_crop(output, bbox).detach(), output.detach())
    l_d_real = _bce(pred_d_real - torch.mean(pred_d_fake), 1.0)
    l_d_fake = _bce(pred_d_fake - torch.mean(pred_d_real), 0.0)
    return (l_d_fake + l_d_real) / 2


def ref_adam_step(params, grads, lr=2e-4, betas=(0.5, 0.999), eps=1e-8):
    """One step of Adam from zero moments (torch.optim.Adam(lr=2e-4, betas=(0.5, 0.999)) as released)."""
    new, moments = {}, {}
    for key, p in params.items():
        g = grads[key]
        m = (1 - betas[0]) * g
        v = (1 - betas[1]) * g * g
        m_hat, v_hat = m / (1 - betas[0]), v / (1 - betas[1])
        new[key] = p - lr * m_hat / (torch.sqrt(v_hat) + eps)
        moments[key] = (m, v)
    return new, moments


# ------------------------------------------------------------------------------------ discriminator weights


def test_discriminator_converter_names_shapes_and_classifier_order():
    released = {f"module.{k}": v for k, v in released_discriminator_state(size=256).items()}  # DataParallel
    converted = convert_released_discriminator_state_dict(released)
    ours = GlobalLocalDiscriminator(image_size=256).double()
    own = ours.state_dict()
    assert set(converted) == set(own)
    assert all(converted[k].shape == own[k].shape for k in own)
    expected = {
        "global_model.0.conv.weight": "global_branch.layers.0.0.weight",
        "global_model.5.norm.running_var": "global_branch.layers.5.1.running_var",
        "local_fea1.conv.bias": "local_branch.layers.0.0.bias",
        "local_fea5.norm.weight": "local_branch.layers.4.1.weight",
        "global_classifier.weight": "global_branch.linear.weight",
        "local_classifier.bias": "local_branch.linear.bias",
        "classifier.1.bias": "classifier.bias",
    }
    for theirs, mine in expected.items():
        assert torch.equal(converted[mine], released[f"module.{theirs}"]), theirs
    # the released classifier sees [local, global]; ours sees [global, local]: the two halves are swapped
    w = released["module.classifier.1.weight"]
    assert torch.equal(converted["classifier.weight"], torch.cat([w[:, 512:], w[:, :512]], dim=1))
    assert not torch.equal(converted["classifier.weight"], w)


@pytest.mark.parametrize("training", [True, False])
def test_converted_discriminator_gives_the_released_outputs(training):
    state = released_discriminator_state()
    ours = GlobalLocalDiscriminator(image_size=SIZE).double()
    ours.load_state_dict(convert_released_discriminator_state_dict(state))
    ours.train(training)
    gen = torch.Generator().manual_seed(3)
    image = torch.rand(3, 3, SIZE, SIZE, generator=gen, dtype=torch.float64) * 2 - 1
    patch = image[:, :, 8 : 8 + SIZE // 2, 20 : 20 + SIZE // 2]
    reference = {k: v.clone() for k, v in state.items()}  # the reference updates its own BN statistics
    with torch.no_grad():
        logit, feats = ours(image, patch)
        ref_logit, ref_feats = ref_discriminator(reference, patch, image, training=training)
    torch.testing.assert_close(logit, ref_logit, rtol=0, atol=1e-12)
    for a, b in zip(feats, ref_feats, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    # loading it without swapping the classifier halves would change the logit: the order matters
    unswapped = {**convert_released_discriminator_state_dict(state), "classifier.weight": state["classifier.1.weight"]}
    ours.load_state_dict(unswapped)
    with torch.no_grad():
        assert (ours(image, patch)[0] - ref_logit).abs().max() > 1e-3


def test_discriminator_state_from_released_lightning_and_plain_files(tmp_path):
    released = released_discriminator_state()
    torch.save(released, tmp_path / "2000_D.pth")
    from_release = discriminator_state_from_file(tmp_path / "2000_D.pth")
    assert torch.equal(from_release["classifier.bias"], released["classifier.1.bias"])
    ours = {k: v.clone() for k, v in from_release.items()}
    torch.save({"state_dict": {f"discriminator.{k}": v for k, v in ours.items()}, "epoch": 0}, tmp_path / "x.ckpt")
    torch.save(ours, tmp_path / "plain.pth")
    for name in ("x.ckpt", "plain.pth"):
        loaded = discriminator_state_from_file(tmp_path / name)
        assert set(loaded) == set(ours) and all(torch.equal(loaded[k], ours[k]) for k in ours)
    torch.save({"encoder.0.conv.weight": torch.zeros(1)}, tmp_path / "G.pth")
    with pytest.raises(CheckpointError, match=r"G\.pth is not a DMFN discriminator"):
        discriminator_state_from_file(tmp_path / "G.pth")


# ----------------------------------------------------------------------------- configs and init_from


def _compose(overrides: list[str], tmp_path):
    from dmfn_lightning.train import compose_config

    return compose_config(overrides, tmp_path)


def test_released_experiments_compose_every_switch(tmp_path):
    common = {
        "model.generator.block": "released",
        "model.vgg.normalization": "released",
        "loss.self_guided_normalization": "max",
        "loss.alignment_mode": "released",
        "data.image_size": 256,
        "data.batch_size": 16,
        "trainer.max_steps": 100000,
    }
    expect = {
        "released_ffhq": {
            "data.root": "ffhq",
            "mask._target_": "dmfn_lightning.masks.CenterMask",
            "mask.shrink": True,
            "mask.delta": 32,
            "optim.scheduler.milestones": [50000],
            "data.crop": "center",
        },
        "released_celeba_hq": {
            "data.root": "celeba_hq",
            "mask._target_": "dmfn_lightning.masks.RandomBoxMask",
            "mask.delta": 32,
            "optim.scheduler.milestones": [100000],
            "data.crop": "center",
        },
        "released_paris": {
            "data.root": "paris",
            "mask._target_": "dmfn_lightning.masks.RandomBoxMask",
            "mask.delta": 32,
            "optim.scheduler.milestones": [50000],
            "data.crop": "released",
        },
    }
    from omegaconf import OmegaConf

    for name, keys in expect.items():
        cfg = _compose([f"+experiment={name}"], tmp_path)
        for key, value in {**common, **keys}.items():
            got = OmegaConf.select(cfg, key)
            got = OmegaConf.to_container(got) if OmegaConf.is_config(got) else got
            if key == "data.root":
                assert str(got).endswith(f"/{value}"), (name, got)
            else:
                assert got == value, (name, key, got)
        assert cfg.run_name == name
    # the paper's recipes keep the paper's settings
    paper = _compose(["+experiment=ffhq"], tmp_path)
    assert paper.model.generator.block == "dmfb" and paper.model.vgg.normalization == "imagenet"
    assert paper.mask._target_.endswith("RandomBoxMask") and paper.loss.alignment_mode == "paper"
    assert paper.data.crop == "center" and _compose(["+experiment=paris"], tmp_path).data.crop == "random"
    assert OmegaConf.to_container(paper.init_from) == {"generator": None, "discriminator": None}
    # Table 3 defaults to CelebA-HQ and stays overridable
    assert _compose(["+experiment=table3"], tmp_path).data.root.endswith("/celeba_hq")
    assert _compose(["+experiment=table3", "data=paris"], tmp_path).data.root.endswith("/paris")


def test_cli_cfg_job_shows_the_released_ffhq_recipe(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "dmfn_lightning.train", "+experiment=released_ffhq", "--cfg", "job"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    for line in ("block: released", "normalization: released", "self_guided_normalization: max", "shrink: true"):
        assert line in out, line
    assert "alignment_mode: released" in out and "delta: 32" in out and "- 50000" in out
    assert "_target_: dmfn_lightning.masks.CenterMask\n  hole_size: 0.5\n  shrink: true" in out


@pytest.mark.parametrize("experiment", ["released_paris", "released_celeba_hq", "released_ffhq"])
def test_released_experiments_train_one_tiny_iteration(experiment, tmp_path, monkeypatch):
    from dmfn_lightning.train import train
    from tests.fakes import fake_dataset_layouts

    monkeypatch.setenv("DMFN_DATA", str(fake_dataset_layouts(tmp_path / "data", size=72)))
    overrides = [f"+experiment={experiment}", "+debug=fast", "trainer.max_steps=1", "data.eval_batch_size=2"]
    cfg = _compose(overrides, tmp_path / "run")
    result = train(cfg)
    assert result["iteration"] == 1
    assert cfg.model.vgg.normalization == "released" and cfg.model.generator.block == "released"


def _released_module(tmp_path, extra: list[str] = ()):
    from dmfn_lightning.train import build_module

    torch.save(vgg_state(), tmp_path / "vgg19_features.pth")
    overrides = [
        "+experiment=released_paris",
        f"data.image_size={SIZE}",
        f"model.generator.num_blocks={NUM_BLOCKS}",
        f"model.vgg.weights={tmp_path / 'vgg19_features.pth'}",
        "model.val_lpips=false",
        *extra,
    ]
    return build_module(_compose(overrides, tmp_path))


def test_init_from_release_loads_generator_ema_and_discriminator(tmp_path):
    g_state, d_state = released_generator_state(), released_discriminator_state()
    torch.save({f"module.{k}": v.float() for k, v in g_state.items()}, tmp_path / "56000_G.pth")
    torch.save({k: v.float() if v.is_floating_point() else v for k, v in d_state.items()}, tmp_path / "2000_D.pth")
    module = _released_module(tmp_path, ["model.ema_decay=0.9"])
    loaded = init_from_release(module, tmp_path / "56000_G.pth", tmp_path / "2000_D.pth")
    assert loaded == {"generator": str(tmp_path / "56000_G.pth"), "discriminator": str(tmp_path / "2000_D.pth")}
    g = module.generator.state_dict()
    assert torch.equal(g["blocks.1.branches.2.weight"], g_state["blocks.1.d3.weight"].float())
    assert torch.equal(g["decoder.1.conv.conv.weight"], g_state["decoder.1.conv.conv.weight"].float())
    ema = module.generator_ema.shadow.state_dict()
    assert all(torch.equal(ema[k], g[k]) for k in g)  # the EMA starts from the loaded weights
    d = module.discriminator.state_dict()
    assert torch.equal(d["local_branch.layers.4.1.running_mean"], d_state["local_fea5.norm.running_mean"].float())
    w = d_state["classifier.1.weight"].float()
    assert torch.equal(d["classifier.weight"], torch.cat([w[:, 512:], w[:, :512]], dim=1))
    # None leaves a network as built; a file of another structure is refused with the reason
    assert init_from_release(module) == {}
    paper = _released_module(tmp_path, ["model/block=dmfb"])
    with pytest.raises(CheckpointError, match=r"init_from\.generator=.*56000_G\.pth does not fit .*'block': 'dmfb'"):
        init_from_release(paper, generator=tmp_path / "56000_G.pth")
    big = _released_module(tmp_path, ["data.image_size=128"])
    with pytest.raises(CheckpointError, match=r"init_from\.discriminator=.*image_size 128.*shape mismatch"):
        init_from_release(big, discriminator=tmp_path / "2000_D.pth")


# ------------------------------------------------------------------------- one iteration, ours vs released


def _batch() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(4)
    image = torch.rand(2, 3, SIZE, SIZE, generator=gen, dtype=torch.float64) * 2 - 1
    bbox = torch.tensor([[5, 9, SIZE // 2, SIZE // 2], [30, 28, SIZE // 2, SIZE // 2]])
    mask = torch.zeros(2, 1, SIZE, SIZE, dtype=torch.float64)
    for i, ((top, left, h, w), (dh, dw)) in enumerate(zip(bbox.tolist(), [(3, 2), (0, 5)])):
        mask[i, :, top + dh : top + h - dh, left + dw : left + w - dw] = 1  # the released shrunk box
    return {"image": image, "mask": mask, "bbox": bbox}


def test_one_released_iteration_equals_the_straight_line_released_math(tmp_path):
    import pytorch_lightning as pl

    g_state, d_state = released_generator_state(), released_discriminator_state()
    torch.save(g_state, tmp_path / "G.pth")
    torch.save(d_state, tmp_path / "D.pth")
    module = _released_module(tmp_path)
    init_from_release(module, tmp_path / "G.pth", tmp_path / "D.pth")
    batch = _batch()

    # ours: one iteration under a Trainer, recording the losses the module optimises
    totals = {}
    g_loss, d_loss = module.loss.generator_loss, module.loss.discriminator_loss

    def record(name, fn):
        def wrapped(*args, **kwargs):
            total, terms = fn(*args, **kwargs)
            totals[name] = total.detach().clone()
            return total, terms

        return wrapped

    module.loss.generator_loss = record("g", g_loss)
    module.loss.discriminator_loss = record("d", d_loss)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=2,  # Lightning counts the G and the D step: one iteration
        precision="64-true",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    trainer.fit(module, train_dataloaders=DataLoader([batch], batch_size=None))
    assert trainer.global_step == 2

    # released: the same iteration, straight-line
    vgg = {k: v.double() for k, v in vgg_state().items()}
    G = {k: v.clone().requires_grad_(True) for k, v in g_state.items()}
    D = {k: v.clone().requires_grad_(k.split(".")[-1] in ("weight", "bias")) for k, v in d_state.items()}
    image, mask, bbox = batch["image"], batch["mask"], batch["bbox"]
    l_g, output = ref_generator_loss(G, D, vgg, image, mask, bbox)
    g_keys = list(G)
    g_grads = dict(zip(g_keys, torch.autograd.grad(l_g, [G[k] for k in g_keys]), strict=True))
    G_new, G_moments = ref_adam_step({k: G[k].detach() for k in g_keys}, g_grads)
    l_d = ref_discriminator_loss(D, image, output.detach(), bbox)
    d_keys = [k for k, v in D.items() if v.requires_grad]
    d_grads = dict(zip(d_keys, torch.autograd.grad(l_d, [D[k] for k in d_keys]), strict=True))
    D_new, D_moments = ref_adam_step({k: D[k].detach() for k in d_keys}, d_grads)

    # losses
    assert abs(float(totals["g"]) - l_g.item()) <= 1e-5, (totals["g"], l_g)
    assert abs(float(totals["d"]) - l_d.item()) <= 1e-5, (totals["d"], l_d)
    # parameters after the G step and the D step, and Adam's first and second moments (which, unlike the first
    # Adam step itself, scale with the gradients)
    opt_g, opt_d = trainer.optimizers
    for ours_net, opt, new, moments, convert in (
        (module.generator, opt_g, G_new, G_moments, convert_released_state_dict),
        (module.discriminator, opt_d, D_new, D_moments, convert_released_discriminator_state_dict),
    ):
        expected = convert(new)
        m_exp = convert({k: m for k, (m, _) in moments.items()})
        v_exp = convert({k: v for k, (_, v) in moments.items()})
        params = dict(ours_net.named_parameters())
        assert set(params) == set(expected)
        for name, p in params.items():
            assert p.dtype == torch.float64
            torch.testing.assert_close(p.detach(), expected[name], rtol=0, atol=1e-5, msg=name)
            state = opt.state[p]
            torch.testing.assert_close(state["exp_avg"], m_exp[name], rtol=1e-6, atol=1e-12, msg=name)
            torch.testing.assert_close(state["exp_avg_sq"], v_exp[name], rtol=1e-6, atol=1e-18, msg=name)
    # the step did move the weights (by about lr = 2e-4), so the comparison above is not vacuous
    moved = max((G_new[k] - g_state[k]).abs().max().item() for k in g_keys)
    assert 1e-4 < moved <= 2.1e-4
    # and the normalisation switch is visible at this tolerance: the correct ImageNet input gives another loss
    with torch.no_grad():
        other, _ = ref_generator_loss(g_state, d_state | {}, vgg, image, mask, bbox, released_normalization=False)
    assert abs(other.item() - l_g.item()) > 1e-3
