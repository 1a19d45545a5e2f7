"""Data layer: image datasets (folders, file lists, the built-in demo photos), hole generators, the data module.

See :mod:`dmfn_lightning.data.datasets`, :mod:`dmfn_lightning.masks`, :mod:`dmfn_lightning.data.datamodule`
and :mod:`dmfn_lightning.data.demo`.
"""

from dmfn_lightning.core.decode import load_rgb
from dmfn_lightning.core.errors import DataError
from dmfn_lightning.core.file_lists import read_file_list
from dmfn_lightning.data.datamodule import DMFNDataModule
from dmfn_lightning.data.datasets import ImageDataset, collate_samples
from dmfn_lightning.data.demo import DemoDataModule, demo_photo_paths
from dmfn_lightning.data.files import ImageSource, list_images
from dmfn_lightning.masks import (
    CenterMask,
    FreeFormMask,
    IrregularFileMask,
    MaskGenerator,
    MixedMask,
    RandomBoxMask,
    bbox_around,
    hole_ratio,
)

__all__ = [
    "CenterMask",
    "DMFNDataModule",
    "DataError",
    "DemoDataModule",
    "FreeFormMask",
    "ImageDataset",
    "ImageSource",
    "IrregularFileMask",
    "MaskGenerator",
    "MixedMask",
    "RandomBoxMask",
    "bbox_around",
    "collate_samples",
    "demo_photo_paths",
    "hole_ratio",
    "list_images",
    "load_rgb",
    "read_file_list",
]
