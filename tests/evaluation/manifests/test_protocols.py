"""evaluation.manifests.protocols: the shipped protocol manifests (Table 1's centre box, free-form holes in six
hole-ratio buckets) against the test lists and the mask generators that make them, and building them again."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from dmfn_lightning.core.errors import ManifestError
from dmfn_lightning.evaluation.manifests.files import Manifest, read_manifest, shipped_manifests
from dmfn_lightning.evaluation.manifests.masks import generate_mask, load_generators, materialise
from dmfn_lightning.evaluation.manifests.protocols import (
    FULL_PRODUCT_MAX_IMAGES,
    PROTOCOLS,
    _test_split_images,
    build_protocol,
    is_table1_manifest,
    protocol_generators,
)

DATASETS = ("paris", "places2", "celeba_hq", "ffhq")


def test_every_dataset_has_both_shipped_protocols():
    assert sorted(shipped_manifests()) == sorted(f"pkg:{d}_{p}" for d in DATASETS for p in PROTOCOLS)


@pytest.mark.parametrize("dataset", DATASETS)
def test_shipped_manifests_match_the_test_lists_and_the_generators(dataset, tmp_path):
    images = _test_split_images(dataset)
    generators = load_generators()
    expected = {"paris": 100, "places2": 100, "celeba_hq": 2000, "ffhq": 10000}[dataset]
    assert len(images) == expected
    for protocol in PROTOCOLS:
        manifest = read_manifest(f"pkg:{dataset}_{protocol}", mask_root=tmp_path / protocol)
        names = protocol_generators(protocol)
        # every image in every bucket, except FFHQ's 10,000: one mask each, the buckets taking turns
        every_bucket = len(images) <= FULL_PRODUCT_MAX_IMAGES
        assert every_bucket == (dataset != "ffhq")
        assert [r.image for r in manifest.rows] == (images * len(names) if every_bucket else images)
        assert {r.generator for r in manifest.rows} == set(names) <= set(generators)
        if protocol == "center":
            assert {r.mask_sha256 for r in manifest.rows} == {manifest.rows[0].mask_sha256}
            assert {r.hole_ratio for r in manifest.rows} == {0.25}
        else:
            counts = [len(images) if every_bucket else len(range(b, len(images), 6)) for b in range(6)]
            assert manifest.buckets() == {generators[n]["bucket"]: c for n, c in zip(names, counts)}
            assert [r.seed for r in manifest.rows] == list(range(len(manifest.rows)))
            assert len({r.mask_sha256 for r in manifest.rows}) == len(manifest.rows)
        # a changed mask generator would be caught here: the first row of every bucket and a few others are made
        # again from their seeds and must match the shipped checksums and hole ratios
        picks = [next(r for r in manifest.rows if r.generator == n) for n in names] + manifest.rows[-2:]
        sample = Manifest(picks, manifest.source, manifest.mask_root)
        assert materialise(sample) == len({r.mask for r in picks})
        for row in picks:
            with Image.open(sample.mask_path(row)) as img:
                assert img.size == (256, 256)
                assert (np.asarray(img) > 127).mean() == pytest.approx(row.hole_ratio, abs=1e-6)


def test_a_changed_generator_is_detected(tmp_path):
    manifest = read_manifest("pkg:paris_free_form", mask_root=tmp_path)
    generators = load_generators()
    changed = json.loads(json.dumps(generators))
    changed["free_form_256_10-20"]["mask"]["width"] = [12, 41]
    row = next(r for r in manifest.rows if r.generator == "free_form_256_10-20")
    with pytest.raises(ManifestError) as info:
        materialise(Manifest([row], manifest.source, tmp_path), generators=changed)
    assert "mask generator changed" in str(info.value) and row.id in str(info.value)
    assert not (tmp_path / row.mask).exists()
    assert materialise(Manifest([row], manifest.source, tmp_path), generators=generators) == 1


def test_free_form_generators_hit_their_buckets():
    generators = load_generators()
    for name in protocol_generators("free_form"):
        spec = generators[name]
        low, high = (float(v) / 100 for v in spec["bucket"].rstrip("%").split("-"))
        for seed in range(3):
            ratio = float(generate_mask(spec, seed).mean())
            assert low < ratio <= high, (name, seed, ratio)


def test_build_protocol_reproduces_the_shipped_rows():
    assert build_protocol("paris", "center") == read_manifest("pkg:paris_center").rows
    assert build_protocol("places2", "free_form") == read_manifest("pkg:places2_free_form").rows


def test_the_center_manifests_are_the_table1_protocol(written_manifest):
    assert is_table1_manifest(read_manifest("pkg:paris_center"))
    assert not is_table1_manifest(read_manifest("pkg:paris_free_form"))
    assert not is_table1_manifest(read_manifest(written_manifest["manifest"]))  # free-form holes at 32 px
