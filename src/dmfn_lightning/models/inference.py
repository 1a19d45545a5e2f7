"""The one inference path: pad the generator input to a valid size, run it at a precision, composite (eq. 1).

Everything that fills holes with a generator goes through :func:`run_generator`: Lightning validation and test
(:meth:`dmfn_lightning.module.DMFNModule.complete`), the W&B image panels, ``evaluate``, the inpainting API and CLI,
the web app (all through :mod:`dmfn_lightning.inpainting.api`) and the export check (:func:`predict`). The generator
of Hui et al. ("Image Fine-grained Inpainting", arXiv:2002.02609) downsamples twice by 2, so it needs sides that
are multiples of 4; this module pads any H x W up to that and crops the prediction back.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from dmfn_lightning.core.devices import autocast
from dmfn_lightning.core.sizes import pad_amounts
from dmfn_lightning.models.generator import DMFNGenerator

__all__ = ["pad_input", "predict", "run_generator"]


def pad_input(x: Tensor) -> Tensor:
    """Pad ``x`` ``[B, C, H, W]`` at the bottom/right so both sides are multiples of 4 and at least 8.

    Reflection keeps the statistics of the border (a constant pad would read as a hole edge to the network);
    replication takes over when a side is too short to reflect.
    """
    height, width = x.shape[-2:]
    ph, pw = pad_amounts(height, width)
    if not (ph or pw):
        return x
    mode = "reflect" if ph < height and pw < width else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def predict(generator: nn.Module, x: Tensor, precision: str = "fp32") -> Tensor:
    """The generator's float32 prediction for a 4-channel input ``x`` of any H x W, cropped back to H x W."""
    height, width = x.shape[-2:]
    with autocast(x.device, precision):
        prediction = generator(pad_input(x))
    return prediction[..., :height, :width].float()


def run_generator(generator: nn.Module, image: Tensor, mask: Tensor, precision: str = "fp32") -> Tensor:
    """``I_out = M * G(x) + (1 - M) * I`` (eq. 1) for ``image`` ``[B, 3, H, W]`` in [-1, 1] and ``mask``
    ``[B, 1, H, W]`` (1 = hole) of any size, on the generator's device; float32, known pixels exactly ``image``."""
    x = DMFNGenerator.make_input(image, mask)
    return DMFNGenerator.composite(predict(generator, x, precision), image.float(), mask.float())
