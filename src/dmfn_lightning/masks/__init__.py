"""Hole generators: every mask type of the paper and of the released DMFN code, as small callable objects.

Each generator is built by ``hydra.utils.instantiate`` from ``conf/mask/<name>.yaml`` and called as::

    mask, bbox = generator(height, width, rng)

* ``rng`` is a :class:`numpy.random.Generator`; a generator draws every random number from it and from nothing
  else, so a seeded ``rng`` gives the same hole (evaluation seeds it per sample index, see
  :class:`dmfn_lightning.data.datasets.ImageDataset`).
* ``mask`` is a float32 tensor ``[1, H, W]`` with values in {0, 1}; **1 = missing pixel** (docs/design.md, conventions).
* ``bbox`` is ``(top, left, height, width)``, the ``H // 2 x W // 2`` window the local discriminator sees. For the
  box masks it is the (unshrunk) box when the box is half the image (the paper's setting), otherwise the
  ``H // 2 x W // 2`` window centred on the box; for every other mask it is the window centred on the bounding box
  of the hole and clamped to the image (:func:`bbox_around`). The released code paired irregular holes with an
  unrelated random box; centring the window on the hole is a documented deviation.

Sizes scale with the image: hole sizes are fractions of H and W, and sizes given in pixels (``delta``, brush width)
are pixels *at* ``reference_size`` (256, the paper's resolution) and are scaled by ``size / reference_size``.

Each generator class is a *mask kind* (``center``, ``random_box``, ``free_form``, ``irregular_files``, ``mixed``): it
declares its name, its label and whether it can be drawn for any photo where it is defined, and its parameters are
``conf/mask/<kind>.yaml``. :mod:`~dmfn_lightning.masks.registry` is the one list of them
(:func:`photo_mask_kinds`: what ``--mask-type``, the web app and the evaluation manifests offer) and
:func:`generate_mask` draws a hole of a kind from a seed.

The generators live in one module each (:mod:`~dmfn_lightning.masks.boxes`,
:mod:`~dmfn_lightning.masks.free_form`, :mod:`~dmfn_lightning.masks.irregular`,
:mod:`~dmfn_lightning.masks.mixture`, their base in :mod:`~dmfn_lightning.masks.base`); this module is the
public path the configs' ``_target_: dmfn_lightning.masks.<Class>`` names. A new kind's class is imported here
(which registers it, and gives it that path).
"""

from dmfn_lightning.masks.base import (
    BBox,
    MaskGenerator,
    bbox_around,
    box_window,
    hole_ratio,
)
from dmfn_lightning.masks.base import MaskResult as MaskResult
from dmfn_lightning.masks.boxes import CenterMask, RandomBoxMask
from dmfn_lightning.masks.free_form import FreeFormMask
from dmfn_lightning.masks.irregular import IrregularFileMask
from dmfn_lightning.masks.mixture import MixedMask
from dmfn_lightning.masks.registry import (
    build_mask,
    generate_mask,
    mask_config,
    mask_from_config,
    mask_kinds,
    photo_mask_kinds,
    target_of,
)

__all__ = [
    "BBox",
    "CenterMask",
    "FreeFormMask",
    "IrregularFileMask",
    "MaskGenerator",
    "MixedMask",
    "RandomBoxMask",
    "bbox_around",
    "box_window",
    "build_mask",
    "generate_mask",
    "hole_ratio",
    "mask_config",
    "mask_from_config",
    "mask_kinds",
    "photo_mask_kinds",
    "target_of",
]
