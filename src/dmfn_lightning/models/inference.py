"""The one inference path: pad the generator input to a valid size, run it at a precision, composite (eq. 1).

Everything that fills holes with a generator goes through :func:`run_generator`: Lightning validation and test
(:meth:`dmfn_lightning.module.DMFNModule.complete`), the W&B image panels, ``evaluate``, the inpainting API and CLI,
the web app (all through :mod:`dmfn_lightning.inpainting.api`) and the export check (:func:`predict`). The generator
of Hui et al. ("Image Fine-grained Inpainting", arXiv:2002.02609) downsamples twice by 2, so it needs sides that
are multiples of 4 (and, for its instance normalisation, at least 8); this module pads any H x W up to that and
crops the prediction back, and the exported TorchScript and ONNX models run the same padding inside them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dmfn_lightning.core.devices import autocast
from dmfn_lightning.core.sizes import padded_side
from dmfn_lightning.models.generator import DMFNGenerator

__all__ = ["crop_output", "pad_input", "predict", "run_generator"]


def _pad_indices(side: int, padded: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Source index of each of ``padded`` positions along a ``side``-long axis: (by reflection, by replication)."""
    positions = torch.arange(padded, device=device)
    return torch.where(positions < side, positions, 2 * (side - 1) - positions), positions.clamp(max=side - 1)


def pad_input(x: Tensor) -> Tensor:
    """Pad ``x`` ``[B, C, H, W]`` at the bottom/right so both sides are multiples of 4 and at least 8.

    Reflection keeps the statistics of the border (a constant pad would read as a hole edge to the network);
    replication takes over, on both axes, when a side is too short to reflect. The library's inference path and
    the exported TorchScript and ONNX models (:class:`~dmfn_lightning.models.export_formats.PadToMultipleOf4`) run
    this one function, so they pad alike at every size: it is written with tensor indexing only, which TorchScript
    compiles and the ONNX exporters keep dynamic. An input that needs no padding is returned as is (in a traced or
    exported graph it is gathered like any other, the graph being the same for every size).
    """
    height, width = x.shape[-2], x.shape[-1]
    padded_height, padded_width = padded_side(height), padded_side(width)
    static = torch.jit.is_scripting()
    if not torch.jit.is_scripting():
        static = not (torch.jit.is_tracing() or torch.compiler.is_compiling())
    if static and padded_height == height and padded_width == width:
        return x
    rows, rows_replicated = _pad_indices(height, padded_height, x.device)
    cols, cols_replicated = _pad_indices(width, padded_width, x.device)
    # Reflection needs every reflected index to exist (pad < side) on both axes; else both axes replicate.
    reflect = torch.logical_and(rows.min() >= 0, cols.min() >= 0)
    rows = torch.where(reflect, rows, rows_replicated)
    cols = torch.where(reflect, cols, cols_replicated)
    return x.index_select(-2, rows).index_select(-1, cols)


def crop_output(prediction: Tensor, height: int, width: int) -> Tensor:
    """The top-left ``height x width`` of ``prediction`` ``[B, C, H', W']``: a padded prediction cropped back.

    Indexing, not slicing, so that the exported graphs keep the size symbolic (a slice of a padded side makes
    ``torch.export`` assume the pad is zero for every input).
    """
    rows = torch.arange(height, device=prediction.device)
    cols = torch.arange(width, device=prediction.device)
    return prediction.index_select(-2, rows).index_select(-1, cols)


def predict(generator: nn.Module, x: Tensor, precision: str = "fp32") -> Tensor:
    """The generator's float32 prediction for a 4-channel input ``x`` of any H x W, cropped back to H x W."""
    height, width = x.shape[-2:]
    with autocast(x.device, precision):
        prediction = generator(pad_input(x))
    if prediction.shape[-2:] != (height, width):
        prediction = crop_output(prediction, height, width)
    return prediction.float()


def run_generator(generator: nn.Module, image: Tensor, mask: Tensor, precision: str = "fp32") -> Tensor:
    """``I_out = M * G(x) + (1 - M) * I`` (eq. 1) for ``image`` ``[B, 3, H, W]`` in [-1, 1] and ``mask``
    ``[B, 1, H, W]`` (1 = hole) of any size, on the generator's device; float32, known pixels exactly ``image``."""
    x = DMFNGenerator.make_input(image, mask)
    return DMFNGenerator.composite(predict(generator, x, precision), image.float(), mask.float())
