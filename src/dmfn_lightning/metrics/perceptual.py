"""LPIPS (Zhang et al., CVPR 2018), the perceptual distance of Table 1, under this package's offline weights policy.

The ``lpips`` package's v0.1 calibrated linear layers on an ImageNet trunk (AlexNet, or VGG16 with ``net="vgg"``),
inputs in [-1, 1]; lower is better. Reports name the trunk and the package version.

Backbone weights follow the offline policy of :mod:`dmfn_lightning.core.weights`: the ImageNet trunk comes from
torchvision's cache or an explicit file, or ``backbone_weights="random"`` (loud warning); a missing file stops
with :class:`~dmfn_lightning.core.errors.WeightsUnavailableError` naming it. The ``lpips`` package's calibrated linear
layers ship inside the package and are always loaded.

Keeping metric weights out of checkpoints: :class:`LPIPSMetric` holds its network outside the module tree (in a
tuple, so it is not a registered submodule) and forwards ``.to()``/``.cuda()`` to it by overriding ``_apply``;
its ``state_dict()`` is therefore empty wherever the metric is attached, so a LightningModule may even register
it (or an :class:`~dmfn_lightning.metrics.suite.InpaintingMetrics` holding it) without growing its checkpoints.
"""

from __future__ import annotations

import importlib.metadata
import warnings

import torch
from torch import Tensor, nn

from dmfn_lightning.core.errors import WeightsUnavailableError
from dmfn_lightning.core.weights import load_weights, resolve_pretrained, warn_random

__all__ = ["LPIPS_NETS", "LPIPSMetric", "build_lpips", "lpips_package_version"]


def lpips_package_version() -> str:
    """The installed ``lpips`` package's version (reports record it beside the LPIPS numbers)."""
    try:
        return importlib.metadata.version("lpips")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a dependency of this package
        return "unknown"


# torchvision's ImageNet files for the lpips trunks (the files torchvision itself would download).
_TRUNK_URLS = {
    "alex": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    "vgg": "https://download.pytorch.org/models/vgg16-397923af.pth",
}
LPIPS_NETS = tuple(_TRUNK_URLS)


def _trunk_url(net: str) -> str:
    # Prefer torchvision's own record of the URL; the constants above are the same strings for older versions.
    try:
        from torchvision.models import AlexNet_Weights, VGG16_Weights

        return {"alex": AlexNet_Weights.IMAGENET1K_V1.url, "vgg": VGG16_Weights.IMAGENET1K_V1.url}[net]
    except ImportError:  # pragma: no cover
        return _TRUNK_URLS[net]


