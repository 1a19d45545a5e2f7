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
from dmfn_lightning.core.iterations import iterations_of
from dmfn_lightning.models.bundles import load_bundle, looks_like_hub_id
from dmfn_lightning.models.generator import DMFNGenerator
from dmfn_lightning.models.state_dicts import load_state_into, state_mismatch
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


def bundle_training(run_config: Mapping[str, Any] | None, **facts: Any) -> dict[str, Any]:
    """What a weights bundle's ``config.json`` records under ``training``: :func:`training_metadata` plus the loss
    weights (``loss`` without its ``_target_``) and the VGG19 input normalisation of ``run_config``, and
    ``facts`` (e.g. ``iterations``, ``vgg_weights``, ``ema``)."""
    out = training_metadata(run_config)
    if isinstance(run_config, Mapping):
        loss = run_config.get("loss")
        if isinstance(loss, Mapping):
            out["loss"] = {k: v for k, v in loss.items() if k != "_target_"}
        model = run_config.get("model")
        vgg = model.get("vgg") if isinstance(model, Mapping) else None
        if isinstance(vgg, Mapping) and vgg.get("normalization"):
            out["vgg_normalization"] = vgg["normalization"]
    out.update({k: v for k, v in facts.items() if v is not None})
    return out


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


def is_bundle_reference(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a weights bundle rather than a file: an existing folder, or (when nothing exists
    there) a Hub model id ``owner/name``."""
    local = Path(path).expanduser()
    return local.is_dir() or (not local.exists() and looks_like_hub_id(path))


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
    """Load a generator from any of: a weights bundle (a folder or a Hub id, :mod:`~dmfn_lightning.models.bundles`;
    no pickle involved), an exported file, a Lightning checkpoint, or the authors' released weights.

    The result is in eval mode on ``map_location``. Its ``metadata`` attribute holds the file's provenance: an
    exported generator's metadata, a Lightning checkpoint's ``global_step`` and what its run config says the
    generator was trained on (:func:`training_metadata`), or ``{}``.
    """
    source = str(path)
    if is_bundle_reference(path):
        return DMFNGenerator.from_pretrained(path, map_location=map_location)
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
        width = state.get("encoder.0.conv.weight")
        base = int(width.shape[0]) if isinstance(width, Tensor) and width.dim() == 4 else 64  # their nf
        config = {"block": "released", "num_blocks": _num_blocks(state), "base_channels": base}
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

    Accepts a weights bundle with a ``discriminator.safetensors`` (a folder or a Hub id), the authors' released
    ``*_D.pth`` (converted by :func:`convert_released_discriminator_state_dict`),
    a ``DMFNModule`` training checkpoint (its ``discriminator.*`` weights), or our own plain state dict.
    """
    source = str(path)
    if is_bundle_reference(path):
        return load_bundle(path).discriminator_state()
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


AUTO = "auto"  # init_from.discriminator: the one stored with init_from.generator, when there is one


def discriminator_beside(generator: str | os.PathLike | None) -> str | os.PathLike | None:
    """The source of the discriminator that came with ``generator``'s weights: the same bundle when it holds a
    ``discriminator.safetensors``, the same training checkpoint (``.ckpt``); ``None`` otherwise (a generator.pt,
    the authors' ``*_G.pth``, whose D is a file of its own)."""
    if generator is None:
        return None
    if is_bundle_reference(generator):
        return generator if load_bundle(generator).has_discriminator else None
    return generator if str(generator).endswith(".ckpt") else None


def init_from_release(
    module: nn.Module,
    generator: str | os.PathLike | None = None,
    discriminator: str | os.PathLike | None = None,
) -> dict[str, str]:
    """Start a run from existing weights: the ``init_from.generator`` / ``init_from.discriminator`` config keys.

    ``module`` is a ``DMFNModule`` (anything with ``generator`` and ``discriminator``, and optionally
    ``generator_ema``). ``generator`` is anything :func:`load_generator` reads (a weights bundle, the authors'
    released ``*_G.pth``, an exported ``generator.pt`` or a training checkpoint); ``discriminator`` anything
    :func:`discriminator_state_from_file` reads (the authors' ``*_D.pth`` included), or ``"auto"``: the one that
    came with ``generator`` (:func:`discriminator_beside`; a fresh discriminator when there is none). Loading is
    strict: a file for another block variant, depth or image size is refused with the mismatching keys named. The
    EMA copy, when enabled, starts from the loaded generator. Optimizer states start fresh (the release has none);
    to continue a run of ours with its optimizers, resume with ``ckpt_path`` instead. Returns
    ``{"generator": path, ...}`` for what was loaded.
    """
    loaded: dict[str, str] = {}
    if discriminator == AUTO:
        discriminator = discriminator_beside(generator)
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


# ----------------------------------------------------------------------------------------------------------------
# what a weights bundle exported from a file records


def discriminator_config_of(state: Mapping[str, Tensor]) -> dict[str, Any]:
    """The :class:`GlobalLocalDiscriminator` arguments that ``state`` was saved from: ``base_channels`` is the
    first conv's width, ``spectral_norm`` whether its weights are parametrised, and ``image_size`` follows from the
    global branch's linear layer (``512 * base / 64`` channels of ``(size / 64)^2`` positions)."""
    first = next((v for k, v in state.items() if k.startswith("global_branch.layers.0.0.") and v.dim() == 4), None)
    linear = next((v for k, v in state.items() if k.startswith("global_branch.linear.") and v.dim() == 2), None)
    if first is None or linear is None:
        raise CheckpointError("not a GlobalLocalDiscriminator state dict (no global_branch.layers.0 / linear weights)")
    base = int(first.shape[0])
    side = round((int(linear.shape[1]) / (8 * base)) ** 0.5)
    return {
        "image_size": 64 * side,
        "base_channels": base,
        "spectral_norm": any(".parametrizations." in k for k in state),
    }


def training_of_source(path: str | os.PathLike, generator: nn.Module, prefer_ema: bool = True) -> dict[str, Any]:
    """What a bundle exported from ``path`` records under ``training``: a bundle's own record; a Lightning
    checkpoint's run config (:func:`bundle_training`: size, mask, data, loss, VGG normalisation) with its
    iterations and whether the EMA copy was taken; a generator.pt's metadata (size, mask, data, iterations, VGG
    weights); nothing for the authors' release, which records none."""
    if is_bundle_reference(path):
        return load_bundle(path).training
    metadata = dict(getattr(generator, "metadata", None) or {})
    facts = {k: metadata[k] for k in (*TRAINING_KEYS, "vgg_weights") if k in metadata}
    if isinstance(metadata.get("iteration"), int):
        facts["iterations"] = metadata["iteration"]
    elif isinstance(metadata.get("global_step"), int):
        obj = safe_load(path)
        facts["iterations"] = iterations_of(metadata["global_step"])
        keys = obj.get("state_dict", {}) if isinstance(obj, Mapping) else {}
        facts["ema"] = prefer_ema and any(str(k).startswith("generator_ema.shadow.") for k in keys)
        facts = {**bundle_training(_run_config_of_checkpoint(obj)), **facts}
    return facts


def discriminator_of_source(
    path: str | os.PathLike, discriminator: str | os.PathLike | None = None
) -> tuple[dict[str, Tensor], dict[str, Any]] | None:
    """(state dict, constructor arguments) of the discriminator to put into a bundle exported from ``path``:
    ``discriminator``'s (any file :func:`discriminator_state_from_file` reads, e.g. the authors' ``*_D.pth``) when
    given, else the one stored with the generator (:func:`discriminator_beside`), else ``None``."""
    if discriminator is None:
        discriminator = discriminator_beside(path)
        if discriminator is None:
            return None
    if is_bundle_reference(discriminator):
        bundle = load_bundle(discriminator)
        return bundle.discriminator_state(), dict(bundle.config.get("discriminator") or {})
    state = discriminator_state_from_file(discriminator)
    return state, discriminator_config_of(state)
