"""Weights bundles: safetensors + config.json + model card, written by training and by the export command, read
back with ``from_pretrained`` (local folders and the Hub cache, never pickle), and the fine-tuning recipe."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from dmfn_lightning.core.errors import CheckpointError
from dmfn_lightning.models import DMFNGenerator, GlobalLocalDiscriminator, load_generator
from dmfn_lightning.models.bundles import (
    BUNDLE_VERSION,
    CONFIG_FILE,
    DISCRIMINATOR_FILE,
    GENERATOR_FILE,
    load_bundle,
    looks_like_hub_id,
    save_bundle,
)
from dmfn_lightning.models.generator_files import (
    convert_released_discriminator_state_dict,
    discriminator_config_of,
    discriminator_state_from_file,
)
from dmfn_lightning.train import adopt_bundle_networks, build_module, compose_config, train
from tests.cli import run_module
from tests.integration.test_released import released_discriminator_state, released_generator_state

TINY_RUN = ["+experiment=demo", "+debug=fast", "export_generator=true", "model.ema_decay=0.5"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A two-iteration 64 px run with an EMA generator, its generator.pt and its bundle."""
    run_dir = tmp_path_factory.mktemp("parent_run")
    result = train(compose_config(TINY_RUN, run_dir))
    assert result["bundle"] == str(run_dir / "bundle")
    return run_dir


def _input(size: int = 64, batch: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    image = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    mask = torch.zeros(batch, 1, size, size)
    mask[..., size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1
    return DMFNGenerator.make_input(image, mask)


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k].float(), b[k].float()) for k in a)


NO_PICKLE = textwrap.dedent(
    """
    import pickle, sys
    import torch, torch.serialization

    def refuse(*args, **kwargs):
        raise AssertionError("pickle was used")

    class NoUnpickler:
        def __init__(self, *args, **kwargs):
            refuse()

    torch.load = torch.serialization.load = refuse
    pickle.load = pickle.loads = refuse
    pickle.Unpickler = NoUnpickler

    from safetensors.torch import load_file, save_file
    from dmfn_lightning.models import DMFNGenerator

    generator = DMFNGenerator.from_pretrained(sys.argv[1])
    with torch.no_grad():
        save_file({"y": generator(load_file(sys.argv[2])["x"])}, sys.argv[3])
    print(generator.metadata["image_size"])
    """
)


