"""Shared test settings (offline, quiet W&B, two threads) and the shared fixtures: composed configs and runs."""

import os

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("DMFN_OFFLINE", "1")  # never try to download backbone weights in tests
os.environ.setdefault("HYDRA_FULL_ERROR", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # Hub ids resolve from local caches only

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from PIL import Image
from torch import nn

from dmfn_lightning.core.config import config_dir
from dmfn_lightning.evaluate import compose_config, evaluate
from dmfn_lightning.metrics.perceptual import LPIPSMetric
from dmfn_lightning.models import DMFNGenerator, export_generator

torch.set_num_threads(2)

EVAL_IMAGES = 5  # images in the tiny evaluation folder of ``eval_setup``


def _clear_hydra() -> None:
    HydraConfig.instance().cfg = None
    GlobalHydra.instance().clear()


@pytest.fixture(autouse=True, scope="module")
def _reset_hydra() -> Iterator[None]:
    """Composing registers a global Hydra state; the next module must not inherit its run dir or search path."""
    yield
    _clear_hydra()


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    """A TORCH_HOME with no cached weights: what a fresh offline machine looks like."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


@pytest.fixture
def compose_conf() -> Iterator[Callable[..., DictConfig]]:
    """Compose from the package's real ``conf/`` tree: ``compose_conf("train", "loss=no_align")``, or
    ``compose_conf(None, "+loss=paper")`` for one group without a primary config."""
    _clear_hydra()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        yield lambda name, *overrides: compose(config_name=name, overrides=list(overrides))
    _clear_hydra()


@pytest.fixture(scope="session")
def eval_setup(tmp_path_factory) -> dict[str, Path]:
    """A tiny evaluation world: ``EVAL_IMAGES`` non-square random images (centre-cropped by the data layer) in
    ``data/val`` and a one-block, 16-channel generator file."""
    root = tmp_path_factory.mktemp("eval")
    val = root / "folder" / "val"
    val.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(EVAL_IMAGES):
        Image.fromarray(rng.integers(0, 256, (40 + 3 * i, 36, 3), dtype=np.uint8)).save(val / f"img{i}.png")
    torch.manual_seed(0)
    ckpt = export_generator(DMFNGenerator(num_blocks=1, base_channels=16), root / "generator.pt")
    return {"root": root, "data": root / "folder", "ckpt": ckpt}


def eval_overrides(setup: dict[str, Path], out: Path, *extra: str) -> list[str]:
    """The ``evaluate`` command line for ``eval_setup`` at 32 px, writing to ``out``, plus ``extra``."""
    return [
        f"ckpt={setup['ckpt']}",
        "data=folder",
        f"data.root={setup['data']}",
        "data.image_size=32",
        "data.num_workers=0",
        "batch_size=2",
        "lpips.backbone_weights=random",
        "progress=false",
        f"output_dir={out}",
        *extra,
    ]


def run_evaluation(setup: dict[str, Path], out: Path, *extra: str) -> dict:
    """``evaluate`` composed and run in this process as the CLI would, on ``eval_setup``."""
    cfg = compose_config(eval_overrides(setup, out, *extra), run_dir=out / "hydra")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the random-LPIPS-trunk warning
        return evaluate(cfg)


@pytest.fixture(scope="module")
def random_lpips() -> LPIPSMetric:
    """LPIPS on a seeded random AlexNet trunk (no weights file needed), with the package's calibrated layers."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the random-trunk warning
        return LPIPSMetric("alex", backbone_weights="random")


class RandomFeatures(nn.Module):
    """A small random-initialised feature extractor (uint8 images -> 32-d), standing in for Inception v3."""

    num_features = 32

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2), nn.AdaptiveAvgPool2d(1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dtype == torch.uint8  # the Inception convention: 8-bit images
        return self.net(x.float() / 127.5 - 1.0).flatten(1) * 10


@pytest.fixture
def random_features() -> type[nn.Module]:
    """The FID/KID feature extractor of the tests: ``random_features(seed=0)`` makes one (reports name it
    ``custom: RandomFeatures``)."""
    return RandomFeatures


@pytest.fixture(scope="session")
def written_manifest(eval_setup, tmp_path_factory) -> dict:
    """A free-form evaluation of ``eval_setup`` that also wrote its pairs as a manifest (``manifest_out``):
    ``{"summary", "manifest" (the CSV), "run" (the evaluation's output folder)}``."""
    out = tmp_path_factory.mktemp("written")
    summary = run_evaluation(eval_setup, out / "run", "mask=free_form", f"manifest_out={out / 'm' / 'eval.csv'}")
    return {"summary": summary, "manifest": out / "m" / "eval.csv", "run": out / "run"}
