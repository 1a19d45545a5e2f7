"""Inpainting your own photos: the public API behind ``python -m dmfn_lightning.inpaint`` and the web app.

:func:`inpaint` fills the holes of one photo (:mod:`.api`), with the HD strategies of :mod:`.hd`; :func:`load_image`
and :func:`load_mask` read any path, PIL image, array or tensor (:mod:`.image_io`); :mod:`.photo_files` pairs
folders of photos with their mask files for the command line. :func:`resolve_settings` is the one check of the
strategy, working size and crop margin, which the command line and the web app show under their own names.
Generated holes (``center``, ``random_box``, ``free_form``, ...) are the data layer's:
:func:`dmfn_lightning.masks.generate_mask`.

Example::

    from dmfn_lightning.inpainting import inpaint, load_image, load_mask
    from dmfn_lightning.models import load_generator

    generator = load_generator("generator.pt")
    image = load_image("photo.jpg")
    result = inpaint(generator, image, load_mask("mask.png", image.size))
    result.save("photo_inpainted.png")
"""

from dmfn_lightning.core.errors import InpaintError, InpaintMemoryError, NonFiniteOutputError, OutputPathError
from dmfn_lightning.inpainting.api import (
    SettingNames,
    Settings,
    batches_by_size,
    inpaint,
    inpaint_batch,
    inpaint_tensor,
    resolve_settings,
    resolve_strategy,
)
from dmfn_lightning.inpainting.hd import DEFAULT_CROP_MARGIN, STRATEGIES
from dmfn_lightning.inpainting.image_io import ImageInput, MaskInput, load_image, load_mask, save_png
from dmfn_lightning.masks import generate_mask, photo_mask_kinds

__all__ = [
    "DEFAULT_CROP_MARGIN",
    "STRATEGIES",
    "ImageInput",
    "InpaintError",
    "InpaintMemoryError",
    "MaskInput",
    "NonFiniteOutputError",
    "OutputPathError",
    "SettingNames",
    "Settings",
    "batches_by_size",
    "generate_mask",
    "inpaint",
    "inpaint_batch",
    "inpaint_tensor",
    "load_image",
    "load_mask",
    "photo_mask_kinds",
    "resolve_settings",
    "resolve_strategy",
    "save_png",
]
