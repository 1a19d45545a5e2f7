"""The web demo's request logic without Gradio (dmfn_lightning.webapp.request): editor layers, mask files and
generated holes combined, user messages for bad input, and the settings checked by the inpainting API under the
page's names."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dmfn_lightning.app import generated_masks
from dmfn_lightning.core.errors import DataError, InpaintError
from dmfn_lightning.masks import generate_mask
from dmfn_lightning.models import DMFNGenerator
from dmfn_lightning.webapp.request import FIELD_NAMES, NO_MASK, GeneratedMasks, brush_hole, inpaint_request
from tests.webapp.editor_fakes import H, W, assert_known_pixels_kept, box_mask, brush_layer, editor, photo

MASKS = generated_masks()  # what python -m dmfn_lightning.app offers: the registry's kinds for photos


@pytest.fixture(scope="module")
def generator() -> DMFNGenerator:
    torch.manual_seed(0)
    return DMFNGenerator(num_blocks=1, base_channels=16).eval()


def test_brush_result_has_input_size_and_known_pixels(generator):
    image = photo()
    stroke = box_mask(50, 70, 40, 60)
    res = inpaint_request(generator, editor(image, brush_layer(stroke)))
    assert res.image.size == image.size and res.image.mode == "RGB"
    np.testing.assert_array_equal(res.hole, stroke)
    assert_known_pixels_kept(res.image, image, stroke)
    assert (np.asarray(res.image)[stroke] != np.asarray(image)[stroke]).any()  # the hole was filled
    assert res.preview.size == image.size and not res.notes
    assert "200x160" in res.summary


def test_brush_counts_every_painted_pixel_and_ignores_the_rest():
    stroke = box_mask(10, 10, 20, 30)
    faint = box_mask(100, 100, 5, 5)
    layer = np.asarray(brush_layer(stroke)).copy()
    layer[faint] = (255, 0, 255, 3)  # antialiased edge: still painted
    erased = np.zeros_like(layer)
    erased[..., :3] = 255  # white RGB under alpha 0 (erased strokes): not a hole
    hole = brush_hole([Image.fromarray(layer, "RGBA"), Image.fromarray(erased, "RGBA"), None], (W, H))
    np.testing.assert_array_equal(hole, stroke | faint)


def test_mask_file_brush_and_generated_mask_are_combined(generator, tmp_path):
    image = photo()
    file_hole = box_mask(5, 5, 20, 20)
    Image.fromarray(file_hole.astype(np.uint8) * 255).save(tmp_path / "mask.png")
    stroke = box_mask(120, 150, 10, 10)
    res = inpaint_request(
        generator, editor(image, brush_layer(stroke)), str(tmp_path / "mask.png"), "centre box", seed=3, masks=MASKS
    )
    expected = file_hole | stroke | generate_mask("center", W, H, 3)
    np.testing.assert_array_equal(res.hole, expected)
    assert_known_pixels_kept(res.image, image, expected)


def test_mask_file_of_another_size_is_resized_with_a_note(generator, tmp_path):
    Image.fromarray(box_mask(10, 10, 40, 50, size=(100, 80)).astype(np.uint8) * 255).save(tmp_path / "half.png")
    res = inpaint_request(generator, editor(photo()), str(tmp_path / "half.png"))
    np.testing.assert_array_equal(res.hole, box_mask(20, 20, 80, 100))
    assert res.notes and "resized" in res.notes[0]


def test_default_limit_is_16_megapixels(generator):
    huge = Image.new("RGB", (5000, 4000))
    with pytest.raises(InpaintError, match=r"5000x4000 \(20.0 MP\).*16.0 MP"):
        inpaint_request(generator, editor(huge, brush_layer(np.ones((4000, 5000), dtype=bool))))


def test_broken_generator_and_too_little_memory_are_visible_messages(generator, monkeypatch):
    """Too-large images and broken weights: in the page, not as a black hole or a traceback."""
    import dmfn_lightning.inpainting.api as inpainting

    broken = DMFNGenerator(num_blocks=1, base_channels=8).eval()
    with torch.no_grad():
        broken.decoder[-1].conv.bias.fill_(float("nan"))
    stroke = box_mask(50, 70, 40, 60)
    with pytest.raises(InpaintError, match="NaN or infinite"):
        inpaint_request(broken, editor(photo(), brush_layer(stroke)))
    monkeypatch.setattr(f"{inpainting.check_memory.__module__}.available_memory", lambda device: 2**20)
    with pytest.raises(InpaintError, match=r"working size under 'Advanced'"):
        inpaint_request(generator, editor(photo(), brush_layer(stroke)))


def test_generated_masks_offer_labels_and_kinds():
    shipped = {NO_MASK: None, "centre box": "center", "random box": "random_box", "free-form": "free_form"}
    assert list(MASKS.choices.items())[:4] == list(shipped.items())  # kinds added later come after these
    assert MASKS.choices == {NO_MASK: None, **{label: kind for kind, label in MASKS.labels.items()}}
    assert MASKS.kind("centre box") == MASKS.kind("center") == "center"
    assert MASKS.kind(NO_MASK) is None and MASKS.kind(None) is None and MASKS.hole("none", 8, 8, 0) is None
    np.testing.assert_array_equal(MASKS.hole("free-form", 40, 30, 2), generate_mask("free_form", 40, 30, 2))
    with pytest.raises(InpaintError, match=r"Unknown generated hole 'triangle'; choose one of 'none', 'centre box'"):
        MASKS.kind("triangle")

    def failing(kind, width, height, seed):
        raise DataError(f"the {kind} mask drawn for a {width}x{height} image is empty")

    with pytest.raises(InpaintError, match=r"The generated hole cannot be used: the center mask .* is empty"):
        GeneratedMasks({"center": "centre box"}, failing).hole("centre box", 5, 3, 0)


def test_a_generated_hole_needs_the_masks_on_offer(generator):
    image = photo()
    with pytest.raises(InpaintError, match="No generated holes are offered here"):
        inpaint_request(generator, editor(image), mask_kind="centre box")
    res = inpaint_request(generator, editor(image), mask_kind="random box", seed=4, masks=MASKS)
    np.testing.assert_array_equal(res.hole, generate_mask("random_box", W, H, 4))


def test_settings_are_checked_by_the_api_under_the_page_names(generator):
    assert FIELD_NAMES == ("The strategy", "The working size", "The crop margin")
    value = editor(photo(), brush_layer(box_mask(30, 40, 50, 60)))
    for kwargs, message in (
        ({"strategy": "tiles"}, "The strategy must be one of full, resize, crop, got 'tiles'"),
        ({"working_size": 4}, "The working size must be a whole number of pixels >= 8, got 4"),
        ({"strategy": "crop", "crop_margin": -5}, "The crop margin must be a whole number of pixels >= 0, got -5"),
    ):
        with pytest.raises(InpaintError) as info:
            inpaint_request(generator, value, **kwargs)
        assert message in str(info.value), kwargs
    # The crop margin is the crop strategy's field only; a working size with 'full' is dropped with a note.
    assert inpaint_request(generator, value, strategy="resize", working_size=64, crop_margin=-5).strategy == "resize"
    res = inpaint_request(generator, value, strategy="full", working_size=64)
    assert res.strategy == "full" and "not used by the 'full' strategy" in res.notes[0]


def test_a_negative_seed_is_named_not_the_image(generator):
    """Issue case 16 in the web app: a seed below 0 (through the API; the page's box has minimum 0) is named."""
    for seed in (-1, 2.5, "7"):
        with pytest.raises(InpaintError, match=rf"The seed must be a whole number >= 0, got {seed!r}"):
            inpaint_request(generator, editor(photo()), mask_kind="center", seed=seed, masks=MASKS)
    assert inpaint_request(generator, editor(photo()), mask_kind="center", seed=3.0, masks=MASKS).hole.any()


def test_layer_and_mask_files_are_checked_from_their_headers(generator, tmp_path, monkeypatch):
    """Issue case 18: files handed over by the page's editor are refused from their headers, layers included."""
    image = photo()
    image.save(tmp_path / "photo.png")
    brush_layer(box_mask(10, 10, 20, 20)).save(tmp_path / "layer.png")
    value = {"background": str(tmp_path / "photo.png"), "layers": [str(tmp_path / "layer.png")]}
    res = inpaint_request(generator, value)
    np.testing.assert_array_equal(res.hole, box_mask(10, 10, 20, 20))
    Image.new("L", (300, 300)).save(tmp_path / "big_layer.png")
    value = {"background": str(tmp_path / "photo.png"), "layers": [str(tmp_path / "big_layer.png")]}
    with pytest.raises(InpaintError, match=r"The brush layer 'big_layer.png' is 300x300 .*larger than the image"):
        inpaint_request(generator, value, max_pixels=40_000)
    (tmp_path / "notes.png").write_text("not an image")
    value["layers"] = [str(tmp_path / "notes.png")]
    with pytest.raises(InpaintError, match=r"The brush layer 'notes.png' is not an image"):
        inpaint_request(generator, value)
