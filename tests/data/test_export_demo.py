"""data.export_demo: ``python -m dmfn_lightning.data.export_demo`` writes the held-out demo photos (resized to the
short side asked for) and one free-form hole per photo, as PNG files."""

from __future__ import annotations

import numpy as np
from PIL import Image

from dmfn_lightning.data.demo import VAL_PHOTOS
from dmfn_lightning.data.export_demo import main


def test_export_writes_each_held_out_photo_and_its_mask(tmp_path, capsys, no_network):
    main(["--export", str(tmp_path / "demo"), "--short-side", "40", "--seed", "3"])
    images, masks = tmp_path / "demo" / "images", tmp_path / "demo" / "masks"
    assert VAL_PHOTOS == ("chelsea", "coffee")
    assert (
        sorted(p.name for p in images.iterdir())
        == sorted(p.name for p in masks.iterdir())
        == [
            "chelsea.png",
            "coffee.png",
        ]
    )
    # chelsea is 451 x 300 and coffee 600 x 400: short side 40, aspect ratio kept
    expected = {"chelsea": (60, 40), "coffee": (60, 40)}
    for name, size in expected.items():
        photo, mask = Image.open(images / f"{name}.png"), Image.open(masks / f"{name}.png")
        assert photo.mode == "RGB" and photo.size == size
        assert mask.mode == "L" and mask.size == size
        levels = np.asarray(mask)
        assert set(np.unique(levels).tolist()) == {0, 255} and 0 < (levels == 255).mean() < 1
    assert f"wrote 2 held-out photos to {images} and their masks to {masks}" in capsys.readouterr().out
    again = tmp_path / "again"
    main(["--export", str(again), "--short-side", "40", "--seed", "3"])
    assert np.array_equal(np.asarray(Image.open(again / "masks" / "coffee.png")), levels)  # the seed fixes the holes
