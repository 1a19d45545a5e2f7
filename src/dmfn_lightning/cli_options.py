"""The command-line options that every generator-loading entry point shares (inpaint, export, app): one
spelling and one help text for ``--checkpoint``, ``--device``, ``--precision`` and ``--no-ema``."""

from __future__ import annotations

import argparse

from dmfn_lightning.core.devices import PRECISIONS

__all__ = ["CHECKPOINT_KINDS", "add_checkpoint", "add_device", "add_no_ema", "add_precision"]

CHECKPOINT_KINDS = (
    "a weights bundle (a folder with model.safetensors and config.json, or a Hugging Face Hub id owner/name), an "
    "exported generator (generator.pt from training or dmfn_lightning.export), a DMFNModule Lightning "
    "checkpoint (.ckpt, its EMA generator when it has one) or the authors' released generator weights"
)


def add_checkpoint(parser: argparse.ArgumentParser, required: bool = True, default_note: str = "") -> None:
    """``--checkpoint CKPT``: any generator file :func:`dmfn_lightning.models.load_generator` reads."""
    parser.add_argument("--checkpoint", required=required, metavar="CKPT", help=CHECKPOINT_KINDS + default_note)


def add_device(parser: argparse.ArgumentParser, what: str = "device to run on") -> None:
    """``--device``: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    parser.add_argument("--device", default="auto", help=f"{what}: auto, cpu, cuda, cuda:N or mps (default: auto)")


def add_precision(parser: argparse.ArgumentParser) -> None:
    """``--precision``: autocast dtype of the generator; compositing stays exact in every case."""
    parser.add_argument(
        "--precision",
        choices=tuple(PRECISIONS),
        default="fp32",
        help="autocast precision of the generator (default: fp32); known pixels stay exact",
    )


def add_no_ema(parser: argparse.ArgumentParser) -> None:
    """``--no-ema``: the raw generator of a Lightning checkpoint instead of its EMA copy."""
    parser.add_argument(
        "--no-ema", action="store_true", help="from a Lightning checkpoint, use the raw generator, not its EMA copy"
    )
