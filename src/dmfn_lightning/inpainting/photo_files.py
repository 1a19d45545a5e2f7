"""Photos, masks and outputs on disk for the inpainting CLI: finding images, pairing each with its mask file by
name (:data:`MASK_NAME_PATTERNS`), and choosing output paths that never overwrite an input, image or mask
(:func:`check_inputs_kept`). An ``--image`` folder's own images are inpainted, not its subfolders'
(:func:`skipped_subfolders` names them, so that the command line can say so)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from dmfn_lightning.core.decode import IMAGE_FILE_EXTENSIONS
from dmfn_lightning.core.errors import InpaintError, OutputPathError
from dmfn_lightning.core.files import check_output_folder

__all__ = [
    "MASK_NAME_PATTERNS",
    "check_inputs_kept",
    "check_mask_sizes",
    "find_images",
    "mask_owner",
    "match_masks",
    "output_paths",
    "skipped_masks",
    "skipped_subfolders",
    "split_masks",
]

# How a mask file may be named after its image <stem>: "<stem>" itself only in another folder (see match_masks).
MASK_NAME_PATTERNS = ("<stem>_mask", "<stem>-mask", "<stem>.mask", "mask_<stem>", "mask-<stem>")
_MASK_NAME_SUFFIXES = ("_mask", "-mask", ".mask")
_MASK_NAME_PREFIXES = ("mask_", "mask-")


def _list_folder(folder: Path, suffixes: Sequence[str]) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes
    )


def mask_owner(stem: str) -> str | None:
    """The image stem that a mask named ``stem`` belongs to (``photo_mask`` -> ``photo``, ``mask_photo`` ->
    ``photo``; :data:`MASK_NAME_PATTERNS`, "mask" in any letter case), or ``None`` for any other name."""
    low = stem.lower()
    for suffix in _MASK_NAME_SUFFIXES:
        if low.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    for prefix in _MASK_NAME_PREFIXES:
        if low.startswith(prefix) and len(stem) > len(prefix):
            return stem[len(prefix) :]
    return None


def split_masks(files: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """(images, masks) of the files of one folder: a file named like the mask of another file there
    (``photo_mask.png`` beside ``photo.jpg``) is a mask, everything else an image."""
    stems = {p.stem for p in files}
    images, masks = [], []
    for path in files:
        owner = mask_owner(path.stem)
        (masks if owner is not None and owner != path.stem and owner in stems else images).append(path)
    return images, masks


def _check_file_or_folder(path: Path, option: str) -> None:
    """:class:`InpaintError` unless ``path`` is a regular file or a folder (a pipe such as ``/dev/stdin``, a
    device or a socket cannot be listed, nor read twice)."""
    if not path.exists():
        raise InpaintError(f"{option} {str(path)!r} does not exist")
    if not (path.is_file() or path.is_dir()):
        raise InpaintError(
            f"{option} {str(path)!r} is not a regular file or folder (a pipe, a device or a socket); give an "
            "image file or a folder of images"
        )


def find_images(path: Path) -> list[Path]:
    """The image file, or the images directly inside the folder (sorted), without the mask files in it and
    without its subfolders (:func:`skipped_subfolders`)."""
    _check_file_or_folder(path, "--image")
    if path.is_file():
        return [path]
    images, _ = split_masks(_list_folder(path, IMAGE_FILE_EXTENSIONS))
    if not images:
        raise InpaintError(f"--image folder {str(path)!r} has no images ({', '.join(IMAGE_FILE_EXTENSIONS)})")
    return images


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def match_masks(images: Sequence[Path], mask: Path) -> list[Path]:
    """The mask of each image: ``mask`` itself if it is a file, else the file in the folder ``mask`` named
    ``<stem>`` (only when ``mask`` is not the images' own folder) or like :data:`MASK_NAME_PATTERNS`.

    Raises :class:`InpaintError` listing every image without a mask, naming an image with several masks, and
    naming the files when images and masks share a folder and two of them differ only in their extension (which
    one would be the mask?). An image is never its own mask.
    """
    _check_file_or_folder(mask, "--mask")
    if mask.is_file():
        for image in images:
            if _same_file(image, mask):
                raise InpaintError(f"--mask {mask} is the input image itself; give the mask file")
        return [mask] * len(images)
    files = _list_folder(mask, IMAGE_FILE_EXTENSIONS)
    shared = any(_same_file(image.parent, mask) for image in images)
    by_stem: dict[str, list[Path]] = {}
    for path in files:
        by_stem.setdefault(path.stem, []).append(path)
    if shared:
        clashes = [group for stem, group in by_stem.items() if len(group) > 1 and mask_owner(stem) is None]
        if clashes:
            names = "; ".join(" and ".join(p.name for p in group) for group in clashes[:5])
            raise InpaintError(
                f"images and masks share the folder {mask}, but {names} differ only in their extension: which is "
                f"the image and which the mask? Name masks {' or '.join(MASK_NAME_PATTERNS)} (e.g. "
                f"{clashes[0][0].stem}_mask.png), or keep them in another folder"
            )
    by_owner: dict[str, list[Path]] = {}
    for path in files:
        owner = mask_owner(path.stem)
        if owner is not None:
            by_owner.setdefault(owner, []).append(path)
    matched, missing = [], []
    for image in images:
        found = [] if shared else list(by_stem.get(image.stem, []))
        found += by_owner.get(image.stem, [])
        found = [p for p in found if not _same_file(p, image)]  # never its own mask
        if not found:
            missing.append(image.name)
            continue
        if len(found) > 1:
            raise InpaintError(
                f"image {image.name} matches several masks in {mask}: {', '.join(p.name for p in found)}; keep one"
            )
        matched.append(found[0])
    if missing:
        shown = ", ".join(missing[:10]) + (f", ... ({len(missing) - 10} more)" if len(missing) > 10 else "")
        looked = ("" if shared else "<stem>.<ext>, ") + ", ".join(f"{p}.<ext>" for p in MASK_NAME_PATTERNS)
        raise InpaintError(
            f"{len(missing)} of {len(images)} images have no mask in {mask} (looked for {looked}): {shown}"
        )
    return matched


def output_paths(images: Sequence[Path], output: Path) -> list[Path]:
    """``<output>/<stem>.png`` per image (or ``output`` itself for one image and a ``.png`` path).

    Checked before any work: ``output`` must be (or be creatable as) a writable folder, not an existing file
    (except the ``.png`` target of a single image), and no output may be an existing folder or an input image.
    Raises :class:`~dmfn_lightning.core.errors.OutputPathError` or :class:`InpaintError`.
    """
    single_file = len(images) == 1 and output.suffix.lower() == ".png" and not output.is_dir()
    if single_file:
        check_output_folder(output.parent, f"--output {str(output)!r}: the folder")
        paths = [output]
    else:
        if output.is_file():
            raise OutputPathError(
                f"--output {str(output)!r} is an existing file; expected a folder"
                + (" (or a .png path for a single image)" if len(images) == 1 else "")
            )
        check_output_folder(output, "--output")
        paths = [output / f"{image.stem}.png" for image in images]
    seen: dict[Path, Path] = {}
    for image, out in zip(images, paths):
        if out in seen:
            raise InpaintError(f"{seen[out].name} and {image.name} would both be written to {out}; rename one")
        if out.is_dir():
            raise OutputPathError(f"the output {out} is an existing folder; remove it or choose another --output")
        if out.exists() and _same_file(out, image):
            raise InpaintError(f"the output {out} is the input image itself; choose another --output")
        seen[out] = image
    return paths


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file ``path`` names (links followed), or ``None`` when there is none."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_dev, info.st_ino


def check_inputs_kept(
    outputs: Sequence[Path], images: Sequence[Path], masks: Sequence[Path | None] = (), option: str = "--output"
) -> None:
    """Refuse, before any work, outputs that would overwrite an input: an image or a mask file, be it by the same
    path, through a symbolic link or as a hard link of it (the file itself is compared, not its name), e.g.
    ``--mask m.png --output m.png`` or ``--mask masks/ --output masks/`` with masks named ``<stem>.png``.

    Raises :class:`InpaintError` naming the first such output, how many there are and ``option``.
    """
    inputs: dict[tuple[int, int], tuple[str, Path]] = {}
    for kind, paths in (("mask", masks), ("image", images)):
        for path in paths:
            if path is not None and (key := _identity(path)) is not None:
                inputs.setdefault(key, (kind, path))
    clashes = [(out, inputs[key]) for out in outputs if (key := _identity(out)) is not None and key in inputs]
    if clashes:
        out, (kind, source) = clashes[0]
        more = f" (and {len(clashes) - 1} more output(s) that are inputs)" if len(clashes) > 1 else ""
        what = "the input image" if kind == "image" else "the mask file"
        raise InpaintError(
            f"the output {out} would overwrite {what} {source}{more}; choose another {option} (inputs are never "
            "overwritten)"
        )


def check_mask_sizes(
    images: Sequence[Path],
    sizes: Sequence[tuple[int, int]],
    masks: Sequence[Path | None],
    read_size: Callable[[Path], tuple[int, int]],
) -> None:
    """Fail before any work when a mask file's size differs from its image's (headers only)."""
    wrong = []
    for image, size, mask in zip(images, sizes, masks):
        if mask is not None and (mask_size := read_size(mask)) != size:
            wrong.append(f"{mask.name} is {mask_size[0]}x{mask_size[1]} but {image.name} is {size[0]}x{size[1]}")
    if wrong:
        shown = "; ".join(wrong[:5]) + (f"; ... ({len(wrong) - 5} more)" if len(wrong) > 5 else "")
        raise InpaintError(
            f"{len(wrong)} mask(s) do not have their image's size (width x height): {shown}. "
            "Pass --resize-mask to resize masks to their images with nearest neighbour."
        )


def skipped_masks(path: Path) -> list[Path]:
    """The files of folder ``path`` that are masks of its other files (never inputs); ``[]`` for a file."""
    return split_masks(_list_folder(path, IMAGE_FILE_EXTENSIONS))[1] if path.is_dir() else []


def skipped_subfolders(path: Path) -> list[Path]:
    """The subfolders of folder ``path`` (sorted, hidden ones left out), whose images are not inpainted: only the
    images directly inside an ``--image`` folder are (:func:`find_images`); ``[]`` for a file."""
    if not path.is_dir():
        return []
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
