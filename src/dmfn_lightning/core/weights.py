"""Finding pretrained backbone weights without surprising anyone.

Pretrained ImageNet backbones (VGG19 for the losses, AlexNet for LPIPS) are read from torchvision's cache
(``$TORCH_HOME/hub/checkpoints``) or from an explicit file. When the file is absent we try torchvision's download
once (unless ``DMFN_OFFLINE=1``); when that fails too we stop with a message naming the file, where to put it and
the override that opts into random weights. Random weights are never a silent fallback.
"""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path

import torch

from dmfn_lightning.core.errors import WeightsUnavailableError


def torch_hub_checkpoint_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` (torchvision's download cache)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _try_download(url: str, target: Path, timeout: float) -> str | None:
    if os.environ.get("DMFN_OFFLINE", "0") not in ("", "0"):
        return "DMFN_OFFLINE is set"
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)  # a closed network must cost seconds, not a hang
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(target), progress=True)
    except Exception as exc:  # any network or disk failure means "not downloadable"
        return f"{type(exc).__name__}: {exc}"
    finally:
        socket.setdefaulttimeout(previous)
    return None


def resolve_pretrained(
    what: str, url: str, override: str, weights: str = "imagenet", download_timeout: float = 10.0
) -> Path:
    """Path of the pretrained file for ``weights`` ("imagenet" or a file path); raise if it cannot be had.

    ``what`` names the network in messages, ``override`` is the config key that opts into random weights.
    """
    if weights != "imagenet":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsUnavailableError(
                f"{what} weights file {str(path)!r} does not exist. Pass an existing file, "
                f"'imagenet' (torchvision's cache), or {override}=random for untrained weights."
            )
        return path
    target = torch_hub_checkpoint_dir() / url.rsplit("/", 1)[-1]
    if target.is_file():
        return target
    reason = _try_download(url, target, download_timeout)
    if reason is None and target.is_file():
        return target
    raise WeightsUnavailableError(
        f"ImageNet weights for {what} are not available: expected the file {target} "
        f"(torchvision's cache, $TORCH_HOME/hub/checkpoints) and could not download {url} ({reason}). "
        f"Copy that file there, point {override}=/path/to/{target.name}, "
        f"or run with {override}=random to use untrained weights (results are then not comparable to the paper)."
    )


def warn_random(what: str) -> None:
    """The loud warning every random-weight fallback must print."""
    msg = (
        f"{what} uses RANDOM weights: the perceptual losses/metrics are not the paper's. "
        "Fine for smoke tests and the offline demo; not for reproducing results."
    )
    warnings.warn(msg, stacklevel=3)
