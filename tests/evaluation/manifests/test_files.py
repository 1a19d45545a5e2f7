"""evaluation.manifests.files: manifest CSVs (columns, gzip, unique ids, one-line errors) and the mask checksum,
which covers the decoded pixels, not the PNG bytes."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from dmfn_lightning.core.errors import ManifestError
from dmfn_lightning.evaluation.manifests.files import ManifestRow, pixels_sha256, read_manifest, write_manifest
from dmfn_lightning.evaluation.manifests.masks import materialise


def test_bad_manifests_are_one_line_errors(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(ManifestError, match="manifest file does not exist"):
        read_manifest(missing)
    with pytest.raises(ManifestError, match="no such shipped manifest"):
        read_manifest("pkg:mars_center")
    bad = tmp_path / "bad.csv"
    bad.write_text("image,mask\na.png,m.png\n")
    with pytest.raises(ManifestError, match="missing column"):
        read_manifest(bad)
    row = ManifestRow("x", "a.png", "m.png", 0.1, "0-10%", 0, "", "0" * 64)
    write_manifest(tmp_path / "dup.csv", [row, row])
    with pytest.raises(ManifestError, match="not unique"):
        read_manifest(tmp_path / "dup.csv")
    write_manifest(tmp_path / "one.csv.gz", [row])  # compressed manifests read back the same
    assert read_manifest(tmp_path / "one.csv.gz").rows == [row]
    with pytest.raises(ManifestError, match=r"m\.png: mask file of row 'x'.*does not exist"):
        materialise(read_manifest(tmp_path / "one.csv.gz"))


def test_the_checksum_covers_the_decoded_pixels_not_the_png_bytes(written_manifest, tmp_path):
    # (split from the edited-mask evaluation of tests/test_evaluate.py)
    folder = tmp_path / "edited"
    shutil.copytree(written_manifest["manifest"].parent, folder)
    manifest = folder / "eval.csv"
    target = folder / read_manifest(manifest).rows[2].mask
    pixels = np.asarray(Image.open(target)).copy()
    assert pixels_sha256(Image.open(target)) == read_manifest(manifest).rows[2].mask_sha256
    pixels[0, 0] = 255 - pixels[0, 0]  # one pixel
    # re-encoding keeps an edit an edit, and an unedited mask written by another encoder (here: other compression
    # levels) still passes
    Image.fromarray(pixels).save(target, compress_level=0)
    with pytest.raises(ManifestError, match="checksum"):
        materialise(read_manifest(manifest))
    pixels[0, 0] = 255 - pixels[0, 0]
    Image.fromarray(pixels).save(target, compress_level=1)
    assert materialise(read_manifest(manifest)) >= 1