def test_a_trained_run_loads_from_its_bundle_in_a_fresh_process_without_pickle(trained_run, tmp_path):
    bundle = trained_run / "bundle"
    assert sorted(p.name for p in bundle.iterdir()) == ["README.md", CONFIG_FILE, DISCRIMINATOR_FILE, GENERATOR_FILE]
    x = _input()
    save_file({"x": x}, tmp_path / "x.safetensors")
    done = subprocess.run(
        [sys.executable, "-c", NO_PICKLE, str(bundle), str(tmp_path / "x.safetensors"), str(tmp_path / "y.st")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "64"  # the training size travels with the weights
    with torch.no_grad():
        expected = load_generator(trained_run / "generator.pt")(x)  # the run's own (EMA) generator
    assert torch.equal(load_file(tmp_path / "y.st")["y"], expected)

    # The weights are the checkpoint's EMA generator and its discriminator, bit for bit.
    ckpt = torch.load(trained_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    ema = {k.removeprefix("generator_ema.shadow."): v for k, v in ckpt.items() if k.startswith("generator_ema.")}
    disc = {k.removeprefix("discriminator."): v for k, v in ckpt.items() if k.startswith("discriminator.")}
    assert _same_state(load_file(bundle / GENERATOR_FILE), ema)
    assert _same_state(load_file(bundle / DISCRIMINATOR_FILE), disc)


def test_the_bundle_config_and_model_card_say_how_it_was_trained(trained_run):
    config = json.loads((trained_run / "bundle" / CONFIG_FILE).read_text())
    assert config["version"] == BUNDLE_VERSION
    assert config["generator"] == {"block": "dmfb", "num_blocks": 1, "base_channels": 16, "upsample_init": "bilinear"}
    assert config["discriminator"] == {"image_size": 64, "base_channels": 16, "spectral_norm": False}
    training = config["training"]
    assert training["image_size"] == 64 and training["iterations"] == 2 and training["ema"] is True
    assert training["mask"] == "RandomBoxMask" and training["vgg_normalization"] == "imagenet"
    assert training["vgg_weights"] == "random" and training["loss"]["vgg_weight"] == 0.0  # demo: loss no_vgg
    assert config["provenance"]["library_version"] and "git_commit" in config["provenance"]
    assert 0 < config["evaluation"]["metrics"]["psnr"] < 100
    assert "10*log10" in config["evaluation"]["conventions"]["psnr"]
    card = (trained_run / "bundle" / "README.md").read_text()
    assert card.startswith("---\nlicense: mit\n") and "Trained on 64x64 crops" in card
    psnr_row = next(line for line in card.splitlines() if line.startswith("| psnr |"))
    assert psnr_row.count("|") == 4 and "\\|" not in psnr_row  # one row of three cells
    l1_row = next(line for line in card.splitlines() if line.startswith("| l1 |"))
    assert l1_row.replace("\\|", "").count("|") == 4  # a "|" inside a convention is escaped


def test_the_loader_refuses_pickle_files_inside_a_bundle(trained_run, tmp_path):
    bundle = tmp_path / "with_pickle"
    shutil.copytree(trained_run / "bundle", bundle)
    torch.save({"x": torch.zeros(1)}, bundle / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"pickle-based file\(s\) pytorch_model\.bin"):
        DMFNGenerator.from_pretrained(bundle)
    with pytest.raises(CheckpointError, match="pickle-based"):
        load_generator(bundle)  # every --checkpoint goes through it
    # A bundle whose weights are a .pt instead of safetensors is refused the same way, not loaded.
    (bundle / "pytorch_model.bin").unlink()
    (bundle / GENERATOR_FILE).rename(bundle / "model.pt")
    with pytest.raises(CheckpointError, match=r"model\.pt"):
        DMFNGenerator.from_pretrained(bundle)
    Image.new("RGB", (32, 32), "gray").save(tmp_path / "x.png")
    Image.new("L", (32, 32), 255).save(tmp_path / "m.png")
    done = run_module(
        "inpaint", ["--checkpoint", str(bundle), "--image", "x.png", "--mask", "m.png", "--output", "o"], tmp_path
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "model.pt" in lines[0], done.stderr


def test_broken_bundles_are_one_clear_error(trained_run, tmp_path):
    bundle = tmp_path / "b"
    shutil.copytree(trained_run / "bundle", bundle)
    config = json.loads((bundle / CONFIG_FILE).read_text())
    (bundle / CONFIG_FILE).write_text(json.dumps({**config, "version": BUNDLE_VERSION + 1}))
    with pytest.raises(CheckpointError, match="upgrade dmfn_lightning"):
        load_bundle(bundle)
    (bundle / CONFIG_FILE).write_text(json.dumps(config))
    data = (bundle / GENERATOR_FILE).read_bytes()
    (bundle / GENERATOR_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        DMFNGenerator.from_pretrained(bundle)
    (bundle / CONFIG_FILE).unlink()
    with pytest.raises(CheckpointError, match="is a folder but not a weights bundle"):
        load_generator(bundle)
    with pytest.raises(CheckpointError, match=r"it holds bundle: pass .*bundle"):
        load_generator(trained_run)  # a run folder: its bundle is named
    with pytest.raises(CheckpointError, match="does not exist"):
        load_generator(tmp_path / "missing" / "generator.pt")


def test_save_bundle_replaces_a_bundle_whole_and_leaves_other_folders_alone(tmp_path):
    first, second = DMFNGenerator(num_blocks=1, base_channels=8), DMFNGenerator(num_blocks=2, base_channels=8)
    target = save_bundle(tmp_path / "b", first, training={"image_size": 96})
    save_bundle(target, second)
    assert DMFNGenerator.from_pretrained(target).config["num_blocks"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no staging or old copies left behind
    other = tmp_path / "photos"
    other.mkdir()
    (other / "keep.png").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="not a bundle"):
        save_bundle(other, first)
    assert [p.name for p in other.iterdir()] == ["keep.png"]


def _hub_cache(cache: Path, repo_id: str, bundle: Path, commit: str = "0" * 40) -> None:
    """The layout huggingface_hub keeps downloaded repositories in (models--owner--name/snapshots/<commit>)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(bundle, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)


def test_a_hub_id_resolves_from_the_local_cache_offline(trained_run, tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    _hub_cache(cache, "someone/dmfn-tiny", trained_run / "bundle")
    loaded = DMFNGenerator.from_pretrained("someone/dmfn-tiny", cache_dir=cache, local_files_only=True)
    assert _same_state(loaded.state_dict(), load_generator(trained_run / "generator.pt").state_dict())
    d = GlobalLocalDiscriminator.from_pretrained("someone/dmfn-tiny", cache_dir=cache)
    assert d.config == {"image_size": 64, "base_channels": 16, "spectral_norm": False}
    # what the commands see: --checkpoint owner/name, with the cache where huggingface_hub looks by default
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    done = run_module("export", ["--checkpoint", "someone/dmfn-tiny", "--output", "out", "--format", "generator",
                                 "--verify-sizes", "16x16"], tmp_path, env={"HF_HUB_CACHE": str(cache)})  # fmt: skip
    assert done.returncode == 0, done.stderr
    with pytest.raises(CheckpointError, match=r"nor a Hub model in the local cache"):
        DMFNGenerator.from_pretrained("someone/not-there", cache_dir=cache)
    assert looks_like_hub_id("someone/dmfn-tiny") and not looks_like_hub_id("outputs/generator.pt")
    assert not looks_like_hub_id("a/b/c") and not looks_like_hub_id("/abs/path")


def test_released_weights_round_trip_through_a_bundle(tmp_path):
    """The authors' *_G.pth / *_D.pth (their key names) -> dmfn-export --format bundle -> from_pretrained."""
    from dmfn_lightning.export import main

    torch.save(released_generator_state(num_blocks=2, nf=16), tmp_path / "paris_G.pth")
    released_d = released_discriminator_state(size=64, nf=16)
    torch.save(released_d, tmp_path / "paris_D.pth")
    args = ["--checkpoint", str(tmp_path / "paris_G.pth"), "--discriminator", str(tmp_path / "paris_D.pth")]
    assert main([*args, "--output", str(tmp_path / "out"), "--format", "bundle", "--verify-sizes", "64x64"]) == 0
    bundle = tmp_path / "out" / "bundle"

    x = _input()
    with torch.no_grad():
        assert torch.equal(DMFNGenerator.from_pretrained(bundle)(x), load_generator(tmp_path / "paris_G.pth")(x))
    config = json.loads((bundle / CONFIG_FILE).read_text())
    assert config["generator"]["block"] == "released" and config["training"] == {}  # the release records nothing
    assert config["provenance"]["source"] == str(tmp_path / "paris_G.pth")
    assert config["discriminator"] == {"image_size": 64, "base_channels": 16, "spectral_norm": False}

    expected_d = GlobalLocalDiscriminator(64, 16).eval()
    expected_d.load_state_dict(convert_released_discriminator_state_dict(released_d))
    image, patch = x[:, :3], x[:, :3, 16:48, 16:48]
    with torch.no_grad():
        assert torch.equal(
            GlobalLocalDiscriminator.from_pretrained(bundle)(image, patch)[0], expected_d(image, patch)[0]
        )
    # and back: the bundle's discriminator is what the converter makes of their file
    assert _same_state(discriminator_state_from_file(bundle), discriminator_state_from_file(tmp_path / "paris_D.pth"))


def test_discriminator_config_is_read_off_its_weights():
    for args in [(64, 16, False), (128, 8, True), (256, 64, False)]:
        d = GlobalLocalDiscriminator(*args)
        assert discriminator_config_of(d.state_dict()) == d.config == dict(zip(d.config, args))


def test_export_bundle_from_a_checkpoint_keeps_its_provenance_and_refuses_misuse(trained_run, tmp_path):
    from dmfn_lightning.export import main

    ckpt = trained_run / "checkpoints" / "last.ckpt"
    assert main(["--checkpoint", str(ckpt), "--output", str(tmp_path / "o"), "--format", "bundle"]) == 0
    config = json.loads((tmp_path / "o" / "bundle" / CONFIG_FILE).read_text())
    parent = json.loads((trained_run / "bundle" / CONFIG_FILE).read_text())
    for key in ("image_size", "mask", "iterations", "ema", "loss", "vgg_normalization"):
        assert config["training"][key] == parent["training"][key], key
    assert config["discriminator"] == parent["discriminator"]
    assert _same_state(
        load_file(tmp_path / "o" / "bundle" / GENERATOR_FILE), load_file(trained_run / "bundle" / GENERATOR_FILE)
    )
    report = json.loads((tmp_path / "o" / "export.json").read_text())
    assert report["formats"]["bundle"]["verified"] is True and report["formats"]["bundle"]["bytes"] > 0

    done = run_module(
        "export",
        ["--checkpoint", str(ckpt), "--output", "x", "--format", "onnx", "--discriminator", str(ckpt)],
        tmp_path,
    )
    assert done.returncode == 2 and done.stderr.strip().startswith("error: --discriminator goes into a weights bundle")
    done = run_module("export", ["--checkpoint", str(tmp_path / "o" / "bundle"), "--output", str(tmp_path / "o"),
                                 "--format", "bundle"], tmp_path)  # fmt: skip
    assert done.returncode == 2 and "overwrite" in done.stderr, done.stderr


def test_a_finetune_starts_from_the_bundles_g_and_d_and_names_its_parent(trained_run, tmp_path):
    parent = trained_run / "bundle"
    overrides = ["+experiment=finetune", "+debug=fast", f"init_from.generator={parent}", "export_generator=true"]
    overrides.append("model.ema_decay=0.9")
    # The child asks for other networks on purpose: the bundle's config.json decides what is built.
    cfg = compose_config(
        [*overrides, "model.generator.num_blocks=3", "model.generator.upsample_init=pytorch"], tmp_path
    )
    assert cfg.init_from.discriminator == "auto" and cfg.optim.generator.lr == 5.0e-5
    changes = adopt_bundle_networks(cfg)
    assert "model.generator.num_blocks: 3 -> 1" in changes and cfg.model.generator.upsample_init == "bilinear"
    module = build_module(cfg)
    assert _same_state(module.generator.state_dict(), load_file(parent / GENERATOR_FILE))
    assert _same_state(module.generator_ema.shadow.state_dict(), load_file(parent / GENERATOR_FILE))
    assert _same_state(module.discriminator.state_dict(), load_file(parent / DISCRIMINATOR_FILE))

    result = train(compose_config(overrides, tmp_path / "child"))
    child = json.loads((Path(result["bundle"]) / CONFIG_FILE).read_text())
    recorded = child["provenance"]["parent"]
    parent_config = json.loads((parent / CONFIG_FILE).read_text())
    assert recorded["reference"] == str(parent)
    assert recorded["training"] == parent_config["training"] and recorded["generator"] == parent_config["generator"]
    assert recorded["provenance"]["created"] == parent_config["provenance"]["created"]
    assert f"fine-tuned from: `{parent}`" in (Path(result["bundle"]) / "README.md").read_text()


def test_finetune_without_a_discriminator_in_the_bundle_starts_d_fresh(trained_run, tmp_path, caplog):
    g_only = tmp_path / "g_only"
    shutil.copytree(trained_run / "bundle", g_only)
    (g_only / DISCRIMINATOR_FILE).unlink()
    cfg = compose_config(["+experiment=finetune", "+debug=fast", f"init_from.generator={g_only}"], tmp_path / "r")
    adopt_bundle_networks(cfg)
    torch.manual_seed(7)
    fresh = build_module(compose_config(["+experiment=demo", "+debug=fast"], tmp_path / "f"))
    torch.manual_seed(7)
    with caplog.at_level(logging.INFO):
        module = build_module(cfg)
    assert _same_state(module.generator.state_dict(), load_file(g_only / GENERATOR_FILE))
    # D is built as a fresh run builds it
    assert _same_state(module.discriminator.state_dict(), fresh.discriminator.state_dict())
    assert "holds no discriminator: D starts fresh" in caplog.text


def test_a_64px_bundle_is_resized_to_64_and_evaluate_at_another_size_warns_once(trained_run, tmp_path, caplog):
    from dmfn_lightning.inpainting import inpaint
    from tests.conftest import run_evaluation

    generator = DMFNGenerator.from_pretrained(trained_run / "bundle")
    seen: list[tuple[int, ...]] = []
    generator.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape)))
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (150, 200, 3), dtype=np.uint8))
    hole = np.zeros((150, 200), dtype=bool)
    hole[50:90, 60:120] = True
    out = inpaint(generator, image, hole, strategy="resize")
    # the long side goes to the recorded 64 (aspect kept: 150x200 -> 48x64), not to 256
    assert out.size == (200, 150) and seen == [(1, 4, 48, 64)]

    root = tmp_path / "eval"
    val = root / "val"
    val.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(val / f"{i}.png")
    setup = {"ckpt": trained_run / "bundle", "data": root}
    with caplog.at_level(logging.WARNING):
        run_evaluation(setup, tmp_path / "out", "data.image_size=32")
    said = [r.getMessage() for r in caplog.records if "trained on 64x64 images but runs on 32x32" in r.getMessage()]
    assert len(said) == 1


