"""Weights bundles: a trained DMFN as a folder of safetensors weights, a JSON config and a model card.

A bundle is what travels: to a colleague, to the Hugging Face Hub, into a fine-tuning run. It holds

* ``model.safetensors``: the generator (the EMA copy when the run kept one);
* ``discriminator.safetensors`` (optional): the global-local discriminator, for fine-tuning;
* ``config.json``: everything needed to rebuild both networks (``generator``: block, blocks, channels, upsample
  init; ``discriminator``: image size, channels, spectral norm) and where the weights came from (``training``:
  image size, mask kind, data, iterations, loss weights, VGG normalisation and weights; ``provenance``: library
  version, git commit, the source file, the parent bundle of a fine-tune), the evaluation when one was run and the
  license;
* ``README.md``: the model card, the same facts in words (:func:`model_card`).

Nothing in a bundle is unpickled: the weights are safetensors (tensors and a JSON header only), the config is
JSON, and :func:`load_bundle` refuses a bundle folder that holds a pickle-based file (``.pt``, ``.pth``,
``.bin``, ``.ckpt``, ``.pkl``) rather than guessing which file is meant. A bundle reference is a local folder or
a Hugging Face Hub model id (``owner/name``), looked up offline first (:func:`resolve_bundle`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from dmfn_lightning.core.errors import CheckpointError
from dmfn_lightning.core.files import atomic_write_bytes, current_umask
from dmfn_lightning.core.provenance import git_commit, library_version

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "CARD_FILE",
    "CONFIG_FILE",
    "DISCRIMINATOR_FILE",
    "GENERATOR_FILE",
    "PICKLE_SUFFIXES",
    "Bundle",
    "is_bundle",
    "load_bundle",
    "looks_like_hub_id",
    "model_card",
    "resolve_bundle",
    "save_bundle",
]

BUNDLE_FORMAT = "dmfn_lightning.bundle"
BUNDLE_VERSION = 1
GENERATOR_FILE = "model.safetensors"
DISCRIMINATOR_FILE = "discriminator.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
# Files whose loading would unpickle Python objects: never part of a bundle.
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle")
# What a Hub download fetches: the bundle's own files and nothing else (a repo's pickles are never downloaded).
_HUB_PATTERNS = [CONFIG_FILE, CARD_FILE, GENERATOR_FILE, DISCRIMINATOR_FILE]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
DEFAULT_LICENSE = "mit"


# ----------------------------------------------------------------------------------------------------------------
# finding a bundle


def looks_like_hub_id(reference: str | os.PathLike) -> bool:
    """Whether ``reference`` (that is not a local path) reads as a Hub model id ``owner/name``: one slash, no
    file suffix of a weights file (``outputs/generator.pt`` is a missing file, not a repository)."""
    text = str(reference)
    return bool(_HUB_ID.match(text)) and not text.lower().endswith((*PICKLE_SUFFIXES, ".safetensors", ".onnx"))


def is_bundle(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a local folder holding a bundle's ``config.json``."""
    return Path(path).expanduser().is_dir() and (Path(path).expanduser() / CONFIG_FILE).is_file()


def _hub_error(reference: str, exc: Exception, local_files_only: bool) -> CheckpointError:
    offline = local_files_only or type(exc).__name__ in ("LocalEntryNotFoundError", "OfflineModeIsEnabled")
    if offline:
        return CheckpointError(
            f"{reference!r} is neither a file or folder here nor a Hub model in the local cache (offline: "
            f"{type(exc).__name__}); pass a local bundle folder, or download it once with network access"
        )
    return CheckpointError(
        f"{reference!r} is not a file or folder here, and fetching it as a Hub model failed: "
        f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    )


