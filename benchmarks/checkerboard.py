"""Checkerboard texture of generators on the demo's fixed validation holes (README: the demo before and after).

::

    python -m benchmarks.checkerboard outputs/demo/generator.pt other/generator.pt

A stride-2 transposed convolution computes each of the four 2x2 output phases from different kernel taps; when
they disagree, a flat region comes out as a grid. The score is the mean absolute deviation of the four phases of
the generator's raw prediction from their mean, inside the holes, on [-1, 1] (0: no 2x2 pattern). The holes and
crops are those of ``+experiment=demo`` (128 px, centred boxes on the held-out photos).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence

import torch
from hydra.utils import instantiate
from torch import Tensor

from dmfn_lightning.core.config import compose
from dmfn_lightning.models import DMFNGenerator, load_generator
from dmfn_lightning.models.inference import predict


def phase_deviation(prediction: Tensor, mask: Tensor) -> tuple[float, float]:
    """(sum of |phase - mean of the phases| over hole pixels and channels, count) for ``[B, C, H, W]`` and a
    ``[B, 1, H, W]`` mask (1 = hole); H and W even. Divide the two for the score."""
    phases = [prediction[..., i::2, j::2] for i in range(2) for j in range(2)]
    mean = sum(phases) / 4
    deviation = sum((p - mean).abs() for p in phases) / 4
    hole = mask[..., ::2, ::2]
    return float((deviation * hole).sum()), float(hole.sum()) * prediction.shape[1]


def demo_score(generator: torch.nn.Module) -> float:
    """The score of ``generator`` on the demo's validation crops and holes."""
    with tempfile.TemporaryDirectory() as run_dir:
        datamodule = instantiate(compose("train", ["+experiment=demo", "data.num_workers=0"], run_dir).data)
    datamodule.setup("fit")
    total = count = 0.0
    for batch in datamodule.val_dataloader():
        with torch.no_grad():
            prediction = predict(generator, DMFNGenerator.make_input(batch["image"], batch["mask"]))
        s, n = phase_deviation(prediction, batch["mask"])
        total, count = total + s, count + n
    return total / count


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="generator files (generator.pt, last.ckpt)")
    args = parser.parse_args(argv)
    for path in args.checkpoints:
        print(f"{path}: in-hole 2x2 phase deviation {demo_score(load_generator(path).eval()):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
