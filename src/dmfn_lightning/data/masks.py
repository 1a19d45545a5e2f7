"""The hole generators' former home, ``dmfn_lightning.data.masks``: checkpoints and configs written before the
generators became their own layer (:mod:`dmfn_lightning.masks`) name their classes by this path, so they load and
resume unchanged. New code and configs use :mod:`dmfn_lightning.masks`."""

from dmfn_lightning.masks import CenterMask, FreeFormMask, IrregularFileMask, MaskGenerator, MixedMask, RandomBoxMask

__all__ = ["CenterMask", "FreeFormMask", "IrregularFileMask", "MaskGenerator", "MixedMask", "RandomBoxMask"]
