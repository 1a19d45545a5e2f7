"""Datasets, decoding, seeding, bad files, the data module, the demo photos and the data yamls."""

from __future__ import annotations

import os
import re
import socket
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image
from torch.utils.data import DataLoader, DistributedSampler

from dmfn_lightning.data import (
    CenterMask,
    DataError,
    DemoDataModule,
    DMFNDataModule,
    ImageDataset,
    RandomBoxMask,
    collate_samples,
    list_images,
    load_rgb,
    read_file_list,
)
from dmfn_lightning.data.demo import TRAIN_PHOTOS, VAL_PHOTOS
from tests.fakes import fake_dataset_layouts

CONF = Path(__file__).resolve().parents[2] / "conf"
DATA_NAMES = ["paris", "places2", "celeba_hq", "ffhq", "folder", "demo"]


def _save(path: Path, arr: np.ndarray | None = None, size=(32, 24), mode: str | None = None, **kwargs) -> Path:
    """Write a test image (default: a 32 x 24 RGB gradient) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if arr is None:
        w, h = size
        yy, xx = np.mgrid[0:h, 0:w]
        arr = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), (xx + yy) % 256], -1)
        arr = arr.astype(np.uint8)
    img = Image.fromarray(arr)
    if mode is not None and mode != img.mode:
        img = img.convert(mode)
    img.save(path, **kwargs)
    return path


def _truncated_jpeg(path: Path) -> Path:
    rng = np.random.default_rng(0)
    _save(path, rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _bad_folder(root: Path) -> dict[str, Path]:
    """One truncated JPEG, one RGBA PNG, one grayscale PNG, one 16-bit PNG and one .txt file."""
    rgba = np.zeros((24, 32, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 255
    rgba[:, :16, 3] = 0  # left half transparent
    g16 = (np.arange(24 * 32).reshape(24, 32) * 85).astype(np.uint16)  # 0 .. 65195
    files = {
        "truncated": _truncated_jpeg(root / "a_truncated.jpg"),
        "rgba": _save(root / "b_rgba.png", rgba),
        "gray": _save(root / "c_gray.png", mode="L"),
        "g16": _save(root / "d_16bit.png", g16),
        "txt": root / "e_notes.txt",
    }
    files["txt"].write_text("not an image")
    return files


# --------------------------------------------------------------------------------------- finding files


def test_folder_is_searched_recursively_with_any_case_extensions(tmp_path):
    for name in ["a.jpg", "b.JPEG", "sub/c.Png", "sub/deeper/d.webp", "e.BMP", "f.tif", "g.TIFF"]:
        _save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "model.ckpt").write_bytes(b"x")
    _save(tmp_path / ".hidden.png")
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


def test_file_list_with_relative_paths_comments_and_missing_files(tmp_path):
    root = tmp_path / "dataset"
    _save(root / "imgs" / "one.png")
    _save(root / "imgs" / "two.jpg")
    absolute = _save(tmp_path / "elsewhere" / "three.png")
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
        _save(tmp_path / f"{n // 1000:02d}000" / f"{n:05d}.png")
    names = [p.stem for p in list_images({"root": str(tmp_path), "number_range": [60000, 69999]})]
    assert names == ["60000", "60001", "69999"]
    assert len(list_images({"root": str(tmp_path), "limit": 2})) == 2
    with pytest.raises(DataError, match="found 3 images but this split must have exactly 10000"):
        list_images({"root": str(tmp_path), "number_range": [60000, 69999], "expected_count": 10000})


# -------------------------------------------------------------------------------------------- decoding


def test_modes_are_converted_to_rgb(tmp_path):
    gray = load_rgb(_save(tmp_path / "g.png", np.full((4, 4), 77, np.uint8)))
    assert gray.mode == "RGB" and np.asarray(gray)[0, 0].tolist() == [77, 77, 77]
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)
    rgba[:2, :, 3] = 255
    out = np.asarray(load_rgb(_save(tmp_path / "a.png", rgba)))
    assert out[0, 0].tolist() == [10, 20, 30]  # opaque
    assert out[3, 0].tolist() == [255, 255, 255]  # transparent -> composited on white
    pal = Image.fromarray(np.full((4, 4, 3), (0, 128, 255), np.uint8)).convert("P", palette=Image.ADAPTIVE)
    pal.save(tmp_path / "p.png")
    assert np.asarray(load_rgb(tmp_path / "p.png"))[0, 0].tolist() == [0, 128, 255]
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))  # pure red
    cmyk.save(tmp_path / "c.jpg", quality=100)
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    r, g, b = np.asarray(load_rgb(tmp_path / "c.jpg"))[0, 0].tolist()
    assert r > 240 and g < 15 and b < 15
    g16 = np.array([[0, 257 * 100, 32768, 65535]], np.uint16)
    img16 = load_rgb(_save(tmp_path / "g16.png", g16))
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    assert np.asarray(img16)[0, :, 0].tolist() == [0, 100, 128, 255]  # rescaled, not clipped at 255
    la = Image.fromarray(np.full((4, 4), 50, np.uint8)).convert("LA")
    la.save(tmp_path / "la.png")
    assert np.asarray(load_rgb(tmp_path / "la.png"))[0, 0].tolist() == [50, 50, 50]


def test_exif_orientation_is_honoured(tmp_path):
    # stored 64 wide x 32 high: left half red, right half blue; EXIF 6 = rotate 90 degrees clockwise to display
    arr = np.zeros((32, 64, 3), np.uint8)
    arr[:, :32] = (255, 0, 0)
    arr[:, 32:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    Image.fromarray(arr).save(path, exif=exif, quality=100)
    img = load_rgb(path)
    assert img.size == (32, 64)  # displayed: 32 wide, 64 high
    shown = np.asarray(img).astype(int)
    assert shown[2, 16, 0] > 200 and shown[2, 16, 2] < 50  # top is red (was the left)
    assert shown[61, 16, 2] > 200 and shown[61, 16, 0] < 50  # bottom is blue
    # through the dataset: the centre square of the *displayed* image, top half red, bottom half blue
    sample = ImageDataset([path], image_size=32)[0]
    image = sample["image"]
    assert image.shape == (3, 32, 32)
    assert image[0, :12].mean() > 0.9 and image[2, :12].mean() < -0.9
    assert image[2, 20:].mean() > 0.9 and image[0, 20:].mean() < -0.9


# --------------------------------------------------------------------------------------- preprocessing


def test_centre_and_random_square_crops_bicubic_resize_and_range(tmp_path):
    # 96 wide x 32 high; pixel value = column index (red), so the crop offset is visible exactly
    arr = np.zeros((32, 96, 3), np.uint8)
    arr[..., 0] = np.arange(96)[None, :]
    path = _save(tmp_path / "wide.png", arr)
    ds = ImageDataset([path], image_size=32, crop="center")
    image = ds[0]["image"]
    assert image.dtype == torch.float32 and image.shape == (3, 32, 32)
    assert image[0, 0, 0].item() == pytest.approx(32 / 127.5 - 1)  # centred square: columns 32 .. 63
    assert image[0, 0, 31].item() == pytest.approx(63 / 127.5 - 1)
    assert image[1].eq(-1).all() and image.min() >= -1 and image.max() <= 1
    train = ImageDataset([path] * 1, image_size=32, crop="random", train=True, length=600, mask=CenterMask())
    offsets = {round((train[i]["image"][0, 0, 0].item() + 1) * 127.5) for i in range(600)}
    assert offsets == set(range(65))  # every position 0 .. 96 - 32 is reachable
    # bicubic resize of the full 32 x 32 square to 16 x 16 equals PIL's bicubic
    small = ImageDataset([path], image_size=16, crop="center")[0]["image"]
    ref = Image.fromarray(arr).crop((32, 0, 64, 32)).resize((16, 16), Image.BICUBIC)
    ref = torch.from_numpy(np.asarray(ref).copy()).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.equal(small, ref)


def test_released_crop_is_the_authors_non_square_box_stretched_by_the_resize(tmp_path):
    # 60 wide x 40 high, pixel value = column index: the released box (ix, 0, 40, 40) keeps columns ix .. 39
    arr = np.zeros((40, 60, 3), np.uint8)
    arr[..., 0] = np.arange(60)[None, :]
    path = _save(tmp_path / "wide.png", arr)
    ds = ImageDataset([path], image_size=16, crop="released", train=True)
    lefts = set()
    for seed in range(40):
        left = int(np.random.default_rng(seed).integers(0, 20, endpoint=True))  # the same draw as crop="random"
        assert ds.crop_box(60, 40, np.random.default_rng(seed)) == (left, 0, 40, 40)
        lefts.add(left)
        ref = Image.fromarray(arr).crop((left, 0, 40, 40)).resize((16, 16), Image.BICUBIC)
        ref = torch.from_numpy(np.asarray(ref).copy()).permute(2, 0, 1).float() / 127.5 - 1
        assert torch.equal(ds.load_image(0, np.random.default_rng(seed)), ref)
    assert len(lefts) > 5 and max(lefts) > 0
    # the square crop of the same draw differs: it keeps 40 columns from ix on
    square = ImageDataset([path], image_size=16, crop="random", train=True)
    assert square.crop_box(60, 40, np.random.default_rng(1)) != ds.crop_box(60, 40, np.random.default_rng(1))
    # square images are not cropped, as in the released loader
    assert ds.crop_box(40, 40, np.random.default_rng(0)) == (0, 0, 40, 40)
    # a box PIL would refuse (ix >= side, images more than twice as wide as tall) is a DataError naming the file
    wide = _save(tmp_path / "panorama.png", size=(100, 20))
    bad = ImageDataset([wide], image_size=16, crop="released", train=True)
    rng = next(
        np.random.default_rng(s) for s in range(100) if np.random.default_rng(s).integers(0, 80, endpoint=True) >= 20
    )
    with pytest.raises(
        DataError, match=r"panorama\.png: crop=released: the authors' box .* is empty for a 100x20 image"
    ):
        bad.load_image(0, rng)
    with pytest.raises(DataError, match="crop must be one of"):
        ImageDataset([path], crop="square")


def test_image_smaller_than_the_crop_is_a_clear_error(tmp_path):
    small = _save(tmp_path / "val" / "tiny.png", size=(20, 12))
    _save(tmp_path / "train" / "ok.png", size=(40, 40))
    dm = DMFNDataModule(train=str(tmp_path / "train"), val=str(tmp_path / "val"), image_size=16)
    with pytest.raises(DataError) as err:
        dm.setup("fit")  # evaluation headers are checked in setup, before any training
    assert str(small) in str(err.value) and "20x12" in str(err.value) and "16x16 crop" in str(err.value)
    # training with raise: at load time, naming the file
    ds = ImageDataset(str(tmp_path / "val"), image_size=16, train=True, on_bad_image="raise")
    with pytest.raises(DataError, match=r"tiny.png: image is 20x12, smaller than the 16x16 crop"):
        ds[0]
    # allowed explicitly: upsampled
    assert ImageDataset(str(tmp_path / "val"), image_size=16, allow_upscale=True)[0]["image"].shape == (3, 16, 16)


# ------------------------------------------------------------------------------------------- bad files


def test_bad_folder_skip_yields_valid_images_and_reports_the_bad_one(tmp_path):
    files = _bad_folder(tmp_path / "bad")
    ds = ImageDataset(str(tmp_path / "bad"), image_size=16, train=True, on_bad_image="skip", mask=RandomBoxMask())
    assert len(ds) == 4  # the .txt file is not an image candidate
    with pytest.warns(UserWarning, match=r"a_truncated\.jpg") as record:
        samples = [ds[i] for i in range(len(ds))]
    assert sum("a_truncated.jpg" in str(w.message) for w in record) == 1
    assert {s["path"] for s in samples} == {str(files[k]) for k in ("rgba", "gray", "g16")}
    assert ds.skipped_count == 1 and ds.skipped_paths == [str(files["truncated"])]
    for s in samples:
        assert s["image"].shape == (3, 16, 16) and s["image"].min() >= -1 and s["image"].max() <= 1
    rgba = next(s for s in samples if s["path"].endswith("b_rgba.png"))["image"]
    assert rgba[:, :, :4].eq(1).all()  # transparent half composited on white
    g16 = next(s for s in samples if s["path"].endswith("d_16bit.png"))["image"]
    assert g16.max() > 0.5  # 16-bit range rescaled, not clipped to white
    assert torch.equal(g16[0], g16[1]) and torch.equal(g16[1], g16[2])
    # evaluation with skip: the bad image is dropped from the batch, never duplicated
    ev = ImageDataset(str(tmp_path / "bad"), image_size=16, on_bad_image="skip")
    with pytest.warns(UserWarning, match=r"a_truncated\.jpg"):
        batches = list(DataLoader(ev, batch_size=4, collate_fn=collate_samples))
    assert len(batches) == 1 and batches[0]["image"].shape == (3, 3, 16, 16)
    assert batches[0]["index"].tolist() == [1, 2, 3] and ev.skipped_count == 1


def test_bad_folder_raise_names_the_file(tmp_path):
    files = _bad_folder(tmp_path / "bad")
    ds = ImageDataset(str(tmp_path / "bad"), image_size=16, train=True, on_bad_image="raise")
    with pytest.raises(DataError) as err:
        ds[0]
    assert str(files["truncated"]) in str(err.value) and "cannot decode" in str(err.value)
    assert [ds[i]["path"] for i in (1, 2, 3)] == [str(files[k]) for k in ("rgba", "gray", "g16")]
    # the data module's evaluation default is raise; a truncated JPEG has a valid header, so setup() passes and
    # the first evaluation batch raises, naming the file
    dm = DMFNDataModule(train=str(tmp_path / "bad"), val=str(tmp_path / "bad"), image_size=16, num_workers=0)
    dm.setup("fit")
    with pytest.raises(DataError, match=r"a_truncated\.jpg"):
        next(iter(dm.val_dataloader()))


def test_skip_counter_is_shared_with_dataloader_workers(tmp_path):
    _bad_folder(tmp_path / "bad")
    dm = DMFNDataModule(
        train=str(tmp_path / "bad"), val=None, image_size=16, batch_size=2, num_workers=2, persistent_workers=False
    )
    dm.setup("fit")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the warning is emitted in the worker process
        batches = list(dm.train_dataloader())
    assert sum(len(b["path"]) for b in batches) == 4
    assert all(not p.endswith("a_truncated.jpg") for b in batches for p in b["path"])
    assert dm.skipped_count == 1 and dm.skipped_paths[0].endswith("a_truncated.jpg")
    assert dm.sizes["train"]["skipped"] == 1
    with pytest.warns(UserWarning, match=r"1 bad image\(s\) were skipped: .*a_truncated.jpg"):
        dm.teardown("fit")


# ------------------------------------------------------------------------------------------ randomness


def _same_image_list(tmp_path: Path, n: int = 1) -> Path:
    _save(tmp_path / "img.png", size=(48, 32))
    lst = tmp_path / "list.txt"
    lst.write_text("img.png\n" * n)
    return lst


def _masks_by_worker(loader: DataLoader) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    masks = [b["mask"][0] for b in loader]  # batch_size 1, in order: batch k comes from worker k % 2
    return masks[0::2], masks[1::2]


@pytest.mark.parametrize("persistent", [False, True])
def test_two_workers_draw_different_masks_and_epoch_two_differs(tmp_path, persistent):
    lst = _same_image_list(tmp_path)
    ds = ImageDataset(
        {"root": str(tmp_path), "list": str(lst)},
        image_size=32,
        train=True,
        crop="random",
        mask=RandomBoxMask(),
        length=8,
    )
    loader = DataLoader(ds, batch_size=1, num_workers=2, persistent_workers=persistent, collate_fn=collate_samples)
    w0, w1 = _masks_by_worker(loader)
    assert len(w0) == len(w1) == 4
    # a shared stream would give identical sequences in the two workers
    assert not any(torch.equal(a, b) for a, b in zip(w0, w1))
    e2_w0, e2_w1 = _masks_by_worker(loader)
    assert not any(torch.equal(a, b) for a, b in zip(w0 + w1, e2_w0 + e2_w1))
    # single-process loading: the stream continues, so epoch 2 also differs
    single = DataLoader(ds, batch_size=8, num_workers=0, collate_fn=collate_samples)
    m1, m2 = next(iter(single))["mask"], next(iter(single))["mask"]
    assert not any(torch.equal(a, b) for a, b in zip(m1, m2))


def test_distributed_ranks_get_disjoint_samples_and_different_streams(tmp_path):
    from pytorch_lightning.utilities.data import _update_dataloader

    _save(tmp_path / "img.png", size=(48, 32))
    (tmp_path / "list.txt").write_text("img.png\n" * 16)
    results = {}
    for rank in (0, 1):
        dm = DMFNDataModule(
            train={"root": str(tmp_path), "list": str(tmp_path / "list.txt")},
            val=None,
            image_size=32,
            batch_size=4,
            num_workers=0,
            seed=3,
        )
        dm.trainer = SimpleNamespace(global_rank=rank)  # what Lightning provides under DDP
        dm.setup("fit")
        loader = dm.train_dataloader()
        # Lightning swaps in a DistributedSampler by re-instantiating the DataLoader; our settings survive
        loader = _update_dataloader(loader, DistributedSampler(loader.dataset, num_replicas=2, rank=rank, seed=3))
        assert loader.collate_fn is collate_samples and loader.batch_size == 4
        batches = list(loader)
        results[rank] = (
            torch.cat([b["index"] for b in batches]).tolist(),
            torch.cat([b["mask"] for b in batches]),
        )
    idx0, m0 = results[0]
    idx1, m1 = results[1]
    assert sorted(idx0 + idx1) == list(range(16)) and not set(idx0) & set(idx1)
    assert not any(torch.equal(a, b) for a, b in zip(m0, m1))


def test_eval_masks_and_images_are_a_pure_function_of_index_and_seed(tmp_path):
    for i in range(6):
        _save(tmp_path / "val" / f"{i}.png", size=(40 + 4 * i, 36))
    _save(tmp_path / "train" / "t.png", size=(40, 40))

    def loader(seed: int, workers: int):
        dm = DMFNDataModule(
            train=str(tmp_path / "train"),
            val=str(tmp_path / "val"),
            image_size=32,
            eval_batch_size=4,
            num_workers=workers,
            persistent_workers=False,
            eval_mask=RandomBoxMask(),  # random generator: determinism must come from the per-index seed
            seed=seed,
        )
        dm.setup("test")
        return dm.test_dataloader()

    def collect(dl):
        batches = list(dl)
        return torch.cat([b["image"] for b in batches]), torch.cat([b["mask"] for b in batches])

    dl = loader(seed=0, workers=0)
    first, second = collect(dl), collect(dl)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    # a fresh module, and worker processes, give the same holes
    assert torch.equal(collect(loader(seed=0, workers=2))[1], first[1])
    assert torch.equal(collect(loader(seed=0, workers=0))[0], first[0])
    # the holes differ between samples and with another seed
    assert len({tuple(m.flatten().tolist()) for m in first[1]}) == 6
    assert not torch.equal(collect(loader(seed=1, workers=0))[1], first[1])
    # the default evaluation hole is the exact centre box
    dm = DMFNDataModule(train=str(tmp_path / "train"), val=str(tmp_path / "val"), image_size=32, num_workers=0)
    dm.setup("validate")
    batch = next(iter(dm.val_dataloader()))
    assert batch["bbox"].tolist() == [[8, 8, 16, 16]] * 6
    assert batch["mask"][:, :, 8:24, 8:24].eq(1).all() and batch["mask"].sum() == 6 * 16 * 16


# ----------------------------------------------------------------------------------------- data module


def test_datamodule_batches_follow_the_contract_and_report_sizes(tmp_path):
    for i in range(10):
        _save(tmp_path / "train" / f"{i}.jpg", size=(48, 40))
    for i in range(3):
        _save(tmp_path / "val" / f"{i}.png", size=(40, 40))
    dm = DMFNDataModule(
        root=str(tmp_path),
        train="train",
        val={"root": "val"},
        image_size=32,
        batch_size=4,
        eval_batch_size=2,
        num_workers=0,
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"image", "mask", "bbox", "index", "path"}
    assert batch["image"].shape == (4, 3, 32, 32) and batch["image"].dtype == torch.float32
    assert batch["mask"].shape == (4, 1, 32, 32) and batch["mask"].dtype == torch.float32
    assert batch["bbox"].shape == (4, 4) and batch["bbox"].dtype == torch.int64
    assert batch["index"].shape == (4,) and batch["index"].dtype == torch.int64
    assert isinstance(batch["path"], list) and len(batch["path"]) == 4
    assert dm.sizes == {
        "train": {"files": 10, "samples": 10, "batches": 2, "skipped": 0},
        "val": {"files": 3, "samples": 3, "batches": 2, "skipped": 0},
    }
    assert "train: 10 samples from 10 files" in dm.describe()
    dm.setup("test")  # test defaults to val (same dataset object)
    assert dm.datasets["test"] is dm.datasets["val"]
    assert [len(b["path"]) for b in dm.test_dataloader()] == [2, 1]


def test_datamodule_runs_under_a_lightning_trainer(tmp_path):
    for i in range(4):
        _save(tmp_path / "train" / f"{i}.png", size=(40, 36))
        _save(tmp_path / "val" / f"{i}.png", size=(36, 36))

    class Probe(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.seen: list[tuple] = []

        def training_step(self, batch, _):
            self.seen.append(("train", tuple(batch["image"].shape), tuple(batch["bbox"].shape)))
            return (self.w * batch["image"].mean()).sum()

        def validation_step(self, batch, _):
            self.seen.append(("val", tuple(batch["image"].shape), tuple(batch["bbox"].shape)))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    dm = DMFNDataModule(
        train=str(tmp_path / "train"), val=str(tmp_path / "val"), image_size=32, batch_size=2, num_workers=0
    )
    model = Probe()
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=dm)
    assert model.seen.count(("train", (2, 3, 32, 32), (2, 4))) == 2
    assert model.seen.count(("val", (2, 3, 32, 32), (2, 4))) == 2


# ------------------------------------------------------------------------------------------------ demo


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_demo_datamodule_builds_offline_with_configured_batches(no_network, tmp_path):
    dm = DemoDataModule(image_size=64, batch_size=4, train_length=16, val_crops=8, seed=0)
    dm.setup("fit")
    assert dm.sizes["train"] == {"files": 6, "samples": 16, "batches": 4, "skipped": 0}
    assert dm.sizes["val"] == {"files": 2, "samples": 8, "batches": 2, "skipped": 0}
    train = list(dm.train_dataloader())
    assert [b["image"].shape for b in train] == [(4, 3, 64, 64)] * 4
    val = list(dm.val_dataloader())
    assert [b["image"].shape for b in val] == [(4, 3, 64, 64)] * 2
    train_sources = {Path(p).name for b in train for p in b["path"]}
    val_sources = {Path(p).name for b in val for p in b["path"]}
    assert not train_sources & val_sources  # split by source photo
    assert {Path(p).stem for p in dm.datasets["val"].paths} == {"chelsea", "coffee"}
    assert not set(TRAIN_PHOTOS) & set(VAL_PHOTOS)
    # the validation set is fixed: a second module gives the same crops and holes
    again = DemoDataModule(image_size=64, batch_size=4, train_length=16, val_crops=8, seed=0)
    again.setup("validate")
    assert all(
        torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
        for a, b in zip(val, again.val_dataloader())
    )
    # 8 different crops, all in [-1, 1]
    images = torch.cat([b["image"] for b in val])
    assert len({round(float(x), 4) for x in images.mean(dim=(1, 2, 3))}) == 8
    assert images.min() >= -1 and images.max() <= 1
    with pytest.raises(DataError, match="both the training and the validation"):
        DemoDataModule(train_photos=["chelsea"], val_photos=["chelsea"])


# ----------------------------------------------------------------------------------------------- yamls


@pytest.fixture
def data_conf(compose_conf):
    """The real conf/ tree's data group ``name`` (with the random-box mask and seed 0 it interpolates)."""

    def compose_data(name: str, *overrides: str, mask: str = "random_box", seed: int = 0):
        return compose_conf(None, f"+data={name}", f"+mask={mask}", f"+seed={seed}", *overrides)

    return compose_data


