"""data.datasets: ImageDataset's crops (centre, random, the authors' released box), resizing and range, images
smaller than the crop, bad files skipped or raised, and the random streams of dataloader workers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from dmfn_lightning.data import CenterMask, DataError, DMFNDataModule, ImageDataset, RandomBoxMask, collate_samples
from tests.data.data_fakes import bad_folder, save_image

# --------------------------------------------------------------------------------------- preprocessing


def test_centre_and_random_square_crops_bicubic_resize_and_range(tmp_path):
    # 96 wide x 32 high; pixel value = column index (red), so the crop offset is visible exactly
    arr = np.zeros((32, 96, 3), np.uint8)
    arr[..., 0] = np.arange(96)[None, :]
    path = save_image(tmp_path / "wide.png", arr)
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
    path = save_image(tmp_path / "wide.png", arr)
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
    wide = save_image(tmp_path / "panorama.png", size=(100, 20))
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
    small = save_image(tmp_path / "val" / "tiny.png", size=(20, 12))
    save_image(tmp_path / "train" / "ok.png", size=(40, 40))
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
    files = bad_folder(tmp_path / "bad")
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
    files = bad_folder(tmp_path / "bad")
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


# ------------------------------------------------------------------------------------------ randomness


def _same_image_list(tmp_path: Path, n: int = 1) -> Path:
    save_image(tmp_path / "img.png", size=(48, 32))
    lst = tmp_path / "list.txt"
    lst.write_text("img.png\n" * n)
    return lst


@pytest.mark.parametrize("persistent", [False, True])
def test_training_samples_are_a_function_of_seed_epoch_and_index(tmp_path, persistent):
    """Replaces the per-worker streams: what a training sample looks like no longer depends on which worker
    loads it (so a resume with any number of workers is exact), and epochs still differ."""
    lst = _same_image_list(tmp_path)
    ds = ImageDataset(
        {"root": str(tmp_path), "list": str(lst)},
        image_size=32,
        train=True,
        crop="random",
        mask=RandomBoxMask(),
        length=8,
    )
    keys = [(epoch, index) for epoch in (0, 1) for index in range(8)]
    workers = DataLoader(
        ds, batch_size=1, num_workers=2, persistent_workers=persistent, sampler=keys, collate_fn=collate_samples
    )
    by_workers = [batch["mask"][0] for batch in workers]
    alone = [ds[key]["mask"] for key in keys]
    assert all(torch.equal(a, b) for a, b in zip(by_workers, alone))  # the same with 2 workers or none
    epoch0, epoch1 = alone[:8], alone[8:]
    assert not any(torch.equal(a, b) for a, b in zip(epoch0, epoch1))  # another epoch, other holes
    assert len({tuple(m.flatten().tolist()) for m in epoch0}) > 1  # other indices, other holes
    assert torch.equal(ds[(1, 3)]["mask"], ds[(1, 3)]["mask"])  # and the same sample twice is the same
