"""Processed sizes: the resolution at which the generator sees an image (padding to a multiple of 4, working size).

The generator (Hui et al., arXiv:2002.02609) encodes with two stride-2 convolutions, so its input sides must be
multiples of 4; :func:`pad_amounts` says how much :func:`~dmfn_lightning.models.inference.run_generator` pads.
:func:`working_dims` is the ``resize`` strategy's resolution, and :func:`processed_dims` the size the network
really runs at, which the memory guard (:func:`~dmfn_lightning.core.devices.check_memory`) sizes its estimate by.
:func:`check_working_size` is the one check of a working size (at least :data:`MIN_SIDE`); the inpainting API
(:func:`~dmfn_lightning.inpainting.api.resolve_settings`) runs it, under the names the command line and the web app
give the setting.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dmfn_lightning.core.errors import InpaintError

__all__ = [
    "MIN_SIDE",
    "MULTIPLE",
    "check_working_size",
    "pad_amounts",
    "padded_side",
    "processed_dims",
    "working_dims",
]

MULTIPLE = 4  # two stride-2 convolutions in the encoder
MIN_SIDE = 8  # InstanceNorm needs more than one spatial element at H/4 x W/4


def padded_side(side: int, multiple: int = MULTIPLE, min_side: int = MIN_SIDE) -> int:
    """The side the generator runs a ``side``-pixel side at: the next multiple of 4, at least 8.

    Written so that TorchScript compiles it (the constants come in as default arguments) and so that the ONNX
    exporters keep it symbolic (no floor division of a negative number, which ONNX rounds towards zero): the
    exported models pad with it (:func:`dmfn_lightning.models.inference.pad_input`).
    """
    return max(min_side, (side + multiple - 1) // multiple * multiple)


def pad_amounts(height: int, width: int) -> tuple[int, int]:
    """(rows, columns) to add at the bottom/right so both sides are multiples of 4 and at least 8."""
    return padded_side(height) - height, padded_side(width) - width


def check_working_size(working_size: Any, name: str = "working_size") -> int | None:
    """``working_size`` as an int (``None`` stays ``None``: full resolution), or an :class:`InpaintError` naming it
    as ``name`` (a command-line flag, a form field) when it is not a whole number of pixels of at least
    :data:`MIN_SIDE`. Numpy integers pass; bool, although an int, does not."""
    if working_size is None:
        return None
    if isinstance(working_size, bool) or not isinstance(working_size, int | np.integer) or working_size < MIN_SIDE:
        raise InpaintError(f"{name} must be a whole number of pixels >= {MIN_SIDE}, got {working_size!r}")
    return int(working_size)


def working_dims(height: int, width: int, working_size: int) -> tuple[int, int]:
    """(h, w) with the longer side ~``working_size``, both multiples of 4, aspect ratio kept."""
    working_size = check_working_size(working_size)
    scale = working_size / max(height, width)
    h = max(MULTIPLE, round(height * scale / MULTIPLE) * MULTIPLE)
    w = max(MULTIPLE, round(width * scale / MULTIPLE) * MULTIPLE)
    return h, w


def processed_dims(height: int, width: int, working_size: int | None) -> tuple[int, int]:
    """The (h, w) the generator runs at: the padded image, or :func:`working_dims` with a ``working_size``."""
    if working_size is None:
        ph, pw = pad_amounts(height, width)
        return height + ph, width + pw
    return working_dims(height, width, working_size)
