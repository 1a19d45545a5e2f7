"""metrics.options: the metric settings evaluate and manifest scoring share, built once from the config."""

from __future__ import annotations

import dataclasses

import pytest

from dmfn_lightning.core.errors import WeightsUnavailableError
from dmfn_lightning.metrics import MetricOptions


def test_the_defaults_are_conf_eval_yamls(compose_conf):
    assert MetricOptions.from_config(compose_conf("eval")) == MetricOptions()


def test_from_config_reads_every_key(compose_conf, random_features):
    cfg = compose_conf(
        "eval",
        "lpips.enabled=false",
        "lpips.net=vgg",
        "lpips.backbone_weights=random",
        "metrics.ssim=uniform7",
        "metrics.fid=true",
        "metrics.kid=true",
        "metrics.inception_weights=/w.pth",
        "metrics.kid_subsets=7",
        "metrics.kid_subset_size=9",
    )
    extractor = random_features()
    options = MetricOptions.from_config(cfg, feature_extractor=extractor)
    assert options == MetricOptions(
        lpips=False,
        lpips_net="vgg",
        lpips_backbone_weights="random",
        ssim="uniform7",
        fid=True,
        kid=True,
        inception_weights="/w.pth",
        feature_extractor=extractor,
        kid_subsets=7,
        kid_subset_size=9,
    )
    assert options.fid_kid and not MetricOptions().fid_kid
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.ssim = "full"
    # a config without a metrics group (older configs) takes the defaults
    assert MetricOptions.from_config({"lpips": {"enabled": True, "net": "alex", "backbone_weights": "x"}}) == (
        MetricOptions(lpips_backbone_weights="x")
    )


def test_the_metrics_are_built_from_the_options(random_features):
    metric = MetricOptions(lpips=False, ssim="cropped").inpainting_metrics(all_conventions=True)
    assert metric.lpips is None and metric.ssim_convention == "cropped" and "psnr_dataset" in metric.names
    distribution = MetricOptions(fid=True, feature_extractor=random_features(), kid_subsets=3).distribution_metrics(5)
    assert distribution.fid is not None and distribution.kid is None and distribution.seed == 5


def test_missing_weights_name_the_setting_of_the_options(empty_torch_home, monkeypatch):
    monkeypatch.setenv("DMFN_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match=r"lpips\.backbone_weights=random"):
        MetricOptions().inpainting_metrics()
    with pytest.raises(WeightsUnavailableError, match="--lpips-weights"):
        MetricOptions(lpips_override="--lpips-weights").inpainting_metrics()
