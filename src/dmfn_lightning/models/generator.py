"""The DMFN generator (Section 3.1 and Fig. 2 of the paper; layer table in docs/design.md)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dmfn_lightning.core.errors import CheckpointError
from dmfn_lightning.models.blocks import build_block
from dmfn_lightning.models.bundles import CONFIG_FILE, GENERATOR_FILE, load_bundle, save_bundle
from dmfn_lightning.models.layers import ConvNormAct, UpBlock, bilinear_upsampling_init_
from dmfn_lightning.models.state_dicts import load_state_into

# How the decoder's transposed convolutions start: PyTorch's default (the authors' code) or as bilinear upsampling.
UPSAMPLE_INITS = ("pytorch", "bilinear")


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """The released initialisation: conv weights N(0, std), biases 0; BatchNorm weights N(1, std), biases 0.

    ``ConvTranspose2d`` and ``Linear`` keep PyTorch's defaults, as in the authors' code.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


class DMFNGenerator(nn.Module):
    """Encoder (H -> H/4), ``num_blocks`` dense multi-scale fusion blocks, decoder (H/4 -> H), tanh output.

    ``forward`` takes the 4-channel input ``cat([image * (1 - mask), mask])`` and returns the raw prediction in
    [-1, 1]; :meth:`make_input` builds that input and :meth:`composite` puts the prediction into the known pixels
    (eq. 1's ``I_out``), both used by :func:`~dmfn_lightning.models.inference.run_generator`. Any height and width
    divisible by 4 work.

    ``upsample_init="bilinear"`` starts the decoder's two transposed convolutions as bilinear upsampling
    (:func:`~dmfn_lightning.models.layers.bilinear_upsampling_init_`) instead of PyTorch's default, which the
    authors' code uses and which draws a 2x2 checkerboard until training removes it; the offline demo uses it.
    """

    def __init__(
        self, block: str = "dmfb", num_blocks: int = 8, base_channels: int = 64, upsample_init: str = "pytorch"
    ) -> None:
        super().__init__()
        if upsample_init not in UPSAMPLE_INITS:
            raise ValueError(f"upsample_init must be one of {', '.join(UPSAMPLE_INITS)}, got {upsample_init!r}")
        nf = base_channels
        self.config = {"block": block, "num_blocks": num_blocks, "base_channels": base_channels}
        if upsample_init != "pytorch":  # recorded only when it differs: older files and the released one load as-is
            self.config["upsample_init"] = upsample_init
        self.encoder = nn.Sequential(
            ConvNormAct(4, nf, 5, norm=False),
            ConvNormAct(nf, 2 * nf, 3, stride=2),
            ConvNormAct(2 * nf, 2 * nf, 3),
            ConvNormAct(2 * nf, 4 * nf, 3, stride=2),
        )
        self.blocks = nn.Sequential(*(build_block(block, 4 * nf) for _ in range(num_blocks)))
        self.decoder = nn.Sequential(
            ConvNormAct(4 * nf, 4 * nf, 3),
            UpBlock(4 * nf, 2 * nf),
            UpBlock(2 * nf, nf),
            ConvNormAct(nf, 3, 3, norm=False, act=nn.Tanh()),
        )
        init_weights(self)
        if upsample_init == "bilinear":
            for module in self.decoder.modules():
                if isinstance(module, nn.ConvTranspose2d):
                    bilinear_upsampling_init_(module)

    @classmethod
    def from_pretrained(
        cls, reference: str | os.PathLike, map_location: str | torch.device = "cpu", **hub: Any
    ) -> DMFNGenerator:
        """The generator of a weights bundle: a local folder or a Hugging Face Hub id (``owner/name``), looked
        up offline first (``hub``: ``revision``, ``cache_dir``, ``local_files_only``, ``token``). Built from the
        bundle's ``config.json`` and loaded strictly from ``model.safetensors`` without unpickling anything; in
        eval mode, with what it was trained on (``config.json``'s ``training``) in ``metadata``, so that the
        inference code knows its training size. See :mod:`dmfn_lightning.models.bundles`."""
        bundle = load_bundle(reference, **hub)
        config = bundle.network_config("generator")
        try:
            generator = cls(**config)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(
                f"{bundle.folder / CONFIG_FILE} has an unusable generator config {config}: {exc}"
            ) from exc
        load_state_into(generator, bundle.tensors(GENERATOR_FILE), str(bundle.folder / GENERATOR_FILE))
        generator.metadata = {**bundle.training, "bundle": str(bundle.folder)}
        return generator.to(map_location).eval()

    def save_pretrained(self, path: str | os.PathLike, **bundle: Any) -> Path:
        """Write this generator as a weights bundle folder (``bundle``: ``discriminator``, ``training``,
        ``provenance``, ``evaluation``, ``license``; see :func:`dmfn_lightning.models.bundles.save_bundle`)."""
        return save_bundle(path, self, **bundle)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 4:
            raise ValueError(f"expected input of shape [N, 4, H, W] (masked RGB + mask), got {tuple(x.shape)}")
        if x.shape[-2] % 4 or x.shape[-1] % 4:
            raise ValueError(
                f"height and width must be divisible by 4, got {tuple(x.shape[-2:])}; pad the image first "
                "(dmfn_lightning.inpaint does this for you)"
            )
        return self.decoder(self.blocks(self.encoder(x)))

    @staticmethod
    def make_input(image: Tensor, mask: Tensor) -> Tensor:
        """``cat([image * (1 - mask), mask])``: the network input for images in [-1, 1] and masks with 1 = hole."""
        return torch.cat([image * (1 - mask), mask], dim=1)

    @staticmethod
    def composite(prediction: Tensor, image: Tensor, mask: Tensor) -> Tensor:
        """Keep the known pixels of ``image`` and take the hole from ``prediction``."""
        return mask * prediction + (1 - mask) * image
