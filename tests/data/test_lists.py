"""The file lists shipped in the package (dmfn_lightning/data/lists/, named ``pkg:<name>`` by conf/data): the
authors' CelebA-HQ test list, the Places2 and Paris test lists."""

from __future__ import annotations

import re

import pytest

from dmfn_lightning.data import DataError


def test_packaged_celeba_hq_and_places2_test_lists():
    import hashlib

    from dmfn_lightning.core.file_lists import resolve_list_path

    # the DMFN authors' CelebA-HQ test list (datasets/celeba-hq/list_val.txt), their folder kept, their order
    path = resolve_list_path("pkg:celeba_hq_test.txt")
    lines = path.read_text().splitlines()
    assert len(lines) == len(set(lines)) == 2000
    assert all(re.fullmatch(r"celeba_hq_val/img\d{8}\.png", line) for line in lines)
    numbers = [int(line[-12:-4]) for line in lines]
    assert numbers == sorted(numbers) and numbers[0] >= 0 and numbers[-1] < 30000
    assert lines[:3] == [
        "celeba_hq_val/img00000003.png",
        "celeba_hq_val/img00000014.png",
        "celeba_hq_val/img00000063.png",
    ]
    assert lines[-1] == "celeba_hq_val/img00029977.png"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == (
        "0fe240fad16c44222378563000b522e8b7152958fa26b84b92818161923991e4"
    )
    # Places2: the paper names no test images; ours are the first 100 of Places365's validation set
    places = resolve_list_path("pkg:places2_test.txt").read_text().splitlines()
    assert places == [f"val_256/Places365_val_{i:08d}.jpg" for i in range(1, 101)]


def test_packaged_paris_list_has_the_100_test_names():
    from dmfn_lightning.core.file_lists import resolve_list_path

    lines = resolve_list_path("pkg:paris_eval.txt").read_text().splitlines()
    assert lines == [f"paris_eval_gt/{i:03d}_im.png" for i in range(1, 101)]
    with pytest.raises(DataError, match="no such packaged file list"):
        resolve_list_path("pkg:nope.txt")
