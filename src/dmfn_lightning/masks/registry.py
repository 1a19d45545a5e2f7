"""The mask kinds: the one registry that generated holes are offered from, and :func:`generate_mask`, which draws one.

A mask kind is a generator class that declares itself where it is defined (the ``kind``, ``label`` and
``for_photos`` class keywords of :class:`~dmfn_lightning.masks.base.MaskGenerator`) and its parameters in
``conf/mask/<kind>.yaml``. Everything that offers generated holes reads its choices from here:
``python -m dmfn_lightning.inpaint --mask-type``, the web app's "Generated hole" choices (handed to the page by
``python -m dmfn_lightning.app``) and the generators the evaluation manifests' ``generators.json`` may name are the
kinds :func:`photo_mask_kinds` lists, those that can be drawn for any image without mask files or folders. So adding a
kind is adding its class to :mod:`dmfn_lightning.masks` and its ``conf/mask/<kind>.yaml``; no list elsewhere.

:func:`generate_mask` is the one function that turns a kind (or a generator) and a seed into a hole map, for the
inpainting command line, the web app and the evaluation manifests alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from dmfn_lightning.core.config import config_dir
from dmfn_lightning.core.errors import DataError
from dmfn_lightning.masks.base import KINDS, MaskGenerator

__all__ = [
    "MASK_PACKAGE",
    "build_mask",
    "generate_mask",
    "mask_config",
    "mask_from_config",
    "mask_kinds",
    "photo_mask_kinds",
    "target_of",
]

# The public path the configs' ``_target_`` names the generator classes by (dmfn_lightning.masks.<Class>).
MASK_PACKAGE = __name__.rpartition(".")[0]
# The path the generators had before they became their own layer; older configs and manifests may name it.
LEGACY_TARGETS = {
    f"dmfn_lightning.data.masks.{name}": f"{MASK_PACKAGE}.{name}"
    for name in ("CenterMask", "RandomBoxMask", "FreeFormMask", "IrregularFileMask", "MixedMask")
}


def mask_kinds(*, for_photos: bool | None = None) -> dict[str, type[MaskGenerator]]:
    """The registered kinds, ``kind -> class``, in the order their classes were defined.

    ``for_photos=True``: only the kinds that can be drawn for any image from its size and a seed, without mask files
    or folders (``False``: only the others; ``None``: all).
    """
    return {k: cls for k, cls in KINDS.items() if for_photos is None or cls.for_photos == for_photos}


def photo_mask_kinds() -> tuple[str, ...]:
    """The kinds offered for photos: ``--mask-type``'s choices, the web app's generated holes, the manifests'
    generators (``center``, ``random_box``, ``free_form``, and any kind added with ``for_photos=True``)."""
    return tuple(mask_kinds(for_photos=True))


def target_of(cls: type[MaskGenerator]) -> str:
    """The ``_target_`` that configs name ``cls`` by: ``dmfn_lightning.masks.<Class>``."""
    return f"{MASK_PACKAGE}.{cls.__name__}"


def mask_config(kind: str) -> Path:
    """``conf/mask/<kind>.yaml``: the kind's parameters, the same for training, evaluation and photos."""
    return config_dir() / "mask" / f"{kind}.yaml"


def mask_from_config(
    config: Mapping[str, Any], kinds: Mapping[str, type[MaskGenerator]] | None = None
) -> MaskGenerator:
    """The generator ``config`` describes: ``{"_target_": "dmfn_lightning.masks.<Class>", **parameters}``, as in
    ``conf/mask/<kind>.yaml`` and the manifests' ``generators.json``.

    The class must be one of ``kinds`` (default: every registered kind); :class:`DataError` naming the target and
    the allowed ones otherwise, or when the parameters do not fit the class.
    """
    kinds = KINDS if kinds is None else kinds
    params = dict(config)
    target = str(params.pop("_target_", ""))
    classes = {target_of(cls): cls for cls in kinds.values()}
    target = LEGACY_TARGETS.get(target, target)
    if target not in classes:
        raise DataError(f"mask generator {target!r} is not one of {', '.join(classes) or 'none'}")
    try:
        return classes[target](**params)
    except (TypeError, ValueError) as err:
        raise DataError(f"mask generator {target} with {params}: {err}") from err


def build_mask(kind: str) -> MaskGenerator:
    """The generator of ``kind`` with its parameters from ``conf/mask/<kind>.yaml`` (:func:`mask_config`)."""
    if kind not in KINDS:
        raise DataError(f"unknown mask type {kind!r}; known: {', '.join(KINDS)}")
    path = mask_config(kind)
    if not path.is_file():
        raise DataError(f"mask type {kind!r} has no configuration {path}")
    config = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    if not isinstance(config, dict) or "defaults" in config:
        raise DataError(f"{path} is composed from other configs; build mask type {kind!r} with Hydra (mask={kind})")
    return mask_from_config(config, {kind: KINDS[kind]})


def _photo_kind(kind: str) -> MaskGenerator:
    photo = photo_mask_kinds()
    if kind not in photo:
        what = "is unknown" if kind not in KINDS else "needs mask files or other masks: it is not drawn for photos"
        raise DataError(f"mask type {kind!r} {what}; choose one of {', '.join(photo)}")
    return build_mask(kind)


def generate_mask(
    kind: str | MaskGenerator,
    width: int,
    height: int,
    seed: int = 0,
    *,
    accept: Callable[[np.ndarray], bool] | None = None,
    max_tries: int = 1,
) -> np.ndarray:
    """A hole for a ``width x height`` image: a bool array ``[H, W]``, True = hole.

    ``kind`` is one of :func:`photo_mask_kinds` (built from ``conf/mask/<kind>.yaml``: the training and evaluation
    parameters, e.g. Table 1's centred half-size box, the released random box, DeepFill v2 free-form strokes) or a
    generator. It is called as ``generator(height, width, rng)`` with ``rng = numpy.random.default_rng(seed)``,
    again on the same ``rng`` until ``accept(hole)`` holds (default: the hole is not empty), at most ``max_tries``
    times, so a seed always gives the same hole. Raises :class:`DataError` for a kind that is not for photos, a
    generator that cannot draw at this size, or no accepted hole.
    """
    generator = _photo_kind(kind) if isinstance(kind, str) else kind
    name = kind if isinstance(kind, str) else (type(kind).kind or type(kind).__name__)
    width, height = int(width), int(height)
    rng = np.random.default_rng(int(seed))
    tries = max(1, int(max_tries))
    for _ in range(tries):
        try:
            mask, _bbox = generator(height, width, rng)
        except (RuntimeError, ValueError) as err:
            raise DataError(f"cannot draw a {name} mask for a {width}x{height} image: {err}") from err
        hole = mask[0].numpy() > 0.5
        if hole.any() if accept is None else accept(hole):
            return hole
    if accept is None and tries == 1:
        # e.g. random_box on a 3-pixel-high image: its random shrink removes the whole 1-pixel box.
        raise DataError(
            f"the {name} mask drawn for a {width}x{height} image is empty (the image is too small or too thin for it)"
        )
    raise DataError(f"no {name} mask for a {width}x{height} image was accepted in {tries} draw(s) from seed {seed}")
