"""metrics.perceptual: LPIPS equals the lpips package; trunk files, the offline policy, weights out of checkpoints."""

from __future__ import annotations

import importlib.metadata
import warnings

import lpips
import pytest
import torch
from torch import nn

from dmfn_lightning.core.errors import WeightsUnavailableError
from dmfn_lightning.metrics import InpaintingMetrics
from dmfn_lightning.metrics.perceptual import LPIPSMetric
from tests.metrics.metric_images import levels_to_tensor, random_levels


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_pipeline_equals_lpips_package(random_lpips, net):
    if net == "alex":
        ours = random_lpips
    else:
        torch.manual_seed(1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the random-trunk warning
            ours = LPIPSMetric("vgg", backbone_weights="random")
    out = levels_to_tensor(random_levels((3, 3, 64, 64), seed=3))
    gt = levels_to_tensor(random_levels((3, 3, 64, 64), seed=4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's notice about lpips' `pretrained=` argument
        direct = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    direct.load_state_dict(ours.model.state_dict())  # the same random trunk, the same shipped linear layers
    direct.eval()
    with torch.no_grad():
        expected = direct(out, gt).flatten()
    metric = InpaintingMetrics(lpips=ours)
    metric.update(out, gt, torch.zeros(3, 1, 64, 64))
    assert torch.allclose(metric.last_per_image["lpips"], expected, atol=1e-6)
    assert float(metric.compute()["lpips"]) == pytest.approx(float(expected.mean()), abs=1e-6)
    # the calibrated v0.1 linear layers are the package's, not random
    shipped = torch.load(lpips.__path__[0] + f"/weights/v0.1/{net}.pth", map_location="cpu", weights_only=True)
    assert torch.equal(ours.model.lin0.model[1].weight, shipped["lin0.model.1.weight"])
    # reports name the trunk and the package version
    assert metric.settings()["lpips"] == {
        "net": net,
        "version": "0.1",
        "package_version": importlib.metadata.version("lpips"),
        "backbone": "random",
    }


def test_lpips_trunk_loaded_from_torchvision_file(tmp_path):
    from torchvision.models import alexnet

    torch.manual_seed(1)
    state = alexnet(weights=None).state_dict()
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(state, path)
    metric = LPIPSMetric("alex", backbone_weights=str(path))
    assert metric.weights_used == str(path)
    assert torch.equal(metric.model.net.slice1[0].weight, state["features.0.weight"])
    assert torch.equal(getattr(metric.model.net.slice5, "10").bias, state["features.10.bias"])


def test_missing_lpips_weights_name_file_and_override(empty_torch_home, monkeypatch):
    monkeypatch.setenv("DMFN_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError) as info:
        LPIPSMetric("alex")
    message = str(info.value)
    assert "alexnet-owt-7be5be79.pth" in message
    assert "lpips.backbone_weights=random" in message
    with pytest.raises(WeightsUnavailableError, match=r"vgg16-397923af\.pth"):
        InpaintingMetrics(lpips=True, lpips_net="vgg")
    with pytest.warns(UserWarning, match="LPIPS disabled"):
        metric = InpaintingMetrics(lpips="auto")
    assert metric.lpips is None and "lpips" not in metric.names


def test_metric_weights_stay_out_of_checkpoints(random_lpips):
    metric = InpaintingMetrics(lpips=random_lpips)
    assert metric.state_dict() == {}

    class Holder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 1)
            self.metric = metric  # even registered as a submodule

    assert set(Holder().state_dict()) == {"conv.weight", "conv.bias"}
    random_lpips.to(torch.float64)
    try:
        assert next(random_lpips.model.parameters()).dtype == torch.float64  # .to() reaches the hidden net
    finally:
        random_lpips.to(torch.float32)
    Holder().train()
    assert not random_lpips.model.training  # dropout in the calibrated layers stays off
