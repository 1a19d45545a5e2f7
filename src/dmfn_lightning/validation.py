"""Check a composed training config before any work starts: one clear line per problem."""

from __future__ import annotations

from omegaconf import DictConfig

from dmfn_lightning.errors import ConfigError
from dmfn_lightning.losses import GAN_TYPES
from dmfn_lightning.models.blocks import BLOCK_SPECS


def _require(ok: bool, key: str, value, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"invalid config: {key}={value!r}; allowed: {allowed}")


def validate_train_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` naming the key, the value and the valid choices for the first bad value."""
    block = cfg.model.generator.block
    _require(block in BLOCK_SPECS, "model/block", block, ", ".join(BLOCK_SPECS))
    size = cfg.data.image_size
    _require(
        isinstance(size, int) and size > 0 and size % 64 == 0,
        "data.image_size",
        size,
        "a positive multiple of 64 (the global discriminator has six stride-2 convs)",
    )
    _require(int(cfg.data.batch_size) >= 1, "data.batch_size", cfg.data.batch_size, "an integer >= 1")
    for key, value in cfg.loss.items():
        if key.endswith("_weight") and value is not None:
            _require(float(value) >= 0, f"loss.{key}", value, "a weight >= 0")
    if "gan_type" in cfg.loss:
        _require(cfg.loss.gan_type in GAN_TYPES, "loss.gan_type", cfg.loss.gan_type, ", ".join(GAN_TYPES))
    _require(int(cfg.trainer.max_steps) >= 1, "trainer.max_steps", cfg.trainer.max_steps, "iterations >= 1")
    every = cfg.checkpoint.every_n_steps
    _require(every is None or int(every) >= 1, "checkpoint.every_n_steps", every, "iterations >= 1 or null")
    ckpt = cfg.ckpt_path
    _require(ckpt is None or isinstance(ckpt, str), "ckpt_path", ckpt, "last, null or a checkpoint file")
