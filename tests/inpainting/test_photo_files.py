"""Photos, masks and outputs on disk for the inpainting CLI (dmfn_lightning.inpainting.photo_files): mask names,
images and masks in one folder, pairing errors that name the files, and output paths checked before any work.
The same rules seen through the command line are in tests/test_inpaint.py."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dmfn_lightning.core.decode import read_size
from dmfn_lightning.core.errors import InpaintError, OutputPathError
from dmfn_lightning.inpainting.photo_files import (
    MASK_NAME_PATTERNS,
    check_inputs_kept,
    check_mask_sizes,
    find_images,
    mask_owner,
    match_masks,
    output_paths,
    skipped_masks,
    skipped_subfolders,
    split_masks,
)


def touch_images(folder: Path, *names: str, size: tuple[int, int] = (8, 6)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.fromarray(np.zeros((size[1], size[0], 3), dtype=np.uint8)).save(folder / name)
    return [folder / name for name in names]


def test_mask_names():
    assert len(MASK_NAME_PATTERNS) == 5
    for name in ("photo_mask", "photo-mask", "photo.mask", "mask_photo", "mask-photo", "photo_MASK", "Mask_photo"):
        assert mask_owner(name) == "photo", name
    for name in ("photo", "mask", "_mask", "masked_photo", "photomask"):
        assert mask_owner(name) is None, name


def test_masks_beside_their_images_are_not_images(tmp_path):
    names = ("photo.png", "photo_mask.png", "other.jpg", "mask-other.png", "x_mask.png")
    files = touch_images(tmp_path / "photos", *names)
    images, masks = split_masks(sorted(files))
    assert [p.name for p in images] == ["other.jpg", "photo.png", "x_mask.png"]  # x has no image: an image
    assert [p.name for p in masks] == ["mask-other.png", "photo_mask.png"]
    assert find_images(tmp_path / "photos") == images
    assert skipped_masks(tmp_path / "photos") == masks
    assert skipped_masks(files[0]) == [] and find_images(files[0]) == [files[0]]
    with pytest.raises(InpaintError, match="does not exist"):
        find_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InpaintError, match="has no images"):
        find_images(tmp_path / "empty")


def test_masks_are_matched_by_name_in_another_folder_or_the_same(tmp_path):
    images = touch_images(tmp_path / "images", "a.png", "b.png", "c.jpg")
    masks = touch_images(tmp_path / "masks", "a.png", "b_mask.png", "mask_c.png")
    assert match_masks(images, tmp_path / "masks") == masks
    assert match_masks(images, masks[0]) == [masks[0]] * 3  # one file: the mask of every image
    shared = touch_images(tmp_path / "shared", "a.png", "a_mask.png", "b.jpg", "b.mask.png")
    assert match_masks([shared[0], shared[2]], tmp_path / "shared") == [shared[1], shared[3]]


def test_pairing_errors_name_the_files(tmp_path):
    images = touch_images(tmp_path / "images", "a.png", "b.png")
    touch_images(tmp_path / "masks", "a.png", "a_mask.png")
    with pytest.raises(InpaintError, match=r"image a.png matches several masks .*a.png, a_mask.png"):
        match_masks(images[:1], tmp_path / "masks")
    with pytest.raises(InpaintError, match="is the input image itself"):
        match_masks(images, images[0])
    shared = touch_images(tmp_path / "shared", "photo.png", "photo.jpg")
    with pytest.raises(InpaintError, match=r"photo\.jpg and photo\.png differ only in their extension"):
        match_masks(shared, tmp_path / "shared")
    with pytest.raises(InpaintError, match="does not exist"):
        match_masks(images, tmp_path / "nowhere")


def test_images_without_masks_are_listed(tmp_path):
    images = touch_images(tmp_path / "images", "a.png", "b.png", "c.png")
    touch_images(tmp_path / "masks", "b.png")
    with pytest.raises(InpaintError, match=r"2 of 3 images have no mask in .*: a.png, c.png"):
        match_masks(images, tmp_path / "masks")


def test_output_paths_never_overwrite_an_input_or_a_folder(tmp_path):
    images = touch_images(tmp_path / "in", "a.png", "b.jpg")
    assert output_paths(images, tmp_path / "out") == [tmp_path / "out" / "a.png", tmp_path / "out" / "b.png"]
    assert output_paths(images[:1], tmp_path / "single.png") == [tmp_path / "single.png"]
    with pytest.raises(InpaintError, match="is the input image itself"):
        output_paths(images[:1], tmp_path / "in")
    with pytest.raises(InpaintError, match=r"a\.png and a\.jpg would both be written"):
        output_paths([images[0], touch_images(tmp_path / "in2", "a.jpg")[0]], tmp_path / "out")
    (tmp_path / "taken.txt").write_text("a file")
    with pytest.raises(OutputPathError, match="existing file"):
        output_paths(images, tmp_path / "taken.txt")
    (tmp_path / "out2" / "a.png").mkdir(parents=True)
    with pytest.raises(OutputPathError, match="existing folder"):
        output_paths(images, tmp_path / "out2")


def test_mask_sizes_are_checked_from_the_headers(tmp_path):
    images = touch_images(tmp_path / "in", "a.png", "b.png", size=(8, 6))
    masks = touch_images(tmp_path / "m", "a.png", size=(8, 6)) + touch_images(tmp_path / "m", "b.png", size=(4, 3))
    sizes = [read_size(p) for p in images]
    check_mask_sizes(images, sizes, [masks[0], None], read_size)
    with pytest.raises(InpaintError, match=r"1 mask\(s\) .*b.png is 4x3 but b.png is 8x6.*--resize-mask"):
        check_mask_sizes(images, sizes, masks, read_size)


def test_outputs_never_overwrite_a_mask_file_or_any_input(tmp_path):
    """Issue case 3: only the input image was protected; a mask file given as --output, or the mask folder as the
    output folder, was overwritten. Every input is protected, by path, symbolic link or hard link."""
    images = touch_images(tmp_path / "in", "a.png", "b.png")
    masks = touch_images(tmp_path / "masks", "a.png", "b.png")
    check_inputs_kept([tmp_path / "out" / "a.png", tmp_path / "out" / "b.png"], images, masks)  # no clash
    with pytest.raises(InpaintError, match=r"would overwrite the mask file .*masks/a\.png.*choose another --output"):
        check_inputs_kept(output_paths(images[:1], masks[0]), images[:1], masks[:1])  # --output m.png
    with pytest.raises(InpaintError, match=r"would overwrite the mask file .*a\.png \(and 1 more output"):
        check_inputs_kept(output_paths(images, tmp_path / "masks"), images, masks)  # --output masks/
    (tmp_path / "link.png").symlink_to(masks[1])
    os.link(masks[0], tmp_path / "hard.png")
    for out in (tmp_path / "link.png", tmp_path / "hard.png"):
        with pytest.raises(InpaintError, match="would overwrite the mask file"):
            check_inputs_kept([out], images[:1], [masks[0] if out.name == "hard.png" else masks[1]])
    os.link(images[0], tmp_path / "hard2.png")
    with pytest.raises(InpaintError, match="would overwrite the input image"):
        check_inputs_kept([tmp_path / "hard2.png"], images[:1], [None])


@pytest.mark.parametrize("option", ["--image", "--mask"])
def test_a_pipe_is_neither_a_file_nor_a_folder(option, tmp_path):
    """Issue case 15: a FIFO (or /dev/stdin on a pipe) as --image or --mask was listed as a folder:
    NotADirectoryError. It is one clear line."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(InpaintError, match=rf"{option} '.*pipe' is not a regular file or folder"):
        if option == "--image":
            find_images(fifo)
        else:
            match_masks(touch_images(tmp_path / "in", "a.png"), fifo)


def test_subfolders_of_an_image_folder_are_named(tmp_path):
    """Issue case 20: the subfolders of an --image folder are not inpainted; they are listed so that the command
    line can say so."""
    touch_images(tmp_path / "photos", "a.png")
    touch_images(tmp_path / "photos" / "2023", "b.png")
    (tmp_path / "photos" / "empty").mkdir()
    (tmp_path / "photos" / ".cache").mkdir()
    assert find_images(tmp_path / "photos") == [tmp_path / "photos" / "a.png"]
    assert skipped_subfolders(tmp_path / "photos") == [tmp_path / "photos" / "2023", tmp_path / "photos" / "empty"]
    assert skipped_subfolders(tmp_path / "photos" / "a.png") == []
