"""data.files: finding the images of a split (recursive folder scan, any-case extensions, number ranges, limits,
expected counts) and the errors for a missing or empty folder."""

from __future__ import annotations

import pytest

from dmfn_lightning.data import DataError, DMFNDataModule, ImageDataset, list_images
from tests.data.data_fakes import save_image


def test_folder_is_searched_recursively_with_any_case_extensions(tmp_path):
    for name in ["a.jpg", "b.JPEG", "sub/c.Png", "sub/deeper/d.webp", "e.BMP", "f.tif", "g.TIFF"]:
        save_image(tmp_path / name)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "model.ckpt").write_bytes(b"x")
    save_image(tmp_path / ".hidden.png")
    files = list_images(str(tmp_path))
    assert [p.relative_to(tmp_path).as_posix() for p in files] == [
        "a.jpg",
        "b.JPEG",
        "e.BMP",
        "f.tif",
        "g.TIFF",
        "sub/c.Png",
        "sub/deeper/d.webp",
    ]


def test_missing_root_and_empty_folder_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match=r"nowhere: image folder does not exist"):
        ImageDataset(str(tmp_path / "nowhere"))
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match=r"empty: no images found"):
        ImageDataset(str(tmp_path / "empty"))
    dm = DMFNDataModule(train=str(tmp_path / "empty"), val=str(tmp_path / "empty"), image_size=16)
    with pytest.raises(DataError, match=r"data.train: .*empty: no images found"):
        dm.setup("fit")
    assert issubclass(DataError, ValueError)


def test_number_range_limit_and_expected_count(tmp_path):
    for n in [0, 59999, 60000, 60001, 69999, 70000]:
        save_image(tmp_path / f"{n // 1000:02d}000" / f"{n:05d}.png")
    names = [p.stem for p in list_images({"root": str(tmp_path), "number_range": [60000, 69999]})]
    assert names == ["60000", "60001", "69999"]
    assert len(list_images({"root": str(tmp_path), "limit": 2})) == 2
    with pytest.raises(DataError, match="found 3 images but this split must have exactly 10000"):
        list_images({"root": str(tmp_path), "number_range": [60000, 69999], "expected_count": 10000})
