"""The one registry of mask kinds (dmfn_lightning.masks.registry) and the one generate_mask: every kind has its
config, the kinds for photos are exactly what the inpainting CLI, the web app and the evaluation manifests offer, and
a kind declared in a class shows up in all three with nothing else to edit."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from dmfn_lightning import app, inpaint
from dmfn_lightning.core.errors import DataError, ManifestError
from dmfn_lightning.evaluation.manifests import masks as manifest_masks
from dmfn_lightning.masks import (
    CenterMask,
    FreeFormMask,
    IrregularFileMask,
    MaskGenerator,
    MixedMask,
    RandomBoxMask,
    build_mask,
    generate_mask,
    mask_config,
    mask_from_config,
    mask_kinds,
    photo_mask_kinds,
    target_of,
)
from dmfn_lightning.masks.base import KINDS, MaskResult
from dmfn_lightning.models import DMFNGenerator

CONF = Path(__file__).resolve().parents[2] / "conf"
# The shipped kinds for photos and their user-visible names (--mask-type, the web page's labels), in the order offered.
# A kind added later comes after them: the tests below check that every consumer offers what the registry holds.
SHIPPED_FOR_PHOTOS = {"center": "centre box", "random_box": "random box", "free_form": "free-form"}


@pytest.fixture
def registry():
    """The registry as it was, restored after a test that declares kinds of its own."""
    saved = dict(KINDS)
    yield KINDS
    KINDS.clear()
    KINDS.update(saved)


# ---------------------------------------------------------------------------------------------------------------
# the registry


def test_every_kind_is_declared_by_its_class_with_its_config():
    shipped = {
        "center": CenterMask,
        "random_box": RandomBoxMask,
        "free_form": FreeFormMask,
        "irregular_files": IrregularFileMask,
        "mixed": MixedMask,
    }
    assert shipped.items() <= mask_kinds().items()
    for kind, cls in mask_kinds().items():
        assert cls.kind == kind and mask_config(kind) == CONF / "mask" / f"{kind}.yaml"
        assert yaml.safe_load(mask_config(kind).read_text())["_target_"] == target_of(cls)
        assert target_of(cls) == f"dmfn_lightning.masks.{cls.__name__}"
    # Every mask config is a kind's, or a variant composed from one (center_shrink: the centre box, shrunk).
    for path in (CONF / "mask").glob("*.yaml"):
        config = yaml.safe_load(path.read_text())
        assert path.stem in KINDS or config["defaults"][0] in KINDS, path


def test_the_kinds_for_photos_and_their_labels():
    assert photo_mask_kinds()[:3] == tuple(SHIPPED_FOR_PHOTOS)
    labels = {k: cls.label for k, cls in mask_kinds(for_photos=True).items()}
    assert SHIPPED_FOR_PHOTOS.items() <= labels.items() and len(set(labels.values())) == len(labels)
    assert list(mask_kinds(for_photos=False))[:2] == ["irregular_files", "mixed"]  # need files, or other kinds


def test_the_cli_the_web_app_and_the_manifests_offer_exactly_the_kinds_for_photos():
    (action,) = [a for a in inpaint.build_parser()._actions if "--mask-type" in a.option_strings]
    assert tuple(action.choices) == photo_mask_kinds()
    offered = app.generated_masks()
    assert tuple(offered.labels) == photo_mask_kinds()
    assert offered.choices == {"none": None, **{cls.label: k for k, cls in mask_kinds(for_photos=True).items()}}
    for cls in mask_kinds().values():
        spec = {"mask": {"_target_": target_of(cls)}, "size": [32, 32]}
        if cls.for_photos:
            assert manifest_masks.generate_mask(spec, 0).shape == (32, 32)
        else:
            with pytest.raises(ManifestError, match="is not one of"):
                manifest_masks.generate_mask(spec, 0)


class StripeMask(MaskGenerator):
    """Horizontal stripes every ``period`` rows: a throwaway kind, declared (as ``ZebraMask``) in the test below."""

    def __init__(self, period: int = 4) -> None:
        self.period = int(period)

    def __call__(self, height: int, width: int, rng: np.random.Generator) -> MaskResult:
        offset = int(rng.integers(0, self.period))
        hole = np.zeros((height, width), dtype=bool)
        hole[offset :: self.period] = True
        mask = torch.from_numpy(hole.astype(np.float32))[None]
        return mask, (0, 0, height // 2, width // 2)


def test_a_kind_declared_in_a_class_shows_up_everywhere(registry, tmp_path, monkeypatch):
    """Adding a kind = its class + conf/mask/<kind>.yaml: the CLI, the web app and the manifests offer it."""
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    (conf / "mask" / "test_stripes.yaml").write_text("_target_: dmfn_lightning.masks.ZebraMask\nperiod: 3\n")
    monkeypatch.setenv("DMFN_CONFIG_DIR", str(conf))
    before = photo_mask_kinds()
    declared = type("ZebraMask", (StripeMask,), {}, kind="test_stripes", label="test stripes", for_photos=True)
    type("FileZebraMask", (StripeMask,), {}, kind="test_file_stripes")  # not for photos: offered nowhere

    assert photo_mask_kinds() == (*before, "test_stripes")
    hole = generate_mask("test_stripes", 12, 9, seed=1)
    assert hole.shape == (9, 12) and isinstance(build_mask("test_stripes"), declared)
    assert [row.all() or not row.any() for row in hole] == [True] * 9 and hole.sum(axis=1).tolist().count(12) == 3
    # the command line
    (action,) = [a for a in inpaint.build_parser()._actions if "--mask-type" in a.option_strings]
    assert tuple(action.choices) == photo_mask_kinds()
    assert np.array_equal(inpaint.generated_hole("test_stripes", 12, 9, 1), hole)
    # the web app
    offered = app.generated_masks()
    assert offered.choices["test stripes"] == "test_stripes" and "test_file_stripes" not in offered.labels
    torch.manual_seed(0)
    generator = DMFNGenerator(num_blocks=1, base_channels=8).eval()
    photo = Image.fromarray(np.full((9, 12, 3), 100, dtype=np.uint8))
    res = app.inpaint_request(generator, photo, mask_kind="test stripes", seed=1)
    assert np.array_equal(res.hole, hole)
    # the evaluation manifests' generators
    spec = {"mask": {"_target_": "dmfn_lightning.masks.ZebraMask", "period": 3}, "size": [9, 12]}
    assert np.array_equal(manifest_masks.generate_mask(spec, 1), hole)
    spec["mask"]["_target_"] = "dmfn_lightning.masks.FileZebraMask"
    with pytest.raises(ManifestError, match="is not one of"):
        manifest_masks.generate_mask(spec, 1)


def test_a_kind_is_declared_once_with_a_plain_name(registry):
    with pytest.raises(ValueError, match="declared by both CenterMask and Other"):
        type("Other", (MaskGenerator,), {}, kind="center")
    with pytest.raises(ValueError, match="lower-case name"):
        type("Bad", (MaskGenerator,), {}, kind="Free Form")
    assert type("Sub", (CenterMask,), {}).kind is None  # a subclass is no kind unless it says so
    assert KINDS["center"] is CenterMask


# ---------------------------------------------------------------------------------------------------------------
# the one generate_mask


def test_generate_mask_types():
    for kind in ("center", "random_box", "free_form"):
        mask = generate_mask(kind, 96, 64, seed=3)
        assert mask.shape == (64, 96) and mask.dtype == bool and 0 < mask.mean() < 1
        assert np.array_equal(mask, generate_mask(kind, 96, 64, seed=3))  # seeded
    center = generate_mask("center", 96, 64)
    assert center[16:48, 24:72].all() and center.sum() == 32 * 48  # Table 1: the centred half-size box
    with pytest.raises(DataError, match="free_form"):
        generate_mask("triangle", 10, 10)
    for kind in ("irregular_files", "mixed"):
        with pytest.raises(DataError, match=rf"mask type '{kind}' needs mask files .*center, random_box, free_form"):
            generate_mask(kind, 10, 10)


@pytest.mark.parametrize("kind", ["center", "random_box", "free_form"])
def test_generate_mask_draws_what_training_instantiates(kind):
    """The same parameters as training and evaluation (conf/mask/<kind>.yaml) and the same draws from the seed."""
    trained = instantiate(OmegaConf.load(CONF / "mask" / f"{kind}.yaml"))
    for seed in range(3):
        expected = trained(64, 80, np.random.default_rng(seed))[0][0].numpy() > 0.5
        assert np.array_equal(generate_mask(kind, 80, 64, seed), expected), (kind, seed)
    assert repr(build_mask(kind)) == repr(trained)


def test_generate_mask_takes_a_generator_and_retries_until_accepted():
    box = generate_mask(CenterMask(hole_size=0.25), 40, 40)
    assert box.sum() == 100
    gen = FreeFormMask()
    rng = np.random.default_rng(5)
    draws = [gen(48, 48, rng)[0][0].numpy() > 0.5 for _ in range(4)]
    wanted = next(i for i, d in enumerate(draws) if d.mean() > 0.2)
    hole = generate_mask(gen, 48, 48, seed=5, accept=lambda h: h.mean() > 0.2, max_tries=4)
    assert np.array_equal(hole, draws[wanted])  # the first accepted draw from the one rng
    with pytest.raises(DataError, match=r"no free_form mask for a 48x48 image was accepted in 3 draw\(s\) from seed 5"):
        generate_mask(gen, 48, 48, seed=5, accept=lambda h: False, max_tries=3)
    with pytest.raises(DataError, match="cannot draw a random_box mask for a 4x300 image"):
        generate_mask(RandomBoxMask(margin=200), 4, 300)


def test_random_box_on_a_very_thin_image_never_gives_an_empty_hole():
    """Item 11: a 3x5000 image with random_box: an error naming the type, or a real hole, never an empty one
    (the command line's side: tests/test_inpaint.py)."""
    try:
        hole = generate_mask("random_box", 5000, 3, seed=0)
    except DataError as err:
        assert "random_box" in str(err) and "empty" in str(err)
    else:
        assert hole.any()


def test_mask_from_config_names_the_target_and_the_parameters():
    assert isinstance(mask_from_config({"_target_": "dmfn_lightning.masks.CenterMask"}), CenterMask)
    # the generators' former path, which older configs and manifests name, still builds them
    assert isinstance(mask_from_config({"_target_": "dmfn_lightning.data.masks.FreeFormMask"}), FreeFormMask)
    with pytest.raises(DataError, match=r"'dmfn_lightning\.masks\.Nope' is not one of .*CenterMask"):
        mask_from_config({"_target_": "dmfn_lightning.masks.Nope"})
    with pytest.raises(DataError, match="hole_sise"):
        mask_from_config({"_target_": "dmfn_lightning.masks.CenterMask", "hole_sise": 0.5})
    with pytest.raises(DataError, match="composed from other configs"):
        build_mask("mixed")