def resolve_bundle(
    reference: str | os.PathLike,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> Path:
    """The local folder of the bundle ``reference``: a local folder as it is, else a Hub model id, taken from the
    local Hugging Face cache when it is there and downloaded only when it is not (and ``local_files_only`` is
    off; ``DMFN_OFFLINE=1`` and ``HF_HUB_OFFLINE=1`` also keep it offline). Only the bundle's own files are
    downloaded."""
    path = Path(reference).expanduser()
    if path.exists():
        if not path.is_dir():
            raise CheckpointError(f"{str(path)!r} is a file, not a bundle folder ({CONFIG_FILE} + {GENERATOR_FILE})")
        return path
    if not looks_like_hub_id(reference):
        raise CheckpointError(f"{str(reference)!r} does not exist (neither a file, a bundle folder nor a Hub id)")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - huggingface_hub is a dependency
        raise CheckpointError(f"{reference!r} looks like a Hub id, but huggingface_hub is not installed") from exc
    # DMFN_OFFLINE is the library's own switch for "never download" (as for backbone weights).
    local_files_only = local_files_only or os.environ.get("DMFN_OFFLINE", "0") not in ("", "0")
    common = {"repo_id": str(reference), "revision": revision, "cache_dir": cache_dir, "token": token}
    try:
        return Path(snapshot_download(**common, allow_patterns=_HUB_PATTERNS, local_files_only=True))
    except Exception as exc:  # huggingface_hub raises many types; none may escape as a traceback
        if local_files_only:
            raise _hub_error(str(reference), exc, True) from exc
    try:
        return Path(snapshot_download(**common, allow_patterns=_HUB_PATTERNS))
    except Exception as exc:
        raise _hub_error(str(reference), exc, False) from exc


# ----------------------------------------------------------------------------------------------------------------
# reading


class Bundle:
    """A bundle read from disk: its folder, its ``config.json`` and its weights (read lazily, without pickle)."""

    def __init__(self, folder: Path, config: dict[str, Any]) -> None:
        self.folder = folder
        self.config = config

    @property
    def has_discriminator(self) -> bool:
        return (self.folder / DISCRIMINATOR_FILE).is_file()

    @property
    def training(self) -> dict[str, Any]:
        """What the generator was trained on (``config.json``'s ``training``)."""
        training = self.config.get("training")
        return dict(training) if isinstance(training, Mapping) else {}

    def tensors(self, filename: str) -> dict[str, Tensor]:
        """The tensors of one of the bundle's safetensors files."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = self.folder / filename
        if not path.is_file():
            raise CheckpointError(f"bundle {self.folder} has no {filename}")
        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path} is not a readable safetensors file (truncated or damaged?): {exc}") from exc

    def network_config(self, network: str) -> dict[str, Any]:
        """The constructor arguments of ``network`` (``"generator"`` or ``"discriminator"``) in ``config.json``."""
        config = self.config.get(network)
        if not isinstance(config, Mapping):
            raise CheckpointError(f"{self.folder / CONFIG_FILE} has no {network!r} settings")
        return dict(config)

    def discriminator_state(self) -> dict[str, Tensor]:
        """The discriminator's state dict (``discriminator.safetensors``)."""
        if not self.has_discriminator:
            raise CheckpointError(
                f"bundle {self.folder} has no {DISCRIMINATOR_FILE}: it was written without the discriminator "
                "(export it from the training checkpoint, or from the authors' *_D.pth with --discriminator)"
            )
        return self.tensors(DISCRIMINATOR_FILE)

    def parent_record(self, reference: str) -> dict[str, Any]:
        """What a bundle fine-tuned from this one records of it: where it was, its config and its provenance."""
        record = {"reference": reference}
        for key in ("generator", "discriminator", "training", "provenance"):
            if key in self.config:
                record[key] = self.config[key]
        return record


def _pickles_in(folder: Path) -> list[str]:
    return sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in PICKLE_SUFFIXES
    )


def _inside(folder: Path) -> str:
    """A hint naming what a run folder given in place of a checkpoint holds that would load."""
    for candidate in (folder / "bundle", folder / "generator.pt", folder / "checkpoints" / "last.ckpt"):
        if (candidate / CONFIG_FILE).is_file() or candidate.is_file():
            return f" (it holds {candidate.relative_to(folder)}: pass {candidate})"
    return ""


