"""evaluation.manifests.files: manifest CSVs (columns, gzip, unique ids, one-line errors) and the mask checksum,
which covers the decoded pixels, not the PNG bytes."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from dmfn_lightning.core.errors import ManifestError
from dmfn_lightning.evaluation.manifests.files import (
    Manifest,
    ManifestRow,
    hole_png,
    pixels_sha256,
    read_manifest,
    write_manifest,
)
from dmfn_lightning.evaluation.manifests.masks import generate_mask, load_generators, materialise


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


HEADER = ",".join(("id", "image", "mask", "hole_ratio", "bucket", "seed", "generator", "mask_sha256"))
GOOD = "r0,img0.png,masks/m.png,0.250000,20-30%,0,," + "0" * 64


def _manifest(tmp_path, *rows: str):
    path = tmp_path / "m.csv"
    path.write_text("\n".join((HEADER, *rows)) + "\n")
    return path


@pytest.mark.parametrize("row_id", ["../../../victim", "a/b", "..", "sub\\name", "tab\there", "x" * 300])
def test_ids_that_are_not_plain_file_names_are_refused_when_read(tmp_path, row_id):
    # outputs are saved as <id>.png inside the output folder: an id must not name another folder
    path = _manifest(tmp_path, GOOD, GOOD.replace("r0,", f'"{row_id}",', 1))
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    message = str(info.value)
    assert f"{path} line 3" in message and repr(row_id) in message and "\n" not in message


@pytest.mark.parametrize("mask", ["../outside.png", "masks/../../outside.png", "/tmp/outside.png", "..\\x.png"])
def test_mask_paths_that_leave_the_mask_folder_are_refused_when_read(tmp_path, mask):
    path = _manifest(tmp_path, GOOD.replace("masks/m.png", mask))
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    message = str(info.value)
    assert f"{path} line 2" in message and repr(mask) in message and "\n" not in message


def test_a_mask_path_outside_the_mask_folder_is_never_written(tmp_path):
    # a Manifest built in Python skips read_manifest's checks: materialise checks where it writes anyway
    checksum = pixels_sha256(hole_png(generate_mask(load_generators()["center_256"], 0)))
    row = ManifestRow("r0", "img0.png", "../outside.png", 0.25, "", 0, "center_256", checksum)
    manifest = Manifest([row], "python", tmp_path / "masks")
    with pytest.raises(ManifestError, match=r"outside.*masks"):
        materialise(manifest)
    assert not (tmp_path / "outside.png").exists()


SECOND = GOOD.replace("r0,", "r1,", 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (SECOND[:-20], r"line 3: mask_sha256 '0+' is not a sha256"),  # cut off mid-line
        (SECOND[: SECOND.index("20-30%")], r"line 3: 5 fields where the header has 8"),  # cut off earlier
        (SECOND + ",extra", r"line 3: 9 fields where the header has 8"),
        (SECOND.replace(",0,,", ",zero,,"), r"line 3: seed 'zero' is not a whole number"),
        (SECOND.replace("0.250000", "quarter"), r"line 3: hole_ratio 'quarter' is not a number"),
        (SECOND.replace("img0.png", ""), r"line 3: empty image"),
    ],
    ids=["cut_in_checksum", "cut_earlier", "extra_field", "bad_seed", "bad_ratio", "empty_image"],
)
def test_a_truncated_or_malformed_manifest_names_the_file_and_line(tmp_path, text, expected):
    path = tmp_path / "m.csv"
    path.write_text(f"{HEADER}\n{GOOD}\n{text}")  # no newline at the end: as a cut-off file ends
    with pytest.raises(ManifestError, match=expected) as info:
        read_manifest(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message and "checksum" not in message
