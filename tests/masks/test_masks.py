"""Hole generators: exact boxes, released random boxes, free-form statistics, files, mixtures, yamls."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from dmfn_lightning.data import DataError
from dmfn_lightning.masks import (
    CenterMask,
    FreeFormMask,
    IrregularFileMask,
    MixedMask,
    RandomBoxMask,
    bbox_around,
    hole_ratio,
    mask_kinds,
)

CONF = Path(__file__).resolve().parents[2] / "conf"
MASK_NAMES = list(mask_kinds())  # every registered kind's conf/mask/<kind>.yaml (the registry: test_registry.py)


def _check_contract(mask: torch.Tensor, bbox: tuple, size: int) -> None:
    assert mask.shape == (1, size, size)
    assert mask.dtype == torch.float32
    assert set(torch.unique(mask).tolist()) <= {0.0, 1.0}
    assert len(bbox) == 4 and all(isinstance(v, int) for v in bbox)
    top, left, h, w = bbox
    assert (h, w) == (size // 2, size // 2)
    assert 0 <= top <= size - h and 0 <= left <= size - w


def _hole_extent(mask: torch.Tensor) -> tuple[int, int, int, int]:
    rows = torch.nonzero(mask[0].any(dim=1)).flatten()
    cols = torch.nonzero(mask[0].any(dim=0)).flatten()
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


# ----------------------------------------------------------------------------------------------- boxes


def test_center_mask_is_exact_128_box_at_64_on_256():
    mask, bbox = CenterMask()(256, 256, np.random.default_rng(0))
    _check_contract(mask, bbox, 256)
    assert bbox == (64, 64, 128, 128)
    expected = torch.zeros(1, 256, 256)
    expected[:, 64:192, 64:192] = 1
    assert torch.equal(mask, expected)
    assert int(mask.sum()) == 128 * 128
    # no randomness: any rng gives the same hole
    assert torch.equal(mask, CenterMask()(256, 256, np.random.default_rng(123))[0])


def test_center_mask_scales_with_image_and_released_shrink():
    mask, bbox = CenterMask()(128, 128, np.random.default_rng(0))
    assert bbox == (32, 32, 64, 64) and int(mask.sum()) == 64 * 64
    mask, bbox = CenterMask()(256, 192, np.random.default_rng(0))  # non-square: (H/2) x (W/2)
    assert bbox == (64, 48, 128, 96) and int(mask.sum()) == 128 * 96
    # released test code: each side in by U{0, 1} (delta 0)
    shrinks = set()
    for seed in range(50):
        mask, bbox = CenterMask(shrink=True)(256, 256, np.random.default_rng(seed))
        assert bbox == (64, 64, 128, 128)
        r0, r1, c0, c1 = _hole_extent(mask)
        assert r0 - 64 == 191 - r1 and c0 - 64 == 191 - c1
        shrinks.update({r0 - 64, c0 - 64})
    assert shrinks == {0, 1}


def test_random_box_1000_draws_released_statistics():
    gen = RandomBoxMask(hole_size=0.5, delta=32)
    rng = np.random.default_rng(2020)
    tops, lefts, shrink_h, shrink_w = [], [], [], []
    for _ in range(1000):
        mask, bbox = gen(256, 256, rng)
        _check_contract(mask, bbox, 256)
        top, left, h, w = bbox
        assert (h, w) == (128, 128)
        r0, r1, c0, c1 = _hole_extent(mask)
        # the hole lies inside its bbox ...
        assert top <= r0 and r1 < top + h and left <= c0 and c1 < left + w
        # ... and the hole is exactly the box shrunk symmetrically (released: same dh top and bottom)
        dh, dw = r0 - top, c0 - left
        assert top + h - 1 - r1 == dh and left + w - 1 - c1 == dw
        assert int(mask.sum()) == (128 - 2 * dh) * (128 - 2 * dw)
        tops.append(top)
        lefts.append(left)
        shrink_h.append(dh)
        shrink_w.append(dw)
    # each side shrinks by U{0 .. 32/2 + 1} = 0 .. 17 px, and every value occurs
    assert set(shrink_h) == set(range(18)) and set(shrink_w) == set(range(18))
    assert abs(np.mean(shrink_h) - 8.5) < 1.0 and abs(np.mean(shrink_w) - 8.5) < 1.0
    # positions cover the allowed range [0, 256 - 128] with both ends reached
    for pos in (tops, lefts):
        assert min(pos) == 0 and max(pos) == 128
        assert len(set(pos)) >= 120  # of 129 possible values
        assert abs(np.mean(pos) - 64) < 4


def test_random_box_scales_delta_and_margin_with_image():
    gen = RandomBoxMask(delta=32, margin=16)
    rng = np.random.default_rng(1)
    shrinks, tops = set(), set()
    for _ in range(400):
        mask, (top, left, h, w) = gen(128, 128, rng)
        assert (h, w) == (64, 64)
        r0, _, c0, _ = _hole_extent(mask)
        shrinks.update({r0 - top, c0 - left})
        tops.add(top)
        assert 8 <= top <= 128 - 8 - 64 and 8 <= left <= 128 - 8 - 64  # margin 16 @256 -> 8 @128
    assert shrinks == set(range(10))  # delta 32 @256 -> 16 @128 -> U{0..9}
    assert min(tops) == 8 and max(tops) == 56


# ------------------------------------------------------------------------------------------- free-form


def test_free_form_500_draws_statistics_binary_and_bounds():
    cfg = OmegaConf.load(CONF / "mask" / "free_form.yaml")
    gen = instantiate(cfg)
    assert isinstance(gen, FreeFormMask)
    lo, hi = gen.hole_ratio
    assert (lo, hi) == (0.01, 0.6)
    rng = np.random.default_rng(7)
    ratios = []
    for _ in range(500):
        mask, bbox = gen(256, 256, rng)
        _check_contract(mask, bbox, 256)
        assert bbox == bbox_around(mask)
        ratio = hole_ratio(mask)
        assert lo <= ratio <= hi
        ratios.append(ratio)
    ratios = np.array(ratios)
    # DeepFill v2's released parameters at 256 px: mean hole ~15 %, spread from a few % to ~40 %
    assert 0.11 <= ratios.mean() <= 0.20
    assert 0.05 <= ratios.std() <= 0.12
    assert np.percentile(ratios, 5) < 0.06 and np.percentile(ratios, 95) > 0.25
    assert len(np.unique(ratios)) > 450  # not a handful of repeated masks


def test_free_form_is_deterministic_with_a_seed_and_varies_without():
    gen = FreeFormMask()
    a = [gen(256, 256, np.random.default_rng(42)) for _ in range(3)]
    assert all(torch.equal(a[0][0], m) and a[0][1] == b for m, b in a)
    stream1 = np.random.default_rng(5)
    stream2 = np.random.default_rng(5)
    for _ in range(20):
        m1, b1 = gen(256, 256, stream1)
        m2, b2 = gen(256, 256, stream2)
        assert torch.equal(m1, m2) and b1 == b2
    other = gen(256, 256, np.random.default_rng(6))[0]
    assert not torch.equal(a[0][0], other)


def test_free_form_tight_bounds_and_size_scaling():
    gen = FreeFormMask(hole_ratio=(0.2, 0.3))
    rng = np.random.default_rng(0)
    ratios = [hole_ratio(gen(128, 128, rng)[0]) for _ in range(100)]
    assert min(ratios) >= 0.2 and max(ratios) <= 0.3
    # brush width and segment length scale with the image: similar hole ratios at 128 and 256
    rng = np.random.default_rng(1)
    small = np.mean([hole_ratio(FreeFormMask()(128, 128, rng)[0]) for _ in range(300)])
    big = np.mean([hole_ratio(FreeFormMask()(256, 256, rng)[0]) for _ in range(300)])
    assert abs(small - big) < 0.03
    with pytest.raises(RuntimeError, match="hole ratio"):
        FreeFormMask(hole_ratio=(0.99, 1.0), max_tries=3)(64, 64, rng)


# ------------------------------------------------------------------------------------------------ bbox


def test_bbox_around_centres_and_clamps():
    mask = torch.zeros(1, 256, 256)
    mask[:, 100:140, 60:100] = 1  # hole centre (120, 80)
    assert bbox_around(mask) == (56, 16, 128, 128)
    mask = torch.zeros(1, 256, 256)
    mask[:, 0:10, 250:256] = 1  # top-right corner: clamped
    assert bbox_around(mask) == (0, 128, 128, 128)
    assert bbox_around(torch.zeros(256, 256)) == (64, 64, 128, 128)  # empty: centred
    assert bbox_around(np.ones((100, 60))) == (25, 15, 50, 30)
    with pytest.raises(ValueError):
        bbox_around(torch.zeros(2, 8, 8))


# ----------------------------------------------------------------------------------------------- files


def _write_mask(path: Path, size: int, box: tuple[int, int, int, int], invert: bool = False) -> None:
    arr = np.zeros((size, size), np.uint8)
    top, left, h, w = box
    arr[top : top + h, left : left + w] = 255
    if invert:
        arr = 255 - arr
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_irregular_file_masks_nearest_resize_binarise_and_augment(tmp_path):
    # 512 px mask: hole rows 0..127, cols 0..255 -> at 256 px exactly rows 0..63, cols 0..127 (ratio 1/8)
    _write_mask(tmp_path / "masks" / "a.png", 512, (0, 0, 128, 256))
    (tmp_path / "masks" / "notes.txt").write_text("not a mask")
    gen = IrregularFileMask(root=tmp_path / "masks", augment=False)
    mask, bbox = gen(256, 256, np.random.default_rng(0))
    _check_contract(mask, bbox, 256)
    assert hole_ratio(mask) == 1 / 8
    assert int(mask[0, :64, :128].sum()) == 64 * 128
    assert bbox == (0, 0, 128, 128)  # centred on the hole (32, 64), clamped
    # white = hole by default; invert swaps
    inv = IrregularFileMask(root=tmp_path / "masks", augment=False, invert=True)(256, 256, np.random.default_rng(0))
    assert hole_ratio(inv[0]) == 7 / 8
    # training augmentation: flips and 90-degree turns keep the ratio, move the hole to all four corners
    aug = IrregularFileMask(root=tmp_path / "masks", augment=True)
    rng = np.random.default_rng(3)
    corners = set()
    for _ in range(40):
        m, b = aug(256, 256, rng)
        _check_contract(m, b, 256)
        assert hole_ratio(m) == 1 / 8
        corners.add((bool(m[0, 0, 0]), bool(m[0, 255, 255])))
    assert {(True, False), (False, True)} <= corners


def test_irregular_file_masks_from_list_with_ratio_bins(tmp_path):
    _write_mask(tmp_path / "m" / "small.png", 100, (0, 0, 10, 10))  # 1 %
    _write_mask(tmp_path / "m" / "big.png", 100, (0, 0, 50, 50))  # 25 %
    (tmp_path / "list.txt").write_text("# masks\nm/small.png\n\nm/big.png\n")
    gen = IrregularFileMask(root=tmp_path, list=tmp_path / "list.txt", hole_ratio=(0.2, 0.3))
    assert len(gen.files) == 2
    rng = np.random.default_rng(0)
    assert all(hole_ratio(gen(64, 64, rng)[0]) == 0.25 for _ in range(10))
    with pytest.raises(DataError, match="does not exist"):
        IrregularFileMask(root=tmp_path / "nowhere")(64, 64, rng)
    (tmp_path / "bad.txt").write_text("m/small.png\nm/missing.png\n")
    with pytest.raises(DataError, match=r"missing\.png"):
        IrregularFileMask(root=tmp_path, list=tmp_path / "bad.txt")(64, 64, rng)


# -------------------------------------------------------------------------------------------- mixtures


def test_mixed_mask_choose_follows_probabilities():
    gen = MixedMask({"center": CenterMask(), "box": RandomBoxMask()}, {"center": 0.25, "box": 0.75}, "choose")
    rng = np.random.default_rng(0)
    center = torch.zeros(1, 64, 64)
    center[:, 16:48, 16:48] = 1
    n_center = sum(torch.equal(gen(64, 64, rng)[0], center) for _ in range(800))
    # a random box equals the exact centre box with probability ~ 1/33^2 * 1/10^2: negligible
    assert abs(n_center / 800 - 0.25) < 0.05


def test_mixed_mask_union_ors_holes_and_centres_bbox():
    gen = MixedMask([FreeFormMask(), RandomBoxMask()], [1.0, 1.0], combine="union")
    rng = np.random.default_rng(0)
    for _ in range(20):
        mask, bbox = gen(256, 256, rng)
        _check_contract(mask, bbox, 256)
        assert bbox == bbox_around(mask)
        assert hole_ratio(mask) >= (128 - 34) ** 2 / 256**2  # at least the shrunk box
    with pytest.raises(ValueError):
        MixedMask([CenterMask()], [2.0], combine="union")
    with pytest.raises(ValueError):
        MixedMask({"a": CenterMask()}, {"b": 1.0})


# --------------------------------------------------------------------------------------------- configs


def _compose_mask(name: str, tmp_path: Path, overrides: list[str] | None = None):
    conf = tmp_path / "conf"
    shutil.copytree(CONF / "mask", conf / "mask")
    (conf / "top.yaml").write_text("defaults:\n  - mask: random_box\n  - _self_\nseed: 0\n")
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        return compose("top", overrides=[f"mask={name}", *(overrides or [])])


@pytest.mark.parametrize("name", MASK_NAMES)
def test_every_mask_yaml_instantiates_and_honours_the_contract(name, tmp_path, monkeypatch):
    _write_mask(tmp_path / "data" / "irregular_masks" / "a.png", 64, (8, 8, 16, 40))
    monkeypatch.setenv("DMFN_DATA", str(tmp_path / "data"))
    raw = OmegaConf.load(CONF / "mask" / f"{name}.yaml")
    assert raw._target_.startswith("dmfn_lightning.masks.")
    cfg = _compose_mask(name, tmp_path)
    gen = instantiate(cfg.mask)
    rng = np.random.default_rng(0)
    for size in (256, 64):
        mask, bbox = gen(size, size, rng)
        _check_contract(mask, bbox, size)
        assert 0 < hole_ratio(mask) < 1


def test_center_shrink_yaml_is_the_released_ffhq_training_hole(tmp_path):
    # the released FFHQ config trains on the centred 128 x 128 box shrunk like the random one (delta 32)
    assert "_target_" not in (CONF / "mask" / "center_shrink.yaml").read_text()  # composed from center.yaml
    gen = instantiate(_compose_mask("center_shrink", tmp_path).mask)
    assert isinstance(gen, CenterMask) and gen.shrink and gen.delta == (32.0, 32.0)
    rng = np.random.default_rng(7)
    shrink_h, shrink_w = set(), set()
    for _ in range(400):
        mask, bbox = gen(256, 256, rng)
        _check_contract(mask, bbox, 256)
        assert bbox == (64, 64, 128, 128)  # the local window is the unshrunk centred box
        r0, r1, c0, c1 = _hole_extent(mask)
        assert r0 - 64 == 191 - r1 and c0 - 64 == 191 - c1  # same amount off opposite sides
        shrink_h.add(r0 - 64)
        shrink_w.add(c0 - 64)
    assert shrink_h == shrink_w == set(range(18))  # U{0 .. 32/2 + 1}
    small = {_hole_extent(gen(128, 128, rng)[0])[0] - 32 for _ in range(200)}
    assert small == set(range(10))  # delta scales with the image: 16 at 128 px


def test_mixed_yaml_composes_free_form_and_random_box_without_copies(tmp_path):
    text = (CONF / "mask" / "mixed.yaml").read_text()
    assert "FreeFormMask" not in text and "RandomBoxMask" not in text  # composed, not copied
    cfg = _compose_mask("mixed", tmp_path, ["mask.masks.free_form.width=[8,20]", "mask.probs.random_box=0.0"])
    gen = instantiate(cfg.mask)
    assert isinstance(gen, MixedMask) and gen.combine == "union"
    assert [type(m).__name__ for m in gen.masks] == ["FreeFormMask", "RandomBoxMask"]
    assert gen.masks[0].width == (8.0, 20.0)
    assert gen.probs == [1.0, 0.0]
