"""Built-in demo data: scikit-image's bundled colour photographs, no download.

The photos below ship inside the scikit-image wheel (``skimage/data/``); the ones scikit-image fetches with pooch
on first use (``skin``, ``lily``, ``kidney``, ``eagle``, ...) are not used. ``cat`` is the same photo as
``chelsea`` and ``motorcycle_right`` the same scene as ``motorcycle_left``, so neither is listed.

The split is by *source photo*: training crops never come from a validation photo.

* training: ``train_length`` random square crops per epoch (crop side ``U(scale)`` of the short side, never below
  ``image_size``; horizontal flips) from :data:`TRAIN_PHOTOS`;
* validation / test: ``val_crops`` fixed crops of :data:`VAL_PHOTOS` (the crop of sample ``i`` is a pure function
  of ``i`` and the seed, like its hole).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dmfn_lightning.core.errors import DataError
from dmfn_lightning.core.files import atomic_write
from dmfn_lightning.data.datamodule import DMFNDataModule
from dmfn_lightning.masks import FreeFormMask

__all__ = ["DEMO_PHOTOS", "TRAIN_PHOTOS", "VAL_PHOTOS", "DemoDataModule", "demo_photo_paths"]

# name -> (file bundled in skimage/data/, skimage.data function that loads it)
DEMO_PHOTOS: dict[str, tuple[str, str]] = {
    "astronaut": ("astronaut.png", "astronaut"),  # 512 x 512
    "rocket": ("rocket.jpg", "rocket"),  # 427 x 640
    "hubble_deep_field": ("hubble_deep_field.jpg", "hubble_deep_field"),  # 872 x 1000
    "immunohistochemistry": ("ihc.png", "immunohistochemistry"),  # 512 x 512
    "retina": ("retina.jpg", "retina"),  # 1411 x 1411
    "motorcycle": ("motorcycle_left.png", "stereo_motorcycle"),  # 500 x 741
    "chelsea": ("chelsea.png", "chelsea"),  # 300 x 451
    "coffee": ("coffee.png", "coffee"),  # 400 x 600
}
TRAIN_PHOTOS: tuple[str, ...] = (
    "astronaut",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "motorcycle",
)
VAL_PHOTOS: tuple[str, ...] = ("chelsea", "coffee")


def _cache_dir() -> Path:
    return Path(os.environ.get("DMFN_DEMO_CACHE", Path(tempfile.gettempdir()) / "dmfn_lightning_demo"))


def demo_photo_paths(names: Sequence[str]) -> list[Path]:
    """Image files of the named demo photos.

    The file bundled with scikit-image is used directly; if this scikit-image keeps it elsewhere, the photo is
    loaded with ``skimage.data.<function>()`` and written once as PNG to ``$DMFN_DEMO_CACHE`` (default: a folder
    in the system temp dir). Raises :class:`DataError` if a photo is not available offline.
    """
    unknown = [n for n in names if n not in DEMO_PHOTOS]
    if unknown:
        raise DataError(f"unknown demo photos {unknown}; available: {sorted(DEMO_PHOTOS)}")
    try:
        import skimage.data
    except ImportError as err:  # pragma: no cover - scikit-image is a dependency
        raise DataError("the demo data needs scikit-image (pip install scikit-image)") from err
    bundled = Path(skimage.data.__file__).parent
    paths = []
    for name in names:
        filename, function = DEMO_PHOTOS[name]
        path = bundled / filename
        if not path.is_file():
            path = _cache_dir() / f"{name}.png"
            if not path.is_file():
                path = _export(name, function, path)
        paths.append(path)
    return paths


def _export(name: str, function: str, path: Path) -> Path:
    import skimage.data
    from PIL import Image

    try:
        image = getattr(skimage.data, function)()
    except Exception as err:
        raise DataError(
            f"demo photo {name!r} (skimage.data.{function}) is not bundled with this scikit-image and cannot be "
            f"downloaded here ({type(err).__name__}: {err})"
        ) from err
    if isinstance(image, tuple):  # stereo_motorcycle -> (left, right, disparity)
        image = image[0]
    rgb = Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")
    return atomic_write(path, lambda f: rgb.save(f, format="PNG"))


class DemoDataModule(DMFNDataModule):
    """:class:`DMFNDataModule` over the bundled demo photos (see the module docstring).

    Args:
        train_length: random training crops per epoch.
        val_crops: fixed validation crops (the test split is the same set).
        train_photos, val_photos: names from :data:`DEMO_PHOTOS`; they must not overlap.
        val_scale: crop-side range of the fixed validation crops.
        Everything else is passed to :class:`DMFNDataModule` (``image_size``, ``batch_size``, masks, seed, ...).
    """

    def __init__(
        self,
        image_size: int = 128,
        batch_size: int = 8,
        train_length: int = 64,
        val_crops: int = 8,
        train_photos: Sequence[str] = TRAIN_PHOTOS,
        val_photos: Sequence[str] = VAL_PHOTOS,
        scale: Sequence[float] = (0.35, 1.0),
        val_scale: Sequence[float] = (0.6, 1.0),
        hflip: float = 0.5,
        num_workers: int = 0,
        **kwargs: Any,
    ) -> None:
        train_photos, val_photos = list(train_photos), list(val_photos)
        overlap = sorted(set(train_photos) & set(val_photos))
        if overlap:
            raise DataError(f"demo photos {overlap} are in both the training and the validation split")
        if not train_photos or not val_photos:
            raise DataError("the demo needs at least one training and one validation photo")
        for key in ("train", "val", "test", "root"):
            if kwargs.get(key) is not None:
                raise DataError(f"DemoDataModule builds its own splits; do not pass {key!r}")
            kwargs.pop(key, None)
        self.train_photos, self.val_photos = train_photos, val_photos
        train = {
            "files": [str(p) for p in demo_photo_paths(train_photos)],
            "length": int(train_length),
            "crop": "random",
        }
        val = {
            "files": [str(p) for p in demo_photo_paths(val_photos)],
            "length": int(val_crops),
            "crop": "random",  # random position and size, but seeded per sample index: a fixed set
            "scale": list(val_scale),
        }
        kwargs.setdefault("persistent_workers", False)
        super().__init__(
            train=train,
            val=val,
            image_size=image_size,
            batch_size=batch_size,
            scale=scale,
            hflip=hflip,
            num_workers=num_workers,
            **kwargs,
        )


def export_heldout_photos(out_dir: str | os.PathLike, short_side: int = 160, seed: int = 0) -> tuple[Path, Path]:
    """Write the held-out demo photos (never seen in training) and a free-form hole for each, as PNG files.

    ``<out_dir>/images/<name>.png`` is the photo resized so its short side is ``short_side``;
    ``<out_dir>/masks/<name>.png`` is its mask (white = hole). This is the input of the demo's inpainting stage.
    """
    images_dir, masks_dir = Path(out_dir) / "images", Path(out_dir) / "masks"
    images_dir.mkdir(parents=True, exist_ok=True)
    masks_dir.mkdir(parents=True, exist_ok=True)
    mask_generator = FreeFormMask()
    for i, (name, path) in enumerate(zip(VAL_PHOTOS, demo_photo_paths(VAL_PHOTOS))):
        with Image.open(path) as photo:
            photo = photo.convert("RGB")
            scale = short_side / min(photo.size)
            size = (round(photo.width * scale), round(photo.height * scale))
            photo = photo.resize(size, Image.Resampling.BICUBIC)
        photo.save(images_dir / f"{name}.png")
        mask, _ = mask_generator(size[1], size[0], np.random.default_rng([seed, i]))
        Image.fromarray((mask[0].numpy() * 255).astype(np.uint8)).save(masks_dir / f"{name}.png")
    return images_dir, masks_dir
