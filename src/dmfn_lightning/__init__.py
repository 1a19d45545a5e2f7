"""DMFN image inpainting ("Image Fine-grained Inpainting", Hui et al., arXiv:2002.02609) on Lightning + Hydra."""

__version__ = "0.1.0"
