"""Editor values for the web app's tests (tests/webapp/): a photo, box holes, magenta brush layers."""

from __future__ import annotations

import numpy as np
from PIL import Image

W, H = 200, 160  # the demo photo's size in the browser test


def photo(width: int = W, height: int = H) -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut()).resize((width, height), Image.BICUBIC)


def box_mask(top: int, left: int, height: int, width: int, size=(W, H)) -> np.ndarray:
    mask = np.zeros((size[1], size[0]), dtype=bool)
    mask[top : top + height, left : left + width] = True
    return mask


def brush_layer(hole: np.ndarray, alpha: int = 255) -> Image.Image:
    """What gr.ImageEditor(image_mode="RGBA") hands over for a magenta stroke: RGBA, transparent elsewhere."""
    rgba = np.zeros((*hole.shape, 4), dtype=np.uint8)
    rgba[hole] = (255, 0, 255, alpha)
    return Image.fromarray(rgba, "RGBA")


def editor(image: Image.Image, *layers: Image.Image) -> dict:
    return {"background": image.convert("RGBA"), "layers": list(layers), "composite": None}


def assert_known_pixels_kept(result: Image.Image, image: Image.Image, hole: np.ndarray) -> None:
    out, src = np.asarray(result.convert("RGB")), np.asarray(image.convert("RGB"))
    assert out.shape == src.shape
    np.testing.assert_array_equal(out[~hole], src[~hole])