def load_bundle(
    reference: str | os.PathLike,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> Bundle:
    """Open the bundle ``reference`` (a folder or a Hub id, :func:`resolve_bundle`): its ``config.json`` is
    checked, and a folder holding pickle-based files is refused."""
    folder = resolve_bundle(reference, revision, cache_dir, local_files_only, token)
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(
            f"checkpoint {str(folder)!r} is a folder but not a weights bundle (it has no {CONFIG_FILE}); expected a "
            f"bundle folder or a checkpoint file (generator.pt, a .ckpt or the authors' weights){_inside(folder)}"
        )
    pickles = _pickles_in(folder)
    if pickles:
        raise CheckpointError(
            f"bundle {folder} holds pickle-based file(s) {', '.join(pickles)}: a bundle carries weights only as "
            f"safetensors, and loading a pickle can run code. Remove them from the folder (or load such a file "
            "by its own path, which reads it with torch.load(weights_only=True))"
        )
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{config_path} is not readable JSON: {exc}") from exc
    if not isinstance(config, dict) or config.get("format") != BUNDLE_FORMAT:
        raise CheckpointError(f"{config_path} is not a dmfn_lightning bundle config (format {BUNDLE_FORMAT!r})")
    version = config.get("version")
    if not isinstance(version, int) or version > BUNDLE_VERSION:
        raise CheckpointError(
            f"{config_path} is bundle version {version}; this dmfn_lightning reads up to {BUNDLE_VERSION} "
            "(upgrade dmfn_lightning)"
        )
    return Bundle(folder, config)


# ----------------------------------------------------------------------------------------------------------------
# writing


def _safetensors_bytes(module_or_state: nn.Module | Mapping[str, Tensor], kind: str) -> bytes:
    from safetensors.torch import save

    state = module_or_state.state_dict() if isinstance(module_or_state, nn.Module) else module_or_state
    # safetensors stores each tensor's own bytes: detached, contiguous CPU copies (no shared storage).
    tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()}
    return save(tensors, metadata={"format": "pt", "content": f"{BUNDLE_FORMAT}.{kind}"})


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def save_bundle(
    path: str | os.PathLike,
    generator: nn.Module,
    discriminator: nn.Module | Mapping[str, Tensor] | None = None,
    discriminator_config: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    evaluation: Mapping[str, Any] | None = None,
    license: str = DEFAULT_LICENSE,
) -> Path:
    """Write a bundle folder at ``path``, as a whole: it is built in a temporary folder beside ``path`` and
    renamed into place, so a crash leaves either the old bundle or the new one, never a mix.

    ``generator`` is a :class:`~dmfn_lightning.models.DMFNGenerator` (its ``config`` rebuilds it);
    ``discriminator`` a :class:`~dmfn_lightning.models.GlobalLocalDiscriminator` or its state dict (then
    ``discriminator_config`` gives its constructor arguments). ``training`` says what the generator was trained on
    (default: the generator's own ``metadata``), ``provenance`` is added to the library version, git commit and
    time, ``evaluation`` is ``{"metrics": {name: value}, "conventions": {name: text}, ...}`` when one was run.
    """
    target = Path(path).expanduser()
    config: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "generator": dict(getattr(generator, "config", {})),
        "discriminator": None,
        "training": dict(training if training is not None else (getattr(generator, "metadata", None) or {})),
        "provenance": {
            "library_version": library_version(),
            "git_commit": git_commit(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **dict(provenance or {}),
        },
        "evaluation": dict(evaluation) if evaluation else None,
        "license": license,
    }
    config["training"].pop("bundle", None)  # where the source bundle lay is provenance, not a training fact
    if not config["generator"]:
        raise CheckpointError("save_bundle needs a DMFNGenerator (a module with a .config)")
    if discriminator is not None:
        if isinstance(discriminator, nn.Module):
            discriminator_config = discriminator_config or getattr(discriminator, "config", None)
        if not discriminator_config:
            raise CheckpointError("a discriminator state dict needs its discriminator_config to be rebuilt")
        config["discriminator"] = dict(discriminator_config)
    config = _jsonable(config)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp makes 0700; a bundle folder is as shared as any
        atomic_write_bytes(staging / GENERATOR_FILE, _safetensors_bytes(generator, "generator"))
        if discriminator is not None:
            atomic_write_bytes(staging / DISCRIMINATOR_FILE, _safetensors_bytes(discriminator, "discriminator"))
        atomic_write_bytes(staging / CONFIG_FILE, (json.dumps(config, indent=2) + "\n").encode())
        atomic_write_bytes(staging / CARD_FILE, model_card(config).encode())
        old = None
        if target.exists():
            if not is_bundle(target):
                raise CheckpointError(f"{target} exists and is not a bundle: it is left as it is; choose another path")
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(staging, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


# ----------------------------------------------------------------------------------------------------------------
# the model card


def _describe_training(training: Mapping[str, Any]) -> list[str]:
    lines = []
    if training.get("image_size"):
        size = training["image_size"]
        lines.append(f"- Trained on {size}x{size} crops; at other sizes its results may be worse.")
    if training.get("data"):
        lines.append(f"- Data: `{training['data']}`.")
    if training.get("mask"):
        lines.append(f"- Holes: `{training['mask']}`.")
    if training.get("iterations") is not None:
        lines.append(f"- Iterations (generator/discriminator updates): {training['iterations']}.")
    if isinstance(training.get("loss"), Mapping):
        weights = ", ".join(f"{k}={v}" for k, v in training["loss"].items())
        lines.append(f"- Loss weights: {weights}.")
    if training.get("vgg_normalization"):
        lines.append(f"- VGG19 input normalisation in training: `{training['vgg_normalization']}`.")
    if training.get("vgg_weights"):
        lines.append(f"- VGG19 weights in training: `{training['vgg_weights']}`.")
    if training.get("ema") is not None:
        lines.append(f"- Weights: {'the EMA copy of the generator' if training['ema'] else 'the generator itself'}.")
    return lines or ["- Not recorded (converted from a file that does not say)."]


def _evaluation_table(evaluation: Mapping[str, Any]) -> list[str]:
    metrics = evaluation.get("metrics")
    if not isinstance(metrics, Mapping) or not metrics:
        return []
    conventions = evaluation.get("conventions") if isinstance(evaluation.get("conventions"), Mapping) else {}
    lines = ["", "## Evaluation", ""]
    if evaluation.get("setting"):
        lines += [str(evaluation["setting"]), ""]
    lines += ["| metric | value | convention |", "| --- | ---: | --- |"]
    for name, value in metrics.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        convention = str(conventions.get(name, "")).replace("|", "\\|")  # "|" would end the table cell
        lines.append(f"| {name} | {shown} | {convention} |")
    return lines


def model_card(config: Mapping[str, Any]) -> str:
    """The bundle's ``README.md``: Hub front matter, the architecture and training in words, the evaluation with
    its metric conventions when there is one, intended use, and how to load it."""
    generator = config.get("generator") or {}
    training = config.get("training") or {}
    provenance = config.get("provenance") or {}
    block = generator.get("block", "dmfb")
    lines = [
        "---",
        f"license: {config.get('license') or DEFAULT_LICENSE}",
        "library_name: dmfn_lightning",
        "pipeline_tag: image-to-image",
        "tags: [image-inpainting, dmfn, gan, safetensors]",
        "---",
        "",
        "# DMFN inpainting generator",
        "",
        "Fills holes in photos: DMFN (Hui, Li, Wang, Gao, *Image Fine-grained Inpainting*, arXiv:2002.02609), trained "
        "with dmfn_lightning.",
        "",
        "## Model",
        "",
        f"- Generator: {generator.get('num_blocks', '?')} `{block}` blocks, {generator.get('base_channels', '?')} "
        f"base channels, transposed convolutions initialised as `{generator.get('upsample_init', 'pytorch')}`.",
    ]
    disc = config.get("discriminator")
    if disc:
        lines.append(
            f"- Discriminator included (`{DISCRIMINATOR_FILE}`): global-local, for {disc.get('image_size')} px "
            f"images, spectral norm {'on' if disc.get('spectral_norm') else 'off'}; use it to fine-tune."
        )
    lines += ["", "## Training", "", *_describe_training(training)]
    if isinstance(config.get("evaluation"), Mapping):
        lines += _evaluation_table(config["evaluation"])
    lines += [
        "",
        "## Intended use",
        "",
        "Filling masked regions of photos similar to the training data (scenes, faces, ...) at about the training "
        "size, for research and image editing. The output is a plausible guess, not a reconstruction: do not use it "
        "to restore evidence or to make claims about what a hidden region showed.",
        "",
        "## Use",
        "",
        "```python",
        "from dmfn_lightning.models import DMFNGenerator",
        "",
        'generator = DMFNGenerator.from_pretrained("path/to/this/folder")  # or a Hub id, owner/name',
        "```",
        "",
        "or `dmfn-inpaint --checkpoint path/to/this/folder --image photo.png --mask hole.png --output out/`.",
        "",
        "## Provenance",
        "",
    ]
    for key in ("library_version", "git_commit", "created", "source"):
        if provenance.get(key):
            lines.append(f"- {key.replace('_', ' ')}: `{provenance[key]}`")
    parent = provenance.get("parent")
    if isinstance(parent, Mapping):
        lines.append(f"- fine-tuned from: `{parent.get('reference')}`")
    lines.append(f"- license: {config.get('license') or DEFAULT_LICENSE}")
    return "\n".join(lines) + "\n"
