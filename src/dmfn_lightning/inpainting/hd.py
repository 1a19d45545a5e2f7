"""High-resolution inpainting strategies: which part of a large photo the generator sees, and at what resolution.

:func:`dmfn_lightning.inpainting.api.inpaint` (``strategy=``), ``python -m dmfn_lightning.inpaint --strategy`` and the
web app offer three:

* ``full``: the whole image at its own resolution (the default without a working size).
* ``resize``: the whole image at the resolution whose longer side is the working size (default: the model's
  training size, :func:`training_size`), the prediction upsampled into the hole (the default with a working size).
* ``crop``: one window around each connected hole (8-connectivity) of the mask, widened by ``crop_margin`` pixels
  of context on every side and to at least the model's training size (or the whole side of a smaller image),
  shifted to stay inside the image; windows that overlap or touch are merged into their bounding box. Each
  window is inpainted on its own at the image's resolution, so a small hole in a 12-megapixel photo is filled at
  full detail and the network only runs on a small part of the photo. With a working size, a window whose
  longer side exceeds it is processed at the working size instead (as ``resize`` does, inside that window), so
  the working size caps both the memory and the hole size, in model pixels, that the network is asked to fill.

Whatever the strategy, only hole pixels are written: the known pixels of the result are the input's bytes.
This module holds the window geometry and reads the training size a generator's file records; running the
generator on the windows is :func:`dmfn_lightning.inpainting.api.inpaint_tensor`'s job.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from dmfn_lightning.core.errors import InpaintError
from dmfn_lightning.models.generator_files import recorded_image_size

__all__ = [
    "DEFAULT_CROP_MARGIN",
    "DEFAULT_TRAINING_SIZE",
    "STRATEGIES",
    "Window",
    "check_crop_margin",
    "crop_windows",
    "hole_boxes",
    "merge_windows",
    "other_size_note",
    "training_size",
]

STRATEGIES = ("full", "resize", "crop")
# IOPaint's default crop margin: enough context for the network's receptive field around a small hole.
DEFAULT_CROP_MARGIN = 128
# The paper's training crops; used when a generator file does not record the size it was trained at.
DEFAULT_TRAINING_SIZE = 256


class Window(NamedTuple):
    """A box of the image, ``top``/``left`` inclusive, ``bottom``/``right`` exclusive (numpy slice bounds)."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.bottom), slice(self.left, self.right)

    def overlaps(self, other: Window) -> bool:
        """True when the two boxes share pixels or an edge (such windows are merged)."""
        return (
            self.top <= other.bottom
            and other.top <= self.bottom
            and self.left <= other.right
            and other.left <= self.right
        )


def check_crop_margin(crop_margin: Any, name: str = "crop_margin") -> int:
    """``crop_margin`` as an int, or an :class:`InpaintError` naming it as ``name`` (a CLI flag, a form field)
    when it is not a whole number of pixels >= 0. Numpy integers pass (a slider, an array of settings); bool,
    although an int, does not."""
    if isinstance(crop_margin, bool) or not isinstance(crop_margin, int | np.integer) or crop_margin < 0:
        raise InpaintError(f"{name} must be a whole number of pixels >= 0, got {crop_margin!r}")
    return int(crop_margin)


_UNRECORDED_SAID: weakref.WeakSet = weakref.WeakSet()


def training_size(generator: Any, warn: Callable[[str], object] | None = None) -> int:
    """The side of the square crops ``generator`` was trained on, as recorded in its file's metadata
    (:func:`~dmfn_lightning.models.generator_files.recorded_image_size`: ``image_size`` of a ``generator.pt`` or
    of a Lightning checkpoint's run config), else :data:`DEFAULT_TRAINING_SIZE` (256).

    The fallback is said once per generator: ``warn`` receives the one-line message (default
    :func:`warnings.warn`), so a caller that says it first (the command line) is not repeated by the library.
    """
    size = recorded_image_size(generator)
    if size is not None:
        return size
    try:
        said = generator in _UNRECORDED_SAID
        if not said:
            _UNRECORDED_SAID.add(generator)
    except TypeError:  # not weakly referenceable (a plain object): said every time rather than never
        said = False
    if not said:
        message = (
            f"the generator's file does not record the image size it was trained at (a file written before it "
            f"was recorded, or the authors' release): assuming the paper's {DEFAULT_TRAINING_SIZE} px for the "
            "resize strategy's working size and the crop windows; give --working-size (working_size=) to choose"
        )
        (warn or (lambda text: warnings.warn(text, stacklevel=3)))(message)
    return DEFAULT_TRAINING_SIZE


