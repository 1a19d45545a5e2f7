"""models.inference: the one inference path (padding to a valid size, running at a precision, cropping back,
compositing by eq. 1)."""

from __future__ import annotations

import torch
from torch import nn

from dmfn_lightning.models import DMFNGenerator
from dmfn_lightning.models.inference import pad_input, predict


def test_the_inference_engine_keeps_known_pixels_at_any_size():
    from dmfn_lightning.models.inference import run_generator

    g = DMFNGenerator(num_blocks=1)
    image = torch.rand(2, 3, 30, 33) * 2 - 1  # neither side a multiple of 4: padded, run, cropped back
    mask = torch.zeros(2, 1, 30, 33)
    mask[:, :, 8:16, 8:20] = 1
    with torch.no_grad():
        out = run_generator(g, image, mask)
    known = mask.expand_as(image) == 0
    assert out.shape == image.shape
    assert torch.equal(out[known], image[known])
    assert not torch.equal(out[~known], image[~known])


class _Recorder(nn.Module):
    """Records its input shapes and returns the input's first three channels (in bfloat16 under autocast)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 3, 1)
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        return x[:, :3] + 0 * self.conv(x)


def test_pad_input_reflects_to_multiples_of_four_and_replicates_tiny_sides():
    x = torch.arange(30 * 33, dtype=torch.float32).view(1, 1, 30, 33)
    padded = pad_input(x)
    assert padded.shape == (1, 1, 32, 36)
    assert torch.equal(padded[..., :30, :33], x)
    assert torch.equal(padded[..., 30, :33], x[..., 28, :]) and torch.equal(padded[..., 31, :33], x[..., 27, :])
    assert torch.equal(padded[..., :30, 33], x[..., :, 31])  # reflection, the edge itself not repeated
    tiny = torch.arange(15, dtype=torch.float32).view(1, 1, 3, 5)
    grown = pad_input(tiny)
    assert grown.shape == (1, 1, 8, 8)  # the minimum side is 8
    assert torch.equal(grown[..., 3:, :5], tiny[..., 2:, :].expand(1, 1, 5, 5))  # too short to reflect: replicated
    ready = torch.zeros(1, 4, 8, 12)
    assert pad_input(ready) is ready


def test_predict_runs_the_padded_input_and_returns_float32_of_the_input_size():
    net = _Recorder()
    x = torch.rand(2, 4, 30, 33) * 2 - 1
    for precision in ("fp32", "bf16"):
        out = predict(net, x, precision)
        assert out.dtype == torch.float32 and out.shape == (2, 3, 30, 33)
        torch.testing.assert_close(out, x[:, :3], atol=1e-2 if precision == "bf16" else 0, rtol=0)
    assert net.shapes == [(2, 4, 32, 36)] * 2