def test_an_evaluation_summary_goes_into_an_exported_bundle(trained_run, tmp_path, capsys):
    from dmfn_lightning.export import main
    from tests.conftest import run_evaluation

    val = tmp_path / "data" / "val"
    val.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (72, 72, 3), dtype=np.uint8)).save(val / f"{i}.png")
    bundle = trained_run / "bundle"
    summary = run_evaluation({"ckpt": bundle, "data": tmp_path / "data"}, tmp_path / "eval", "data.image_size=64")
    args = ["--checkpoint", str(bundle), "--format", "bundle", "--verify-sizes", "64x64"]
    assert main([*args, "--output", str(tmp_path / "o"), "--evaluation", str(tmp_path / "eval" / "summary.json")]) == 0
    evaluation = json.loads((tmp_path / "o" / "bundle" / CONFIG_FILE).read_text())["evaluation"]
    assert evaluation["metrics"]["psnr"] == summary["metrics"]["psnr"] and evaluation["metrics"]["ssim"] > 0
    assert evaluation["conventions"]["psnr"] == summary["conventions"]["psnr"]
    assert "3 images at 64 px" in evaluation["setting"] and "warning" not in capsys.readouterr().out
    card = (tmp_path / "o" / "bundle" / "README.md").read_text()
    assert f"| psnr | {summary['metrics']['psnr']:.4f} |" in card
    # an evaluation of another checkpoint is said in one line; a file that is not a summary is refused
    ckpt = trained_run / "checkpoints" / "last.ckpt"
    other = ["--checkpoint", str(ckpt), "--format", "bundle", "--verify-sizes", "64x64"]
    assert (
        main([*other, "--output", str(tmp_path / "o2"), "--evaluation", str(tmp_path / "eval" / "summary.json")]) == 0
    )
    assert f"is an evaluation of {bundle}, not of --checkpoint {ckpt}" in capsys.readouterr().out
    (tmp_path / "not_summary.json").write_text("[1, 2]")
    with pytest.raises(SystemExit):
        main([*args, "--output", str(tmp_path / "o3"), "--evaluation", str(tmp_path / "not_summary.json")])
    assert "is not the summary.json of an evaluation" in capsys.readouterr().err