def hole_boxes(hole: np.ndarray) -> list[Window]:
    """Bounding box of every connected hole of the bool ``[H, W]`` mask (8-connectivity: pixels touching at a
    corner belong to one hole, as a brush stroke drawn diagonally does), in label order."""
    from scipy import ndimage  # a dependency of scikit-image

    labels, count = ndimage.label(np.asarray(hole, dtype=bool), structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return []
    return [Window(s[0].start, s[1].start, s[0].stop, s[1].stop) for s in ndimage.find_objects(labels)]


def _grow(start: int, stop: int, length: int, limit: int) -> tuple[int, int]:
    """Widen ``[start, stop)`` around its centre to at least ``length`` (at most ``limit``), inside ``[0, limit)``."""
    length = min(length, limit)
    missing = length - (stop - start)
    if missing > 0:
        start -= missing // 2
        stop = start + length
    # Shifted back inside the image rather than cut, so a window at the border keeps its size.
    if start < 0:
        start, stop = 0, stop - start
    if stop > limit:
        start, stop = start - (stop - limit), limit
    return max(0, start), min(limit, stop)


def merge_windows(windows: list[Window]) -> list[Window]:
    """Replace every group of overlapping or touching windows by its bounding box, until none overlap; sorted
    top to bottom, left to right."""
    merged = sorted(windows)
    changed = True
    while changed:  # a merged box can reach a window its parts did not: repeat until nothing changes
        changed = False
        out: list[Window] = []
        for window in merged:
            for i, kept in enumerate(out):
                if window.overlaps(kept):
                    out[i] = Window(
                        min(kept.top, window.top),
                        min(kept.left, window.left),
                        max(kept.bottom, window.bottom),
                        max(kept.right, window.right),
                    )
                    changed = True
                    break
            else:
                out.append(window)
        merged = sorted(out)
    return merged


def crop_windows(
    hole: np.ndarray, margin: int = DEFAULT_CROP_MARGIN, min_size: int = DEFAULT_TRAINING_SIZE
) -> list[Window]:
    """The windows the ``crop`` strategy inpaints for the bool ``[H, W]`` hole mask.

    One per connected hole (:func:`hole_boxes`): its bounding box plus ``margin`` pixels on each side, widened
    around its centre to at least ``min_size`` per side (the whole side when the image is smaller), kept inside
    the image by shifting, not cutting; then overlapping or touching windows are merged (:func:`merge_windows`).
    Every hole pixel lies in exactly one window and every window holds its holes whole, so each window can be
    inpainted on its own. An empty mask gives no window.
    """
    hole = np.asarray(hole, dtype=bool)
    height, width = hole.shape
    windows = []
    for box in hole_boxes(hole):
        top, bottom = max(0, box.top - margin), min(height, box.bottom + margin)
        left, right = max(0, box.left - margin), min(width, box.right + margin)
        top, bottom = _grow(top, bottom, min_size, height)
        left, right = _grow(left, right, min_size, width)
        windows.append(Window(top, left, bottom, right))
    return merge_windows(windows)


def other_size_note(
    generator: Any, strategy: str, working_size: int | None, sizes: list[tuple[int, int]]
) -> str | None:
    """One line for a command about to run ``generator`` at another size than the one its file records it was
    trained at (:func:`~dmfn_lightning.models.generator_files.recorded_image_size`), or ``None``: ``resize`` at a
    ``working_size`` other than that, or ``full`` on photos (``sizes``: ``(width, height)``) whose longer side is
    another. ``crop`` works at the photo's own resolution on purpose, in windows of at least the training size,
    and ``resize`` without a working size at the training size: nothing to say."""
    trained = recorded_image_size(generator)
    if trained is None:
        return None
    if strategy == "resize" and working_size is not None and working_size != trained:
        return (
            f"the generator was trained on {trained}x{trained} images; --working-size {working_size} runs it at "
            f"{working_size} px, where its results may be worse (leave out --working-size to work at {trained})"
        )
    if strategy == "full":
        other = [(w, h) for w, h in sizes if max(w, h) != trained]
        if other:
            width, height = max(other, key=lambda s: s[0] * s[1])
            return (
                f"the generator was trained on {trained}x{trained} images; --strategy full runs it at each photo's "
                f"own size (up to {width}x{height} here), where its results may be worse (--strategy resize works "
                f"at {trained} px)"
            )
    return None
