"""Saving and loading generators: our exported file, Lightning checkpoints, and the authors' released weights.

Every loader reads through :func:`~dmfn_lightning.models.torch_files.safe_load` (``torch.load(weights_only=True)``)
so a file from a stranger cannot run code, and turns the
ways a file can be wrong (missing, truncated, another block variant, not a generator at all) into one
:class:`CheckpointError` that names the file and the mismatching keys.

A generator file records what its generator was trained on (:func:`training_metadata`: the training image size,
mask and data), read back into the loaded generator's ``metadata`` from a generator.pt or a Lightning checkpoint's
run config; :func:`recorded_image_size` reads the size (``None`` for older files, which load as before) and
:func:`warn_if_other_size` warns once when a generator runs at another size than it was trained at.
"""

from __future__ import annotations

import os
import re
import warnings
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dmfn_lightning.core.errors import CheckpointError
from dmfn_lightning.models.generator import DMFNGenerator
from dmfn_lightning.models.torch_files import atomic_torch_save, safe_load

EXPORT_FORMAT = "dmfn_lightning.generator"
EXPORT_VERSION = 1

# Authors' release (models/block.py, models/architecture.py) -> ours. Everything not listed keeps its name.
_RELEASED_RENAMES = (
    (re.compile(r"^blocks\.(\d+)\.c1\.(weight|bias)$"), r"blocks.\1.c1.conv.\2"),
    (re.compile(r"^blocks\.(\d+)\.c2\.(weight|bias)$"), r"blocks.\1.fusion.\2"),
    (re.compile(r"^blocks\.(\d+)\.d([1-4])\.(weight|bias)$"), None),  # d_k -> branches.(k-1), below
)


def convert_released_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename the released generator keys (``blocks.N.c1/d1..d4/c2``) to ``DMFNGenerator(block="released")``."""
    converted = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        match = _RELEASED_RENAMES[2][0].match(key)
        if match:
            key = f"blocks.{match[1]}.branches.{int(match[2]) - 1}.{match[3]}"
        else:
            for pattern, repl in _RELEASED_RENAMES[:2]:
                key = pattern.sub(repl, key)
        converted[key] = value
    return converted


def _num_blocks(state: Mapping[str, Tensor]) -> int:
    ids = {int(m[1]) for k in state if (m := re.match(r"^blocks\.(\d+)\.", k))}
    return max(ids) + 1 if ids else 0


def state_mismatch(own: Mapping[str, Tensor], state: Mapping[str, Tensor]) -> str:
    """'' when ``state`` fits ``own`` key for key and shape for shape, else a summary naming the bad keys."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if tuple(state[k].shape) != tuple(own[k].shape)
    ]
    parts = []
    for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatch", shapes)):
        if keys:
            more = f" (+{len(keys) - 6} more)" if len(keys) > 6 else ""
            parts.append(f"{label}: {', '.join(keys[:6])}{more}")
    return "; ".join(parts)


