"""core.file_lists: text files naming one image per line (comments, blank lines, paths relative to a root or to
the list, missing files named) and ``pkg:<name>`` for the lists shipped in the package."""

from __future__ import annotations

from pathlib import Path

import pytest

from dmfn_lightning.core.file_lists import absolute_path, resolve_list_path
from dmfn_lightning.data import DataError, ImageDataset, read_file_list
from tests.data.data_fakes import save_image


def test_file_list_with_relative_paths_comments_and_missing_files(tmp_path):
    root = tmp_path / "dataset"
    save_image(root / "imgs" / "one.png")
    save_image(root / "imgs" / "two.jpg")
    absolute = save_image(tmp_path / "elsewhere" / "three.png")
    lst = tmp_path / "lists" / "split.txt"
    lst.parent.mkdir()
    lst.write_text(f"# test split\nimgs/one.png\n\n  imgs/two.jpg  \n{absolute}\n")
    files = read_file_list(lst, root)
    assert files == [root / "imgs" / "one.png", root / "imgs" / "two.jpg", absolute]
    ds = ImageDataset({"root": str(root), "list": str(lst)}, image_size=16)
    assert len(ds) == 3 and ds[0]["path"] == str(root / "imgs" / "one.png")
    # without root, relative lines resolve against the list's folder
    with pytest.raises(DataError, match=r"2 of 3 listed files do not exist.*lists/imgs/one.png"):
        read_file_list(lst)
    lst.write_text("imgs/one.png\nimgs/missing.png\n")
    with pytest.raises(DataError, match=r"missing\.png") as err:
        ImageDataset({"root": str(root), "list": str(lst)}, image_size=16)
    assert str(lst) in str(err.value)
    lst.write_text("# nothing\n")
    with pytest.raises(DataError, match="file list is empty"):
        read_file_list(lst, root)


def test_pkg_names_resolve_to_the_lists_shipped_in_the_package(tmp_path):
    paris = resolve_list_path("pkg:paris_eval.txt")
    assert paris.is_file() and paris.parent.name == "lists" and paris.parent.parent.name == "data"
    assert paris.read_text().splitlines()[0] == "paris_eval_gt/001_im.png"
    with pytest.raises(DataError) as info:
        resolve_list_path("pkg:paris.txt")
    message = str(info.value)
    assert message.startswith("pkg:paris.txt: no such packaged file list (shipped: ")
    assert "paris_eval.txt" in message and "celeba_hq_test.txt" in message
    # a packaged list read with a root: its relative lines resolve against the root
    (tmp_path / "paris_eval_gt").mkdir()
    for i in range(1, 101):
        (tmp_path / "paris_eval_gt" / f"{i:03d}_im.png").write_bytes(b"")
    files = read_file_list("pkg:paris_eval.txt", tmp_path)
    assert len(files) == 100 and files[41] == tmp_path / "paris_eval_gt" / "042_im.png"
    assert resolve_list_path(tmp_path / "x.txt") == tmp_path / "x.txt"  # any other path is itself


def test_missing_list_and_many_missing_files_are_named_briefly(tmp_path, monkeypatch):
    with pytest.raises(DataError, match=r"nowhere\.txt: file list does not exist"):
        read_file_list(tmp_path / "nowhere.txt")
    lst = tmp_path / "split.txt"
    lst.write_text("\n".join(f"img{i}.png" for i in range(8)) + "\n")
    (tmp_path / "img3.png").write_bytes(b"")
    with pytest.raises(DataError) as info:
        read_file_list(lst)
    message = str(info.value)
    assert f"7 of 8 listed files do not exist (resolved against {tmp_path})" in message
    assert message.endswith(f"{tmp_path / 'img5.png'} and 2 more")  # five named, the rest counted
    monkeypatch.setenv("HOME", str(tmp_path))
    lst.write_text("~/img3.png\n")
    assert read_file_list(lst, root="/elsewhere") == [tmp_path / "img3.png"]  # ~ expanded, not joined to the root


def test_absolute_path_is_relative_to_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert absolute_path("lists/a.txt") == tmp_path / "lists" / "a.txt"
    assert absolute_path("/data/b.txt") == Path("/data/b.txt")