@pytest.mark.parametrize("name", DATA_NAMES)
def test_every_data_yaml_has_the_cli_keys_and_env_roots(data_conf, name, tmp_path):
    # Composed, as Hydra sees it: the folder datasets inherit their keys from data/_dataset.yaml.
    raw = data_conf(name).data
    assert raw._target_.startswith("dmfn_lightning.data.")
    for key in ("batch_size", "image_size", "num_workers", "train_mask", "eval_mask", "seed"):
        assert key in raw, key
    assert OmegaConf.to_container(raw)["train_mask"] == "${mask}"
    if name != "demo":
        assert OmegaConf.to_container(raw)["root"] == "${oc.env:DMFN_DATA,./data}/" + name
        assert raw.image_size == 256 and raw.batch_size == 16
    else:
        assert raw.image_size == 128


def test_demo_yaml_instantiates_with_mask_group_and_overrides(data_conf, tmp_path, no_network):
    cfg = data_conf("demo", "data.batch_size=2", "data.image_size=48", mask="free_form", seed=5)
    dm = instantiate(cfg.data)
    assert isinstance(dm, DemoDataModule) and dm.seed == 5
    assert type(dm.train_mask).__name__ == "FreeFormMask" and isinstance(dm.eval_mask, CenterMask)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, 48, 48) and batch["mask"].shape == (2, 1, 48, 48)
    assert len(dm.datasets["train"]) == 64 and len(dm.datasets["val"]) == 8