def load_state_into(model: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` whose error names the missing, unexpected and mis-shaped keys."""
    mismatch = state_mismatch(model.state_dict(), state)
    if mismatch:
        raise CheckpointError(
            f"{source} does not match a DMFNGenerator{model.config if hasattr(model, 'config') else ''}: "
            f"{mismatch}. Was it trained with another model/block variant?"
        )
    model.load_state_dict(state, strict=True)


# ----------------------------------------------------------------------------------------------------------------
# what a generator was trained on


def _class_name(target: Any) -> str | None:
    return (str(target).rpartition(".")[2] or None) if target else None


def training_metadata(run_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a run config (``DMFNModule.run_config``, a checkpoint's ``hyper_parameters.config``) says about the
    images a generator was trained on, for its file's metadata (:data:`TRAINING_KEYS`): ``image_size`` (the side
    of its square training crops, ``data.image_size``), ``mask`` (the training mask generator's class, e.g.
    ``RandomBoxMask``) and ``data`` (the data folder's name, e.g. ``paris``, else the data module's class). Keys
    the config does not give are left out; ``{}`` for no config."""
    if not isinstance(run_config, Mapping):
        return {}
    out: dict[str, Any] = {}
    data = run_config.get("data")
    if isinstance(data, Mapping):
        size = data.get("image_size")
        if isinstance(size, int) and not isinstance(size, bool) and size > 0:
            out["image_size"] = size
        root = data.get("root")
        name = Path(root).name if isinstance(root, str) and root else _class_name(data.get("_target_"))
        if name:
            out["data"] = name
    mask = run_config.get("mask")
    if isinstance(mask, Mapping) and (name := _class_name(mask.get("_target_"))):
        out["mask"] = name
    return out


TRAINING_KEYS = ("image_size", "mask", "data")


def recorded_image_size(generator: Any) -> int | None:
    """The training image size recorded in ``generator``'s file (its ``metadata``, set by :func:`load_generator`
    from a generator.pt or a Lightning checkpoint), or ``None`` when the file does not say (files written before it
    was recorded, the authors' release, a bare module)."""
    metadata = getattr(generator, "metadata", None)
    if isinstance(metadata, Mapping):
        for key in ("image_size", "training_size"):
            value = metadata.get(key)
            # bool is an int subclass; a recorded True must not become a 1-pixel size.
            if isinstance(value, int) and not isinstance(value, bool) and value >= 8:
                return value
    return None


_SIZE_WARNINGS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def warn_if_other_size(
    generator: Any, height: int | None, width: int | None = None, warn: Callable[[str], object] | None = None
) -> str | None:
    """Warn, once per generator and size, when ``generator`` is about to run on ``height x width`` images (square
    when ``width`` is left out) but its file records that it was trained at another size
    (:func:`recorded_image_size`): its results there are not the ones it was trained to give. ``warn`` receives
    the one-line message (default :func:`warnings.warn`); returns the message, or ``None`` when there is nothing to
    say (the sizes agree, or either is unknown)."""
    trained = recorded_image_size(generator)
    if trained is None or height is None:
        return None
    width = height if width is None else width
    if (int(height), int(width)) == (trained, trained):
        return None
    message = (
        f"the generator was trained on {trained}x{trained} images but runs on {int(width)}x{int(height)} ones here; "
        f"its results may be worse than at {trained} px"
    )
    try:
        said = _SIZE_WARNINGS.setdefault(generator, set())
    except TypeError:  # not weakly referenceable: say it every time rather than never
        said = set()
    if (height, width) not in said:
        said.add((height, width))
        (warn or (lambda text: warnings.warn(text, stacklevel=3)))(message)
    return message


# ----------------------------------------------------------------------------------------------------------------
# generator files


def export_generator(
    generator: DMFNGenerator | nn.Module,
    path: str | os.PathLike,
    metadata: Mapping | None = None,
    run_config: Mapping[str, Any] | None = None,
) -> Path:
    """Write a small generator-only file (weights + constructor config) for inference, atomically.

    ``generator`` is a generator, or a training module (anything with ``eval_generator`` and ``run_config``, as
    :class:`~dmfn_lightning.module.DMFNModule`), whose evaluation generator (the EMA copy when enabled) is written.
    The metadata records what the generator was trained on (:func:`training_metadata`: image size, mask, data) from
    ``run_config`` (default: the module's), else what the generator's own file recorded (a loaded generator
    written again keeps it); ``metadata`` is added on top.
    """
    if run_config is None:
        run_config = getattr(generator, "run_config", None)
    if not isinstance(generator, DMFNGenerator) and hasattr(generator, "eval_generator"):
        generator = generator.eval_generator
    own = getattr(generator, "metadata", None)
    recorded = {k: own[k] for k in TRAINING_KEYS if k in own} if isinstance(own, Mapping) else {}
    payload = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "config": dict(generator.config),
        "metadata": {**recorded, **training_metadata(run_config), **dict(metadata or {})},
        "state_dict": {k: v.detach().cpu() for k, v in generator.state_dict().items()},
    }
    atomic_torch_save(payload, path)
    return Path(path)


def generator_state_from_lightning(ckpt: Mapping[str, Any], prefer_ema: bool = True) -> tuple[dict, dict]:
    """(generator config, generator state dict) from a ``DMFNModule`` Lightning checkpoint (EMA weights first)."""
    state = ckpt["state_dict"]
    prefixes = ("generator_ema.shadow.", "generator.") if prefer_ema else ("generator.",)
    for prefix in prefixes:
        sub = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
        if sub:
            break
    else:
        raise CheckpointError("the checkpoint's state_dict has no 'generator.' weights: not a DMFNModule checkpoint")
    config = dict(ckpt.get("dmfn", {}).get("generator", {}))
    if not config:
        config = {
            "block": "dmfb",
            "num_blocks": _num_blocks(sub),
            "base_channels": sub["encoder.0.conv.weight"].shape[0],
        }
    return config, sub


def _run_config_of_checkpoint(ckpt: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """A Lightning checkpoint's run config: ``hyper_parameters.config``, else (older files) ``dmfn.config``."""
    for outer in ("hyper_parameters", "dmfn"):
        node = ckpt.get(outer)
        if isinstance(node, Mapping) and isinstance(node.get("config"), Mapping):
            return node["config"]
    return None


def load_generator(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", prefer_ema: bool = True
) -> DMFNGenerator:
    """Load a generator from any of: an exported file, a Lightning checkpoint, or the authors' released weights.

    The result is in eval mode on ``map_location``. Its ``metadata`` attribute holds the file's provenance: an
    exported generator's metadata, a Lightning checkpoint's ``global_step`` and what its run config says the
    generator was trained on (:func:`training_metadata`), or ``{}``.
    """
    source = str(path)
    obj = safe_load(path, map_location="cpu")
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{source} holds a {type(obj).__name__}, not a checkpoint dictionary")
    metadata: dict[str, Any] = {}
    if obj.get("format") == EXPORT_FORMAT:
        config, state = dict(obj["config"]), obj["state_dict"]
        metadata = dict(obj.get("metadata") or {})
    elif "state_dict" in obj and any(str(k).startswith("generator") for k in obj["state_dict"]):
        config, state = generator_state_from_lightning(obj, prefer_ema)
        if isinstance(obj.get("global_step"), int):
            metadata = {"global_step": obj["global_step"]}
        metadata.update(training_metadata(_run_config_of_checkpoint(obj)))
    else:
        raw = obj
        for container in ("state_dict", "params", "netG", "model"):
            if container in raw and isinstance(raw[container], Mapping):
                raw = raw[container]
                break
        if not any(str(k).removeprefix("module.").startswith("encoder.0.conv.") for k in raw):
            keys = ", ".join(list(map(str, obj))[:6])
            raise CheckpointError(
                f"{source} is not a DMFN generator: expected an exported generator, a DMFNModule checkpoint or the "
                f"authors' released generator weights; its top-level keys are: {keys}"
            )
        state = convert_released_state_dict(raw)
        config = {"block": "released", "num_blocks": _num_blocks(state), "base_channels": 64}
    try:
        generator = DMFNGenerator(**config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{source} has an unusable generator config {config}: {exc}") from exc
    load_state_into(generator, state, source)
    generator.metadata = metadata
    return generator.to(map_location).eval()


# ----------------------------------------------------------------------------------------------------------------
# the authors' released discriminator, and starting a run from released (or our own) weights

# Authors' release (models/architecture.py, class Discriminator) -> GlobalLocalDiscriminator. Their conv_block keeps
# the conv as `.conv` and the BatchNorm as `.norm`; our branch layers are Sequential(conv, BatchNorm, LeakyReLU).
_RELEASED_D_RENAMES = (
    (re.compile(r"^global_model\.(\d+)\.conv\.(.+)$"), r"global_branch.layers.\1.0.\2"),
    (re.compile(r"^global_model\.(\d+)\.norm\.(.+)$"), r"global_branch.layers.\1.1.\2"),
    (re.compile(r"^global_classifier\.(.+)$"), r"global_branch.linear.\1"),
    (re.compile(r"^local_classifier\.(.+)$"), r"local_branch.linear.\1"),
    (re.compile(r"^classifier\.1\.(.+)$"), r"classifier.\1"),  # their classifier is Sequential(LeakyReLU, Linear)
)
_RELEASED_D_LOCAL = re.compile(r"^local_fea([1-5])\.(conv|norm)\.(.+)$")


def convert_released_discriminator_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Map the authors' discriminator state dict onto :class:`GlobalLocalDiscriminator` (spectral norm off).

    Keys: ``global_model.N.conv/norm`` -> ``global_branch.layers.N.0/1``, ``local_feaK.conv/norm`` ->
    ``local_branch.layers.(K-1).0/1``, ``global_classifier``/``local_classifier`` -> ``global_branch.linear``/
    ``local_branch.linear``, ``classifier.1`` -> ``classifier``; a ``module.`` (DataParallel) prefix is dropped.

    The final ``Linear(1024, 1)`` is not copied as is: the released ``forward(x_local, x_global)`` concatenates
    ``[local code, global code]`` while ours concatenates ``[global code, local code]``, so its weight's two
    input halves are swapped. The logit is then the same for the same image and local window.
    """
    converted: dict[str, Tensor] = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        match = _RELEASED_D_LOCAL.match(key)
        if match:
            key = f"local_branch.layers.{int(match[1]) - 1}.{0 if match[2] == 'conv' else 1}.{match[3]}"
        else:
            for pattern, repl in _RELEASED_D_RENAMES:
                key = pattern.sub(repl, key)
        if key == "classifier.weight":
            half = value.shape[1] // 2
            value = torch.cat([value[:, half:], value[:, :half]], dim=1)  # [local, global] -> [global, local]
        converted[key] = value
    return converted


def _unwrap_state(obj: Any, source: str) -> Mapping[str, Tensor]:
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{source} holds a {type(obj).__name__}, not a state dict")
    for container in ("state_dict", "params", "netD", "netG", "model"):
        if container in obj and isinstance(obj[container], Mapping):
            return obj[container]
    return obj


def discriminator_state_from_file(path: str | os.PathLike) -> dict[str, Tensor]:
    """The discriminator weights in ``path`` as a :class:`GlobalLocalDiscriminator` state dict.

    Accepts the authors' released ``*_D.pth`` (converted by :func:`convert_released_discriminator_state_dict`),
    a ``DMFNModule`` training checkpoint (its ``discriminator.*`` weights), or our own plain state dict.
    """
    source = str(path)
    state = _unwrap_state(safe_load(path), source)
    keys = [str(k).removeprefix("module.") for k in state]
    if any(k.startswith("discriminator.") for k in keys):
        return {k.removeprefix("discriminator."): v for k, v in state.items() if k.startswith("discriminator.")}
    if any(k.startswith("global_model.") for k in keys):
        return convert_released_discriminator_state_dict(state)
    if any(k.startswith("global_branch.") for k in keys):
        return {str(k).removeprefix("module."): v for k, v in state.items()}
    raise CheckpointError(
        f"{source} is not a DMFN discriminator: expected the authors' released D weights, a DMFNModule checkpoint "
        f"or a GlobalLocalDiscriminator state dict; its keys start with: {', '.join(keys[:6])}"
    )


def init_from_release(
    module: nn.Module,
    generator: str | os.PathLike | None = None,
    discriminator: str | os.PathLike | None = None,
) -> dict[str, str]:
    """Start a run from existing weights: the ``init_from.generator`` / ``init_from.discriminator`` config keys.

    ``module`` is a ``DMFNModule`` (anything with ``generator`` and ``discriminator``, and optionally
    ``generator_ema``). ``generator`` is any file :func:`load_generator` reads (the authors' released ``*_G.pth``,
    an exported ``generator.pt`` or a training checkpoint); ``discriminator`` any file
    :func:`discriminator_state_from_file` reads (the authors' ``*_D.pth`` included). Loading is strict: a file
    for another block variant, depth or image size is refused with the mismatching keys named. The EMA copy, when
    enabled, starts from the loaded generator. Optimizer states start fresh (the release has none); to continue a
    run of ours with its optimizers, resume with ``ckpt_path`` instead. Returns ``{"generator": path, ...}`` for
    what was loaded.
    """
    loaded: dict[str, str] = {}
    if generator is not None:
        source = str(generator)
        state = load_generator(generator).state_dict()
        mismatch = state_mismatch(module.generator.state_dict(), state)
        if mismatch:
            config = getattr(module.generator, "config", {})
            raise CheckpointError(
                f"init_from.generator={source} does not fit this run's generator {config}: {mismatch}. "
                "The authors' release is model/block=released with 8 blocks."
            )
        module.generator.load_state_dict(state, strict=True)
        ema = getattr(module, "generator_ema", None)
        if ema is not None:
            ema.shadow.load_state_dict(state, strict=True)
        loaded["generator"] = source
    if discriminator is not None:
        source = str(discriminator)
        state = discriminator_state_from_file(discriminator)
        mismatch = state_mismatch(module.discriminator.state_dict(), state)
        if mismatch:
            size = getattr(module.discriminator, "image_size", "?")
            raise CheckpointError(
                f"init_from.discriminator={source} does not fit this run's discriminator (image_size {size}): "
                f"{mismatch}. The authors' release is for 256 px images without spectral norm "
                "(data.image_size=256 model.discriminator.spectral_norm=false)."
            )
        module.discriminator.load_state_dict(state, strict=True)
        loaded["discriminator"] = source
    return loaded