class LPIPSMetric(nn.Module):
    """LPIPS distance per image (Zhang et al., "The Unreasonable Effectiveness of Deep Features", CVPR 2018).

    Wraps ``lpips.LPIPS`` (v0.1 calibrated linear layers, shipped with the package) and loads the trunk's ImageNet
    weights under our offline policy instead of letting torchvision download them.

    Args:
        net: ``"alex"`` (the paper's Table 1 setting) or ``"vgg"``.
        backbone_weights: ``"imagenet"`` (torchvision's cache), a path to torchvision's state dict for that trunk,
            or ``"random"`` (untrained trunk; numbers are then not comparable to anything, a loud warning is issued).
        override: the config key named in error messages (how the user switches to random weights).

    ``forward(pred, target)`` takes ``[B, 3, H, W]`` images in [-1, 1] and returns ``[B]`` distances. The network
    is held outside the module tree: it never appears in a ``state_dict`` (see the module docstring).
    """

    def __init__(
        self, net: str = "alex", backbone_weights: str = "imagenet", override: str = "lpips.backbone_weights"
    ) -> None:
        super().__init__()
        if net not in _TRUNK_URLS:
            raise ValueError(f"LPIPS net must be one of {', '.join(_TRUNK_URLS)}, got {net!r}")
        import lpips as lpips_package

        with warnings.catch_warnings():
            # lpips builds the trunk through torchvision's deprecated `pretrained=` argument; pnet_rand=True means
            # "no download", the weights are loaded below.
            warnings.filterwarnings("ignore", category=UserWarning, module=r"torchvision\.models\._utils")
            model = lpips_package.LPIPS(net=net, version="0.1", pretrained=True, pnet_rand=True, verbose=False)
        self.net_name = net
        self.weights_used = self._load_trunk(model, net, str(backbone_weights), override)
        model.requires_grad_(False).eval()
        self._model = (model,)  # a tuple: not a registered submodule, so never in any state_dict

    @property
    def model(self) -> nn.Module:
        """The wrapped ``lpips.LPIPS`` network."""
        return self._model[0]

    @staticmethod
    def _load_trunk(model: nn.Module, net: str, weights: str, override: str) -> str:
        what = {"alex": "LPIPS AlexNet trunk", "vgg": "LPIPS VGG16 trunk"}[net]
        if weights == "random":
            warn_random(what)
            return "random"
        path = resolve_pretrained(what, _trunk_url(net), override, weights)
        state = load_weights(path, what, override, _trunk_url(net))  # unsafe or damaged: one line, never unpickled
        # lpips splits torchvision's `features` into slice1..5 keeping the original layer indices as names.
        target = {}
        for key in model.net.state_dict():
            _slice, index, param = key.split(".")
            source = f"features.{index}.{param}"
            if source not in state:
                raise WeightsUnavailableError(
                    f"{path} is not a torchvision {net} state dict (no {source!r}); pass the file torchvision "
                    f"downloads ({_trunk_url(net).rsplit('/', 1)[-1]}) or {override}=random"
                )
            target[key] = state[source]
        model.net.load_state_dict(target, strict=True)
        return str(path)

    def _apply(self, fn, recurse: bool = True):
        # .to(device) / .cuda() / .double() reach the hidden network too.
        self._model[0]._apply(fn)
        return super()._apply(fn, recurse)

    def train(self, mode: bool = True) -> LPIPSMetric:
        # The calibrated layers use dropout: the metric must stay in eval mode whatever its parent does.
        super().train(mode)
        self._model[0].eval()
        return self

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        with torch.no_grad():
            return self._model[0](pred.float(), target.float(), normalize=False).flatten()

    def extra_repr(self) -> str:
        return f"net={self.net_name!r}, version='0.1', weights={self.weights_used!r}"


def build_lpips(
    lpips: bool | str | LPIPSMetric | None,
    net: str = "alex",
    backbone_weights: str = "imagenet",
    override: str = "lpips.backbone_weights",
) -> LPIPSMetric | None:
    """``True`` -> an :class:`LPIPSMetric` (errors propagate); ``"auto"`` -> one if the trunk weights can be had,
    else ``None`` with a warning; ``False``/``None`` -> ``None``; an instance is returned as is."""
    if isinstance(lpips, LPIPSMetric):
        return lpips
    if lpips is None or lpips is False or (isinstance(lpips, str) and lpips.lower() in ("false", "none", "off")):
        return None
    if isinstance(lpips, str) and lpips.lower() == "auto":
        try:
            return LPIPSMetric(net, backbone_weights, override)
        except WeightsUnavailableError as err:
            warnings.warn(
                f"LPIPS disabled (lpips='auto', training's default model.val_lpips=auto): "
                f"{str(err).split(' Copy that file there')[0]} Validation runs without LPIPS until that file is there; "
                "model.val_lpips=false skips LPIPS without this warning, model.val_lpips=true makes the file required.",
                stacklevel=3,
            )
            return None
    if lpips is True or (isinstance(lpips, str) and lpips.lower() == "true"):
        return LPIPSMetric(net, backbone_weights, override)
    raise ValueError(f"lpips must be true, false, 'auto' or an LPIPSMetric, got {lpips!r}")