def test_dataset_yamls_find_their_layouts_under_DMFN_DATA(data_conf, tmp_path, monkeypatch):
    data = tmp_path / "data"
    fake_dataset_layouts(data)
    monkeypatch.setenv("DMFN_DATA", str(data))
    expect = {  # split -> number of files
        "paris": {"train": 3, "val": 100, "test": 100},
        "places2": {"train": 3, "val": 100, "test": 100},
        "celeba_hq": {"train": 3, "val": 500, "test": 2000},
        "ffhq": {"train": 3, "val": 500, "test": 10000},
        "folder": {"train": 3, "val": 1, "test": 1},
    }
    for name, splits in expect.items():
        cfg = data_conf(name, "data.image_size=16", "data.num_workers=0", "data.check_headers=none")
        dm = instantiate(cfg.data)
        assert isinstance(dm, DMFNDataModule) and isinstance(dm.train_mask, RandomBoxMask)
        assert dm.root == str(data / name)
        for split, count in splits.items():
            assert len(dm.build_dataset(split).paths) == count, (name, split)
        assert dm.crop == ("center" if name in ("celeba_hq", "ffhq") else "random")
    released = instantiate(data_conf("paris", "data.crop=released", "data.check_headers=none").data)
    assert released.crop == "released" and released.build_dataset("train").crop == "released"
    assert released.build_dataset("val").crop == "center"  # evaluation stays centred
    with pytest.raises(Exception, match="crop must be one of random, center, released, got 'square'"):
        instantiate(data_conf("paris", "data.crop=square").data)  # Hydra wraps the DataError
    ffhq = instantiate(data_conf("ffhq", "data.check_headers=none").data)
    test_names = [p.stem for p in ffhq.build_dataset("test").paths]
    assert test_names[0] == "60000" and test_names[-1] == "69999"
    # CelebA-HQ's test split is the authors' list of 2,000 files, in their order; a missing one is named
    celeba = instantiate(data_conf("celeba_hq", "data.check_headers=none").data)
    test_names = [p.name for p in celeba.build_dataset("test").paths]
    assert test_names[:2] == ["img00000003.png", "img00000014.png"] and test_names[-1] == "img00029977.png"
    os.remove(data / "celeba_hq" / "celeba_hq_val" / "img00009175.png")
    with pytest.raises(DataError, match=r"data.test: .*1 of 2000 listed files do not exist.*img00009175\.png"):
        instantiate(data_conf("celeba_hq").data).build_dataset("test")
    # the protocol counts are enforced: Places2's test split must have 100 images
    with pytest.raises(DataError, match=r"data.test: .*found 100 images but this split must have exactly 99"):
        instantiate(data_conf("places2", "data.val.expected_count=99").data).build_dataset("test")
    # a missing Paris test image is named
    os.remove(data / "paris" / "paris_eval_gt" / "042_im.png")
    with pytest.raises(DataError, match=r"042_im\.png"):
        instantiate(data_conf("paris").data).setup("validate")
    # Paris test images are smaller than 256 and are upscaled, as released (header check on by default)
    os.symlink(data / "_src.png", data / "paris" / "paris_eval_gt" / "042_im.png")
    paris = instantiate(data_conf("paris", "data.image_size=32", "data.num_workers=0").data)
    paris.setup("validate")
    assert next(iter(paris.val_dataloader()))["image"].shape == (16, 3, 32, 32)


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
