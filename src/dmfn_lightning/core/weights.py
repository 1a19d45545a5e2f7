"""Finding pretrained backbone weights without surprising anyone.

Pretrained ImageNet backbones (VGG19 for the losses, AlexNet for LPIPS) are read from torchvision's cache
(``$TORCH_HOME/hub/checkpoints``) or from an explicit file. When the file is absent we try torchvision's download
once (unless ``DMFN_OFFLINE=1``); when that fails too we stop with a message naming the file, where to put it and
the override that opts into random weights. Random weights are never a silent fallback.

A weights file is read with :func:`load_weights` (``torch.load(weights_only=True)``): a damaged file, or one that
holds pickled Python objects (which could run code), stops with one line naming the file and what to do; the
classification of such failures (:func:`weights_only_refusal`) is shared with the checkpoint loader
(:func:`dmfn_lightning.models.torch_files.safe_load`).
"""

from __future__ import annotations

import os
import pickle
import re
import socket
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from dmfn_lightning.core.errors import CheckpointError, WeightsUnavailableError

__all__ = [
    "TORCH_LOAD_ERRORS",
    "load_weights",
    "resolve_pretrained",
    "torch_hub_checkpoint_dir",
    "warn_random",
    "weights_only_refusal",
]

# What torch.load raises for a file it cannot read (besides pickle.UnpicklingError): a text file or random bytes can
# fail anywhere inside the legacy unpickler (KeyError for a text file), a damaged zip archive with a RuntimeError.
TORCH_LOAD_ERRORS = (
    RuntimeError,
    EOFError,
    zipfile.BadZipFile,
    OSError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
)
_GLOBAL_NAME = re.compile(r"GLOBAL\s+([\w.]+)", re.IGNORECASE)


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


def _unpickler_reason(text: str) -> str:
    """The line of a weights-only refusal that says what was refused (torch wraps it in a long notice)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if "unsupported global" in ln.lower():
            return ln.removeprefix("WeightsUnpickler error:").strip()
    for i, ln in enumerate(lines):
        if "WeightsUnpickler error" in ln:
            rest = ln.split("WeightsUnpickler error:", 1)[-1].strip()
            return rest or (lines[i + 1] if i + 1 < len(lines) else "")
    return lines[0] if lines else ""


def _looks_like_torch_file(path: Path) -> bool:
    # torch.save writes a zip archive (b"PK"), or a pickle (protocol opcode 0x80) with the legacy format.
    try:
        with path.open("rb") as f:
            head = f.read(2)
    except OSError:
        return False
    return head.startswith((b"PK", b"\x80"))


def weights_only_refusal(path: str | os.PathLike, exc: pickle.UnpicklingError) -> tuple[str, str] | None:
    """What ``torch.load(weights_only=True)`` refused in ``path``: ``(global, reason)`` (the pickled global's dotted
    name, ``""`` when torch does not name one; the reason is torch's own line, never its advice to switch
    ``weights_only`` off), or ``None`` when the file is no pickle at all (damaged, or another kind of file)."""
    text = str(exc)
    reason = _unpickler_reason(text)
    refused = "unsupported global" in text.lower() or "WeightsUnpickler" in text or "Weights only load" in text
    if not refused or ("Unsupported operand" in reason and not _looks_like_torch_file(Path(path))):
        return None
    name = _GLOBAL_NAME.search(reason)
    return (name[1] if name else ""), reason.split(". ")[0].rstrip(".")


def _first_sentence(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text.split('. ')[0].rstrip('.')}" if text else type(exc).__name__


def load_weights(path: str | os.PathLike, what: str, override: str, url: str | None = None) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, for the pretrained weights of ``what``.

    A file that holds pickled Python objects (which could run code when unpickled) or that cannot be read
    (truncated, damaged, another kind of file, not a state dict) raises :class:`CheckpointError` with one line
    naming the file and what to do: use torchvision's state-dict file (``url`` names it), or ``override=random``.
    """
    path = Path(path)
    wanted = f"torchvision's {url.rsplit('/', 1)[-1]}" if url else "a state dict file"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        refusal = weights_only_refusal(path, exc)
        if refusal is None:
            raise _corrupt(path, what, override, wanted, "neither a zip archive nor a pickle") from exc
        name, reason = refusal
        held = f"a pickled `{name}`" if name else reason
        raise CheckpointError(
            f"{what} weights file {path} is unsafe: it holds Python objects ({held}) that could run arbitrary code "
            f"when unpickled, so it was refused (torch.load(weights_only=True)); pass {wanted} from a source you "
            f"trust, or {override}=random for untrained weights"
        ) from exc
    except TORCH_LOAD_ERRORS as exc:
        raise _corrupt(path, what, override, wanted, _first_sentence(exc)) from exc
    if not isinstance(state, Mapping):
        raise _corrupt(path, what, override, wanted, f"it holds a {type(state).__name__}, not a state dict")
    return state


def _corrupt(path: Path, what: str, override: str, wanted: str, problem: str) -> CheckpointError:
    return CheckpointError(
        f"{what} weights file {path} is corrupt or not a PyTorch file ({problem}); replace it with {wanted} (a "
        f"partly downloaded file in torchvision's cache: delete it and rerun), or pass {override}=random for "
        "untrained weights"
    )
