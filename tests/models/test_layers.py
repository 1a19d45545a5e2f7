"""models.layers: the convolution + instance norm + activation unit, the decoder's 2x upsampling stage, and the
bilinear initialisation of a transposed convolution (no checkerboard on a flat input)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dmfn_lightning.models.layers import ConvNormAct, UpBlock, bilinear_upsampling_init_


@pytest.mark.parametrize(("kernel", "dilation"), [(3, 1), (3, 2), (3, 8), (5, 1)])
def test_conv_norm_act_keeps_the_size_at_stride_one_and_halves_it_at_stride_two(kernel, dilation):
    layer = ConvNormAct(4, 6, kernel, dilation=dilation)
    assert list(dict(layer.named_children())) == ["conv", "norm", "act"]
    assert layer.conv.padding == ((kernel - 1) // 2 * dilation,) * 2
    assert layer(torch.randn(1, 4, 16, 12)).shape == (1, 6, 16, 12)
    assert ConvNormAct(4, 6, kernel, stride=2, dilation=dilation)(torch.randn(1, 4, 16, 12)).shape == (1, 6, 8, 6)


def test_conv_norm_act_without_norm_and_with_another_activation():
    layer = ConvNormAct(2, 3, 3, norm=False, act=nn.Tanh())
    assert list(dict(layer.named_children())) == ["conv", "act"] and isinstance(layer.act, nn.Tanh)
    y = ConvNormAct(2, 3, 3)(torch.randn(2, 2, 8, 8))
    assert y.min() >= 0  # ReLU by default
    normed = ConvNormAct(2, 3, 3, act=nn.Identity())(torch.randn(2, 2, 8, 8))
    torch.testing.assert_close(normed.mean(dim=(2, 3)), torch.zeros(2, 3), atol=1e-5, rtol=0)  # instance norm
    torch.testing.assert_close(normed.var(dim=(2, 3), unbiased=False), torch.ones(2, 3), atol=1e-3, rtol=0)


def test_up_block_doubles_height_and_width():
    assert UpBlock(8, 4)(torch.randn(1, 8, 5, 7)).shape == (1, 4, 10, 14)


def test_bilinear_init_is_a_channel_mix_times_the_bilinear_kernel_and_keeps_a_flat_input_flat():
    torch.manual_seed(0)
    deconv = nn.ConvTranspose2d(3, 2, kernel_size=4, stride=2, padding=1)
    bias = deconv.bias.detach().clone()
    bilinear_upsampling_init_(deconv)
    taps = torch.tensor([0.25, 0.75, 0.75, 0.25])
    kernel = taps[:, None] * taps[None, :]
    mix = deconv.weight[:, :, 0, 0] / kernel[0, 0]
    torch.testing.assert_close(deconv.weight, mix[:, :, None, None] * kernel)
    assert mix.abs().max() <= 3**-0.5  # the default fan-in bound, 1 / sqrt(in_channels)
    assert torch.equal(deconv.bias, bias)  # the bias keeps its default
    colour = torch.tensor([0.5, -1.0, 2.0])
    with torch.no_grad():
        out = deconv(colour.view(1, 3, 1, 1).expand(1, 3, 6, 6))
    assert out.shape == (1, 2, 12, 12)
    expected = colour @ mix + bias  # each output phase reads taps summing to 1 (0.25 + 0.75) in each direction
    torch.testing.assert_close(out[0, :, 1:-1, 1:-1], expected.view(2, 1, 1).expand(2, 10, 10))


@pytest.mark.parametrize(
    "deconv",
    [nn.ConvTranspose2d(3, 2, kernel_size=4, stride=1, padding=1), nn.ConvTranspose2d(3, 2, kernel_size=3, stride=2)],
)
def test_bilinear_init_refuses_other_transposed_convolutions(deconv):
    with pytest.raises(ValueError, match="needs a 4x4, stride-2 transposed convolution"):
        bilinear_upsampling_init_(deconv)
