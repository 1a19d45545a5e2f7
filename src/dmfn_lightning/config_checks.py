"""Checks of composed configs (training and evaluation) before any work starts: one clear line per problem.

Outputs are kept apart from inputs: a training run dir (:func:`validate_train_config`) or an evaluation's output
folder (:func:`check_outside_inputs`, called by ``evaluate``) inside a folder the run reads images from is refused,
since what it writes there would be read back as data by the next run.

(Not Lightning's validation loop: that is ``DMFNModule.validation_step``.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from dmfn_lightning.core.devices import PRECISIONS
from dmfn_lightning.core.errors import ConfigError
from dmfn_lightning.core.file_lists import PACKAGE_PREFIX
from dmfn_lightning.losses import GAN_TYPES
from dmfn_lightning.metrics import LPIPS_NETS
from dmfn_lightning.metrics.ssim import SSIM_CONVENTIONS
from dmfn_lightning.models.blocks import BLOCK_SPECS


def _require(ok: bool, key: str, value, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"invalid config: {key}={value!r}; allowed: {allowed}")


def _int(value: Any, key: str, minimum: int, allowed: str) -> int:
    """``value`` as an int >= ``minimum``; a string such as ``abc`` or ``2.5`` is a config error, not a crash."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    _require(ok, key, value, allowed)
    return value


def _float(value: Any, key: str, minimum: float, allowed: str) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= minimum
    _require(ok, key, value, allowed)
    return float(value)


def data_folders(data: Any, splits: Sequence[str]) -> list[tuple[str, Path]]:
    """The folders a data config reads the images of ``splits`` from, as ``(key, folder)``: each split's ``root``
    joined to ``data.root`` as the data module joins them (``data.root`` itself for a file list without a root;
    ``test: null`` is ``val``). Splits of explicit files (the demo) read no folder."""
    if not isinstance(data, Mapping):
        return []
    root = data.get("root")
    found: list[tuple[str, Path]] = []
    for split in splits:
        key, spec = f"data.{split}", data.get(split)
        if spec is None and split == "test":
            key, spec = "data.val", data.get("val")
        if isinstance(spec, str):
            folder = spec
        elif isinstance(spec, Mapping) and not spec.get("files"):
            folder = spec.get("root")
        else:
            continue
        if root is not None and (folder is None or not Path(str(folder)).expanduser().is_absolute()):
            folder = str(Path(str(root)) / folder) if folder else str(root)
        if folder is not None:
            found.append((key, Path(str(folder)).expanduser()))
    return found


def _is_inside(path: Path, folder: Path) -> bool:
    path, folder = path.expanduser().resolve(), folder.expanduser().resolve()
    return path == folder or folder in path.parents


def check_outside_inputs(
    output: str | Path, inputs: Sequence[tuple[str, Path]], key: str, replaced: Sequence[str] = ()
) -> None:
    """Refuse (:class:`ConfigError`, one line) an output folder inside (or equal to) a folder the run reads images or
    masks from, where its outputs would be read back as inputs; ``inputs`` are ``(what, folder)`` pairs, ``key`` the
    setting to change. ``replaced``: names inside ``output`` that the run replaces as a whole (an evaluation's
    ``images/``): an input folder there is refused too."""
    output = Path(output).expanduser()
    for what, folder in inputs:
        if _is_inside(output, folder):
            raise ConfigError(
                f"{key}={str(output)!r} is inside {what} {str(folder)!r}, which this run reads images from: its "
                f"outputs would be read back as inputs; set {key} to a folder outside it"
            )
        for name in replaced:
            if _is_inside(folder, output / name):
                raise ConfigError(
                    f"{what} {str(folder)!r} is inside {str(output / name)!r}, which this run replaces; choose another "
                    f"{key}"
                )


