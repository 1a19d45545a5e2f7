"""DMFN networks: generator, dense multi-scale fusion blocks, global-local discriminator, VGG19 features."""

from dmfn_lightning.core.errors import CheckpointError
from dmfn_lightning.models.blocks import BLOCK_SPECS, DMFB, build_block
from dmfn_lightning.models.discriminator import GlobalLocalDiscriminator, crop_local
from dmfn_lightning.models.generator import DMFNGenerator, init_weights
from dmfn_lightning.models.generator_files import convert_released_state_dict, export_generator, load_generator
from dmfn_lightning.models.torch_files import safe_load
from dmfn_lightning.models.vgg import VGG19Features

__all__ = [
    "BLOCK_SPECS",
    "DMFB",
    "CheckpointError",
    "DMFNGenerator",
    "GlobalLocalDiscriminator",
    "VGG19Features",
    "build_block",
    "convert_released_state_dict",
    "crop_local",
    "export_generator",
    "init_weights",
    "load_generator",
    "safe_load",
]
