"""The data an evaluation reads: the data group's test split with fixed holes, or a manifest's (image, mask) pairs.

Table 1 of Hui et al. (arXiv:2002.02609) uses the test split at 256 px with the exact centred 128 x 128 hole
(:func:`table1_protocol`); free-form/irregular holes are evaluated by hole ratio (:func:`is_box_mask` says when).
Irregular mask files are used as they are (no training flips/rotations), so the holes are a pure function of
(seed, image index). A manifest (:mod:`dmfn_lightning.manifest`) names exact (image, mask) pairs instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict
from torch.utils.data import DataLoader

from dmfn_lightning.core.errors import ConfigError, DataError, ManifestError
from dmfn_lightning.data.datamodule import DMFNDataModule
from dmfn_lightning.data.datasets import collate_samples
from dmfn_lightning.data.files import list_images

# The manifest submodules, not the dmfn_lightning.manifest facade: its score_outputs imports the evaluation.
from dmfn_lightning.evaluation.manifests.dataset import ManifestDataset, mask_size, resolve_images
from dmfn_lightning.evaluation.manifests.files import Manifest, read_manifest
from dmfn_lightning.evaluation.manifests.masks import materialise
from dmfn_lightning.masks import CenterMask, RandomBoxMask

__all__ = [
    "build_datamodule",
    "check_manifest_out_data",
    "is_box_mask",
    "is_table1_setting",
    "manifest_folders",
    "manifest_loader",
    "manifest_settings",
    "relative_image",
    "table1_protocol",
]


def _freeze_mask_augmentation(mask_generator: Any) -> None:
    """Irregular mask files are flipped/rotated for training; an evaluation uses each file as it is."""
    if hasattr(mask_generator, "augment"):
        mask_generator.augment = False
    for child in getattr(mask_generator, "masks", None) or []:
        _freeze_mask_augmentation(child)


def build_datamodule(cfg: DictConfig) -> Any:
    """The data group's data module, set up for the test split (``batch_size``/``num_workers`` overrides applied)."""
    data_cfg = cfg.data.copy()
    with open_dict(data_cfg):
        if cfg.batch_size is not None:
            data_cfg.eval_batch_size = int(cfg.batch_size)
        if cfg.num_workers is not None:
            data_cfg.num_workers = int(cfg.num_workers)
    try:
        datamodule = instantiate(data_cfg)
        _freeze_mask_augmentation(datamodule.eval_mask)
        datamodule.setup("test")
    except DataError as err:
        raise DataError(
            f"{err}. Evaluation data is read from $DMFN_DATA/<dataset> (or data.root=...); see conf/data/ and the "
            "README's 'Reproducing the paper' section for the expected layout."
        ) from err
    return datamodule


def is_box_mask(mask_generator: Any) -> bool:
    """Box holes (Table 1) get no by-hole-ratio table."""
    return isinstance(mask_generator, CenterMask | RandomBoxMask)


def is_table1_setting(mask_generator: Any, image_size: int) -> bool:
    """True for the exact Table 1 setting: 256 px images and the exact centred half-size box (also what
    ``experiments/collect.py`` checks a training run's validation against)."""
    return (
        isinstance(mask_generator, CenterMask)
        and mask_generator.hole_size == (0.5, 0.5)
        and not mask_generator.shrink
        and int(image_size) == 256
    )


def table1_protocol(datamodule: Any) -> bool:
    """True when a data module's test split is evaluated with the exact Table 1 setting (:func:`is_table1_setting`)."""
    return is_table1_setting(getattr(datamodule, "eval_mask", None), getattr(datamodule, "image_size", 0) or 0)


def manifest_settings(datamodule: Any) -> tuple[Path | None, bool, Any]:
    """(data root, allow_upscale, test source) of a data module whose test images a manifest can name."""
    if not isinstance(datamodule, DMFNDataModule):
        raise ConfigError(
            f"manifests need an image-folder data group (paris, places2, celeba_hq, ffhq, folder), not "
            f"{type(datamodule).__name__}"
        )
    source = datamodule.source("test")
    allow = bool(source.allow_upscale if source and source.allow_upscale is not None else datamodule.allow_upscale)
    return (Path(datamodule.root).expanduser() if datamodule.root else None), allow, source


def check_manifest_out_data(datamodule: Any) -> None:
    """A written manifest records image paths, not crops: the test images must be centre-cropped at full scale."""
    _root, _allow, source = manifest_settings(datamodule)
    crop = (source.crop if source else None) or "center"
    scale = tuple(source.scale) if source and source.scale else (1.0, 1.0)
    hflip = source.hflip if source and source.hflip is not None else 0.0
    if crop != "center" or scale != (1.0, 1.0) or hflip:
        raise ConfigError(
            f"manifest_out needs centre-cropped test images at scale 1 without flips (the test split has crop={crop}, "
            f"scale={list(scale)}, hflip={hflip}): a manifest records image paths, not crops"
        )


def relative_image(path: str, root: Path | None) -> str:
    """A manifest's image column: relative to the data root when the image is under it."""
    absolute = Path(path).expanduser().resolve()
    if root is not None:
        try:
            return absolute.relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return str(absolute)


def manifest_folders(manifest: Manifest, data_root: str | Path | None) -> list[tuple[str, Path]]:
    """The folders an evaluation through ``manifest`` reads from, as ``(what, folder)``: those of its images
    (relative paths are relative to ``data_root``) and of its masks."""
    root = Path(str(data_root)).expanduser() if data_root else None
    found: dict[Path, str] = {}
    for row in manifest.rows:
        image = Path(row.image).expanduser()
        if not image.is_absolute() and root is not None:
            image = root / image
        found.setdefault(image.parent, "the folder of the manifest's images")
        found.setdefault(manifest.mask_path(row).parent, "the folder of the manifest's masks")
    return [(what, folder) for folder, what in found.items()]


def manifest_loader(
    cfg: DictConfig, datamodule: Any, console: Any, manifest: Manifest | None = None
) -> tuple[Manifest, DataLoader]:
    """The manifest (``cfg.manifest``, unless already read; masks made and verified) and a DataLoader over its
    pairs."""
    root, allow_upscale, source = manifest_settings(datamodule)
    if manifest is None:
        manifest = read_manifest(str(cfg.manifest), cfg.get("manifest_masks"))
    with console.status(f"checking the masks of {manifest.name} ({len(manifest.rows)} rows)"):
        materialise(manifest)
    size = mask_size(manifest)
    if size != int(datamodule.image_size):
        raise ManifestError(
            f"the masks of {manifest.source} are {size}x{size} but data.image_size={datamodule.image_size}; "
            f"set data.image_size={size}"
        )
    # A flat folder (FFHQ without its NN000/ sub-folders) is matched by file name among the test split's files.
    paths = resolve_images(manifest, root, (lambda: list_images(source)) if source is not None else None)
    dataset = ManifestDataset(manifest, paths, size, allow_upscale)
    workers = int(cfg.num_workers) if cfg.num_workers is not None else int(datamodule.num_workers)
    batch_size = int(cfg.batch_size) if cfg.batch_size is not None else int(datamodule.eval_batch_size)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate_samples)
    return manifest, loader