def validate_train_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` naming the key, the value and the valid choices for the first bad value, or the
    run dir when it lies inside a folder of the training or validation images (:func:`check_outside_inputs`)."""
    block = cfg.model.generator.block
    _require(block in BLOCK_SPECS, "model/block", block, ", ".join(BLOCK_SPECS))
    size = cfg.data.image_size
    _require(
        isinstance(size, int) and size > 0 and size % 64 == 0,
        "data.image_size",
        size,
        "a positive multiple of 64 (the global discriminator has six stride-2 convs)",
    )
    _int(cfg.data.batch_size, "data.batch_size", 1, "an integer >= 1")
    if cfg.data.get("eval_batch_size") is not None:
        _int(cfg.data.eval_batch_size, "data.eval_batch_size", 1, "an integer >= 1 or null")
    if "num_workers" in cfg.data:
        _int(cfg.data.num_workers, "data.num_workers", 0, "an integer >= 0 (0 loads in the main process)")
    for key, value in cfg.loss.items():
        if key.endswith("_weight") and value is not None:
            _float(value, f"loss.{key}", 0.0, "a number >= 0")
    if "gan_type" in cfg.loss:
        _require(cfg.loss.gan_type in GAN_TYPES, "loss.gan_type", cfg.loss.gan_type, ", ".join(GAN_TYPES))
    _int(cfg.trainer.max_steps, "trainer.max_steps", 1, "an integer number of iterations >= 1")
    every = cfg.checkpoint.every_n_steps
    if every is not None:
        _int(every, "checkpoint.every_n_steps", 1, "an integer number of iterations >= 1, or null")
    _int(cfg.checkpoint.save_top_k, "checkpoint.save_top_k", 0, "an integer >= 0 (0 keeps no best file)")
    ckpt = cfg.ckpt_path
    _require(ckpt is None or isinstance(ckpt, str), "ckpt_path", ckpt, "last, null or a checkpoint file")
    if HydraConfig.initialized():
        # checkpoints, logs and (inpaint_val_images) PNGs inside a data folder would become training/validation data
        run_dir = Path(HydraConfig.get().runtime.output_dir)
        check_outside_inputs(run_dir, data_folders(cfg.data, ("train", "val")), "hydra.run.dir")


def validate_batch_statistics(image_size: int, batch_size: int, sizes: Mapping[str, Mapping[str, int]]) -> None:
    """The discriminator's BatchNorm needs more than one value per channel in every training batch.

    Both of its branches end at ``image_size / 64`` pixels square (the global one after six stride-2 convs on the
    image, the local one after five on the half-size window), so a batch of ``b`` images gives
    ``b * (image_size / 64) ** 2`` values per channel. A batch is ``data.batch_size`` images, or the whole training
    set when it is smaller (incomplete last batches are dropped). Checked once the data is known, before the model
    is built, instead of failing inside ``fit``.
    """
    train = sizes.get("train")
    if not train:
        return
    batch = min(int(batch_size), int(train["samples"]))
    per_channel = batch * (image_size // 64) ** 2
    if per_channel >= 2:
        return
    if int(train["samples"]) < 2:
        raise ConfigError(
            f"invalid config: the training set has {train['samples']} image(s) at data.image_size={image_size}: "
            "the discriminator's BatchNorm needs at least 2 images per batch at 64 px; add images or use "
            "data.image_size=128 or larger"
        )
    raise ConfigError(
        f"invalid config: data.batch_size={batch_size} at data.image_size={image_size} gives the discriminator's "
        "BatchNorm one value per channel; allowed: data.batch_size >= 2, or data.image_size >= 128"
    )


def validate_eval_config(cfg: DictConfig) -> None:
    """Reject a bad ``evaluate`` config before any work, naming the Hydra override to fix."""
    if OmegaConf.is_missing(cfg, "ckpt") or not cfg.ckpt:
        raise ConfigError(
            "no checkpoint given: add ckpt=/path/to/checkpoint (a Lightning .ckpt, an exported generator.pt or the "
            "authors' released generator weights), e.g. `python -m dmfn_lightning.evaluate ckpt=outputs/.../last.ckpt "
            "data=paris`"
        )
    if cfg.precision not in PRECISIONS:
        raise ConfigError(f"invalid config: precision={cfg.precision!r}; allowed: {', '.join(PRECISIONS)}")
    if cfg.lpips.net not in LPIPS_NETS:
        raise ConfigError(f"invalid config: lpips.net={cfg.lpips.net!r}; allowed: {', '.join(LPIPS_NETS)}")
    if cfg.batch_size is not None and int(cfg.batch_size) < 1:
        raise ConfigError(f"invalid config: batch_size={cfg.batch_size!r}; allowed: an integer >= 1 or null")
    for key in ("fid", "kid"):
        value = OmegaConf.select(cfg, f"metrics.{key}", default=False)
        if not isinstance(value, bool):
            raise ConfigError(f"invalid config: metrics.{key}={value!r}; allowed: true, false")
    for key in ("kid_subsets", "kid_subset_size"):
        value = OmegaConf.select(cfg, f"metrics.{key}", default=1)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"invalid config: metrics.{key}={value!r}; allowed: an integer >= 1")
    if cfg.get("manifest") and cfg.get("manifest_out"):
        source, target = str(cfg.manifest), str(cfg.manifest_out)
        if (
            not source.startswith(PACKAGE_PREFIX)
            and Path(source).expanduser().resolve() == Path(target).expanduser().resolve()
        ):
            raise ConfigError(f"manifest_out={target} is the manifest being evaluated; write the copy elsewhere")
    ssim = str(OmegaConf.select(cfg, "metrics.ssim", default="full"))
    if ssim not in SSIM_CONVENTIONS:
        raise ConfigError(f"invalid config: metrics.ssim={ssim!r}; allowed: {', '.join(SSIM_CONVENTIONS)}")
    size = OmegaConf.select(cfg, "data.image_size")
    if size is not None and int(size) < SSIM_CONVENTIONS[ssim].min_side:
        # The other conventions are reported as empty cells when they do not fit; the headline must be defined.
        fits = [n for n, c in SSIM_CONVENTIONS.items() if int(size) >= c.min_side]
        raise ConfigError(
            f"invalid config: metrics.ssim={ssim} needs images of at least {SSIM_CONVENTIONS[ssim].min_side} px, "
            f"data.image_size={size}; use larger images" + (f" or metrics.ssim={'|'.join(fits)}" if fits else "")
        )
