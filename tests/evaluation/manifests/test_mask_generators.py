"""The manifests' mask generators (dmfn_lightning.evaluation.manifests.masks): the generators.json entries are mask
kinds for photos of the one registry, and their masks are drawn by the data layer's one generate_mask."""

from __future__ import annotations

import numpy as np
import pytest

from dmfn_lightning.core.errors import ManifestError
from dmfn_lightning.evaluation.buckets import bucket_index
from dmfn_lightning.evaluation.manifests import masks as manifest_masks
from dmfn_lightning.evaluation.manifests.files import hole_png, pixels_sha256
from dmfn_lightning.evaluation.manifests.protocols import is_table1_manifest, protocol_generators
from dmfn_lightning.masks import FreeFormMask, generate_mask, mask_kinds, target_of


def test_the_shipped_generators_are_registered_kinds_for_photos():
    generators = manifest_masks.load_generators()
    allowed = {target_of(cls) for cls in mask_kinds(for_photos=True).values()}
    assert {spec["mask"]["_target_"] for spec in generators.values()} <= allowed
    assert set(protocol_generators("center") + protocol_generators("free_form")) <= set(generators)


def test_a_generator_draws_with_the_data_layers_generate_mask():
    generators = manifest_masks.load_generators()
    # the centre box of Table 1 is conf/mask/center.yaml's, drawn for 256 x 256
    np.testing.assert_array_equal(
        manifest_masks.generate_mask(generators["center_256"], 0), generate_mask("center", 256, 256, 0)
    )
    # a free-form bucket: the first draw from the seed whose hole ratio lies in the bucket
    spec = generators["free_form_256_20-30"]
    params = {k: v for k, v in spec["mask"].items() if k != "_target_"}
    wanted = bucket_index(0.25)
    expected = generate_mask(
        FreeFormMask(**params), 256, 256, 7, accept=lambda h: bucket_index(float(h.mean())) == wanted, max_tries=1000
    )
    hole = manifest_masks.generate_mask(spec, 7)
    np.testing.assert_array_equal(hole, expected)
    assert 0.2 < hole.mean() <= 0.3


def test_a_generator_that_is_not_for_photos_or_misses_its_bucket_is_a_manifest_error():
    for target in ("dmfn_lightning.masks.IrregularFileMask", "dmfn_lightning.masks.MixedMask", "os.system"):
        with pytest.raises(ManifestError, match=r"is not one of .*CenterMask.*RandomBoxMask.*FreeFormMask"):
            manifest_masks.generate_mask({"mask": {"_target_": target}, "size": [32, 32]}, 0)
    spec = {"mask": {"_target_": "dmfn_lightning.masks.CenterMask"}, "size": [32, 32], "bucket": "50-60%"}
    with pytest.raises(ManifestError, match=r"found no mask in bucket 50-60% from seed 3"):
        manifest_masks.generate_mask(spec, 3)  # the centre box is always 25 %


def test_the_table1_box_is_recognised():
    class Rows:
        def __init__(self, checksums):
            self.rows = [type("Row", (), {"mask_sha256": c})() for c in checksums]

    table1 = pixels_sha256(hole_png(generate_mask("center", 256, 256)))
    assert is_table1_manifest(Rows([table1, table1]))
    assert not is_table1_manifest(Rows([table1, pixels_sha256(hole_png(generate_mask("random_box", 256, 256)))]))