def test_inpaint_says_in_one_line_when_it_runs_a_bundle_at_another_size(trained_run, tmp_path):
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (150, 200, 3), dtype=np.uint8)).save(tmp_path / "p.png")
    hole = np.zeros((150, 200), dtype=np.uint8)
    hole[40:90, 50:120] = 255
    Image.fromarray(hole).save(tmp_path / "p_mask.png")
    base = ["--checkpoint", str(trained_run / "bundle"), "--image", "p.png", "--mask", "p_mask.png", "--device", "cpu"]
    said = {}
    for name, extra in {"resize96": ["--working-size", "96"], "resize": ["--strategy", "resize"]}.items():
        done = run_module("inpaint", [*base, "--output", name, *extra], tmp_path)
        assert done.returncode == 0, done.stderr
        said[name] = [line for line in done.stderr.splitlines() if "trained on 64x64" in line]
    assert len(said["resize96"]) == 1 and "--working-size 96 runs it at 96 px" in said["resize96"][0]
    assert said["resize"] == []  # at the recorded size: nothing to say


def test_a_finetune_at_another_size_than_the_bundles_discriminator_is_refused_before_any_work(trained_run, tmp_path):
    from dmfn_lightning.core.errors import ConfigError

    parent = trained_run / "bundle"
    base = ["+experiment=finetune", "+debug=fast", f"init_from.generator={parent}", "data.image_size=128"]
    with pytest.raises(ConfigError, match=r"discriminator for 64 px images but data.image_size=128: train at"):
        adopt_bundle_networks(compose_config(base, tmp_path / "a"))
    # with D started fresh, a generator may be fine-tuned at another size
    cfg = compose_config([*base, "init_from.discriminator=null"], tmp_path / "b")
    adopt_bundle_networks(cfg)
    assert cfg.data.image_size == 128 and cfg.model.generator.num_blocks == 1  # the bundle's generator
