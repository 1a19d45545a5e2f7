"""Export the DMFN generator for deployment: ``python -m dmfn_lightning.export`` (console script ``dmfn-export``).

::

    python -m dmfn_lightning.export --checkpoint outputs/paris/last.ckpt --output exported/
    python -m dmfn_lightning.export --checkpoint generator.pt --output exported/ --format onnx --opset 18

Formats (all take the generator's 4-channel input ``cat([image * (1 - mask), mask])`` ``[N, 4, H, W]`` with the
image in [-1, 1] and 1 = hole, and return the raw prediction ``[N, 3, H, W]`` in [-1, 1], the input's size;
composite it yourself, ``mask * out + (1 - mask) * image``):

* **Any height and width.** The network needs H and W divisible by 4 and at least 8 (the eager generator refuses
  other sizes). The TorchScript and ONNX files pad their input inside the model with the library's own padding
  function (:func:`dmfn_lightning.models.inference.pad_input`: at the bottom and right, to the next multiples of 4
  and at least 8, by reflection, or replication where a side is too short to reflect) and crop the prediction back
  (:class:`PadToMultipleOf4`), so a 150x200 input gives a 150x200 output, and the prediction of
  :func:`dmfn_lightning.models.inference.run_generator`, at every size of at least 1x1. ``pt2`` keeps the eager
  model's check and refuses other sizes; ``generator.pt`` is the eager model too, which the library's
  ``run_generator`` pads like the exported files (so it is verified through it, at any size).
* ``torchscript`` -> ``generator.torchscript.pt``: the network is traced (``torch.jit.trace``; it has no
  data-dependent control flow, so the trace is valid for every batch size, height and width; ``torch.jit.script``
  cannot compile the blocks' ``ModuleList`` indexing) and wrapped in the scripted padding. Load with
  ``torch.jit.load``.
* ``onnx`` -> ``generator.onnx``, one self-contained file with dynamic batch, height and width. By default the
  ``torch.export``-based exporter (``dynamo=True``, its default opset: 20 with torch 2.14) is used;
  ``--onnx-exporter torchscript`` selects the legacy exporter (``dynamo=False``, opset 17, the padding exported
  from its TorchScript form as ONNX control flow). Both handle
  ``InstanceNorm2d`` with dynamic H and W. Instance normalisation is written as two-stage reductions
  (:class:`TwoStageInstanceNorm`): onnxruntime's fused ``InstanceNormalization`` drifts by ~1.2e-4 from PyTorch
  over the 8-block network (it accumulates long float32 sums), the two-stage form stays at ~2e-5 for ~5 % more
  onnxruntime time; ``--onnx-native-instancenorm`` keeps the fused op.
* ``pt2`` -> ``generator.pt2`` (``torch.export`` ExportedProgram with dynamic dims; ``torch.export.load``).
* ``generator`` -> ``generator.pt``: the library's own weights + config file (``load_generator``).
* ``bundle`` -> ``bundle/``: a weights bundle (:mod:`dmfn_lightning.models.bundles`): ``model.safetensors``, the
  discriminator's ``discriminator.safetensors`` when the source has one (a training checkpoint, a bundle) or
  ``--discriminator`` names one (e.g. the authors' ``*_D.pth``), ``config.json`` (the networks' settings, what the
  source says the generator was trained on, the source itself, and with ``--evaluation summary.json`` the metrics
  of an evaluation with their conventions) and a ``README.md`` model card (``--license``). Load it with
  ``DMFNGenerator.from_pretrained``, or pass the folder as ``--checkpoint``.

After writing, every exported model is loaded back and compared with the library's inference path at the
``--verify-sizes`` (default 256x256 and 192x320, batch 2; any size a selected format takes, e.g. 255x257 or 3x3,
while ``pt2`` needs multiples of 4), and the TorchScript and ONNX files, when no size given needs padding, also at
one that does (the first size less 2 rows and 1 column); the maximum absolute difference is printed and must be
at most ``--tolerance`` (1e-4, not negative). ONNX is checked with onnxruntime when it is installed (``pip install
'dmfn_lightning[export]'``), otherwise that check is skipped with a message. A JSON report is written beside the
files (``export.json``).

Before the model is loaded, ``--output`` is checked: an existing file or a read-only folder is an error, and so
is an output folder whose ``generator.pt`` is the checkpoint being exported (it would be overwritten, losing its
metadata). The ``generator.pt`` written keeps the source's provenance: ``metadata.source`` and, when the source
has metadata (an exported generator's, a Lightning checkpoint's step), ``metadata.source_metadata``.

This module is the verification and the command line; each format's writer and loader is one entry of
:data:`dmfn_lightning.models.export_formats.EXPORT_FORMATS`, where the names re-exported here are defined.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dmfn_lightning.cli_options import add_checkpoint, add_no_ema
from dmfn_lightning.core.errors import ExportError, exit_on_user_error
from dmfn_lightning.core.files import check_output_folder
from dmfn_lightning.core.sizes import MIN_SIDE, MULTIPLE
from dmfn_lightning.models import load_generator
from dmfn_lightning.models.export_formats import (
    DEFAULT_FORMATS,
    EXPORT_FORMATS,
    FILENAMES,
    FORMATS,
    ExportFormat,
    ExportOptions,
    PadToMultipleOf4,
    TwoStageInstanceNorm,
    example_input,
    export_onnx,
    export_pt2,
    export_torchscript,
    get_format,
    padded_reference,
    with_two_stage_instance_norm,
)
from dmfn_lightning.models.generator_files import discriminator_of_source, training_of_source

__all__ = [
    "DEFAULT_FORMATS",
    "DEFAULT_VERIFY_SIZES",
    "EXPORT_FORMATS",
    "FILENAMES",
    "FORMATS",
    "ExportError",
    "ExportFormat",
    "ExportOptions",
    "PadToMultipleOf4",
    "TwoStageInstanceNorm",
    "build_parser",
    "bundle_options",
    "check_source_not_overwritten",
    "check_tolerance",
    "check_verify_sizes",
    "example_input",
    "export",
    "export_onnx",
    "export_pt2",
    "export_torchscript",
    "main",
    "padded_reference",
    "verify",
    "with_two_stage_instance_norm",
]

DEFAULT_VERIFY_SIZES = ((256, 256), (192, 320))


# ---------------------------------------------------------------------------------------------------------------
# verification


def verify(
    generator: nn.Module, fmt: str, path: Path, sizes: Sequence[tuple[int, int]], batch: int = 2
) -> list[float] | None:
    """Max |exported - PyTorch| at each (H, W) in ``sizes``; ``None`` when it cannot be checked here (ONNX without
    onnxruntime). The reference is the inference engine's prediction (:func:`padded_reference`)."""
    run = get_format(fmt).load(path)
    if run is None:
        return None
    diffs = []
    for i, (height, width) in enumerate(sizes):
        x = example_input(batch, height, width, seed=i + 1)
        out = run(x)
        ref = padded_reference(generator, x)
        if out.shape != ref.shape:
            raise ExportError(
                f"{path} returned shape {tuple(out.shape)} for input {tuple(x.shape)}, expected {tuple(ref.shape)}"
            )
        diffs.append(float((out - ref).abs().max()))
    return diffs


def _verification_sizes(spec: ExportFormat, verify_sizes: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    sizes = list(verify_sizes)
    needs_padding = any(h % MULTIPLE or w % MULTIPLE or min(h, w) < MIN_SIDE for h, w in sizes)
    if spec.any_size and not needs_padding:  # the model pads inside itself: also check a size that needs it
        height, width = verify_sizes[0]
        sizes.append((max(1, height - 2), max(1, width - 1)))
    return sizes


def check_verify_sizes(formats: Sequence[str], verify_sizes: Sequence[tuple[int, int]]) -> None:
    """Refuse, before any work, a verification size that one of ``formats`` does not run
    (:meth:`ExportFormat.takes`): TorchScript, ONNX and generator.pt take any size, pt2 sides divisible by 4."""
    if not verify_sizes:
        raise ExportError("--verify-sizes needs at least one size HxW, e.g. 256x256")
    for height, width in verify_sizes:
        for fmt in dict.fromkeys(formats):
            spec = get_format(fmt)
            if not spec.takes(height, width):
                raise ExportError(
                    f"--verify-sizes {height}x{width} does not suit --format {fmt}, which takes {spec.size_rule}; "
                    "choose another size or leave out that format"
                )


# ---------------------------------------------------------------------------------------------------------------
# driver


def export(
    generator: nn.Module,
    output: str | Path,
    formats: Sequence[str] = DEFAULT_FORMATS,
    opset: int | None = None,
    onnx_exporter: str = "dynamo",
    onnx_native_instance_norm: bool = False,
    verify_sizes: Sequence[tuple[int, int]] = DEFAULT_VERIFY_SIZES,
    tolerance: float = 1e-4,
    metadata: dict[str, Any] | None = None,
    log: Callable[[str], object] = print,
    bundle: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Export ``generator`` in ``formats`` into ``output`` and verify each file; returns the report (also written
    to ``<output>/export.json``). Raises :class:`ExportError` when an export differs by more than ``tolerance``
    (a number >= 0), and :class:`~dmfn_lightning.core.errors.OutputPathError` before any work when ``output``
    cannot be written."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ExportError(f"unknown format(s) {unknown}; choose from {', '.join(FORMATS)}")
    check_tolerance(tolerance)
    check_verify_sizes(formats, verify_sizes)
    out_dir = check_output_folder(output, "--output")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ExportError(f"cannot create --output {str(out_dir)!r}: {err.strerror or err}") from err
    generator = generator.cpu().eval()
    options = ExportOptions(opset, onnx_exporter, onnx_native_instance_norm, dict(metadata or {}), dict(bundle or {}))
    report: dict[str, Any] = {
        "generator": dict(getattr(generator, "config", {})),
        "torch": torch.__version__,
        "input": _input_rules(),
        "output": "[N, 3, H, W] raw prediction in [-1, 1] (tanh); composite with the mask yourself",
        "tolerance": tolerance,
        "formats": {},
    }
    failures = []
    for fmt in dict.fromkeys(formats):
        spec = EXPORT_FORMATS[fmt]
        path = out_dir / spec.filename
        try:
            spec.write(generator, path, options)
        except OSError as err:
            raise ExportError(f"cannot write {path}: {err.strerror or err}") from err
        entry: dict[str, Any] = {"file": str(path), "bytes": _size(path), **spec.details(path, options)}
        sizes = _verification_sizes(spec, verify_sizes)
        diffs = verify(generator, fmt, path, sizes)
        if diffs is None:
            entry["verified"] = "skipped: onnxruntime is not installed (pip install 'dmfn_lightning[export]')"
            log(f"{fmt:12s} {path}  (check skipped: onnxruntime is not installed)")
        else:
            entry["max_abs_diff"] = {f"{h}x{w}": d for (h, w), d in zip(sizes, diffs)}
            entry["verified"] = all(d <= tolerance for d in diffs)
            shown = ", ".join(f"{h}x{w}: {d:.2e}" for (h, w), d in zip(sizes, diffs))
            log(f"{fmt:12s} {path}  max |diff| vs PyTorch: {shown}  {'OK' if entry['verified'] else 'FAILED'}")
            if not entry["verified"]:
                failures.append(f"{fmt} ({shown})")
        report["formats"][fmt] = entry
    try:
        (out_dir / "export.json").write_text(json.dumps(report, indent=2) + "\n")
    except OSError as err:
        raise ExportError(f"cannot write {out_dir / 'export.json'}: {err.strerror or err}") from err
    if failures:
        raise ExportError(
            f"exported model(s) differ from PyTorch by more than {tolerance:g}: {'; '.join(failures)} "
            f"(report: {out_dir / 'export.json'})"
        )
    return report


# ---------------------------------------------------------------------------------------------------------------
# command line


def _input_rules() -> str:
    """The report's ``input``: the generator's input, then which sizes each format takes (from the registry)."""
    any_size = [name for name, spec in EXPORT_FORMATS.items() if spec.any_size]
    eager = [name for name, spec in EXPORT_FORMATS.items() if not spec.any_size and not spec.library_pads]
    library = [name for name, spec in EXPORT_FORMATS.items() if spec.library_pads]
    return "; ".join(
        [
            "[N, 4, H, W]: cat([image * (1 - mask), mask]), image in [-1, 1], mask 1 = hole",
            f"{' and '.join(any_size)}: any H, W of at least 1 (padded inside the model to multiples of 4 and at "
            "least 8, as the library's inference path pads, the output cropped back to H x W)",
            f"{' and '.join(eager)}: H, W divisible by 4 and at least 8",
            *(
                f"{name}: the eager model takes H, W divisible by 4, the library's run_generator any size"
                for name in library
            ),
        ]
    )


def _size(path: Path) -> int:
    """Bytes of a written file, or of all files in a written folder (a bundle)."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def check_tolerance(tolerance: float) -> float:
    """``tolerance`` if it is a number >= 0, else :class:`ExportError` (a negative one would fail every check,
    even a zero difference)."""
    if not isinstance(tolerance, int | float) or not tolerance >= 0:  # "not >=" also catches NaN
        raise ExportError(f"--tolerance must be a number >= 0 (max |exported - PyTorch|), got {tolerance}")
    return float(tolerance)


def _tolerance(text: str) -> float:
    try:
        return check_tolerance(float(text))
    except (ValueError, ExportError) as err:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}") from err


def check_source_not_overwritten(checkpoint: str | Path, output: str | Path, formats: Sequence[str]) -> None:
    """Refuse an ``output`` folder where the export would overwrite the checkpoint being exported (its
    ``generator.pt``, and with it the file's metadata, e.g. the training iteration)."""
    for fmt in formats:
        target = Path(output).expanduser() / FILENAMES.get(fmt, "")
        if target.exists() and target.resolve() == Path(checkpoint).expanduser().resolve():
            raise ExportError(
                f"--output {str(output)!r} holds the checkpoint being exported: writing {target.name} there would "
                "overwrite it (and lose its metadata). Choose another --output folder"
                + (f", or leave out --format {fmt}" if fmt in ("generator", "bundle") else "")
            )


def _parse_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 256x256, got {text!r}") from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"expected HxW with sides of at least 1 pixel, got {text!r}")
    return height, width


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dmfn_lightning.export",
        description="Export the DMFN generator to TorchScript / ONNX and check the result against PyTorch.",
    )
    add_checkpoint(parser)
    parser.add_argument("--output", required=True, metavar="DIR", help="output folder (created)")
    parser.add_argument(
        "--format",
        nargs="+",
        choices=FORMATS,
        default=list(DEFAULT_FORMATS),
        help=f"formats to write (default: {' '.join(DEFAULT_FORMATS)})",
    )
    parser.add_argument(
        "--opset",
        type=int,
        default=None,
        help="ONNX opset (default: dynamo's own (20 with torch 2.14), 17 for the legacy exporter)",
    )
    parser.add_argument("--onnx-exporter", choices=("dynamo", "torchscript"), default="dynamo")
    parser.add_argument(
        "--onnx-native-instancenorm",
        action="store_true",
        help="keep ONNX's fused InstanceNormalization (faster in onnxruntime, but ~1e-4 off PyTorch over 8 blocks)",
    )
    parser.add_argument(
        "--verify-sizes",
        nargs="+",
        type=_parse_size,
        default=list(DEFAULT_VERIFY_SIZES),
        metavar="HxW",
        help="resolutions of the numerical check (default: 256x256 192x320)",
    )
    parser.add_argument(
        "--tolerance", type=_tolerance, default=1e-4, help="max |exported - PyTorch|, >= 0 (default 1e-4)"
    )
    parser.add_argument(
        "--discriminator",
        metavar="D",
        default=None,
        help="--format bundle: the discriminator to include (e.g. the authors' *_D.pth); default: the one stored "
        "with --checkpoint (a training checkpoint's or a bundle's), if any",
    )
    parser.add_argument(
        "--license", default="mit", help="--format bundle: the license field of the model card (default: mit)"
    )
    parser.add_argument(
        "--evaluation",
        metavar="SUMMARY_JSON",
        default=None,
        help="--format bundle: the summary.json of a dmfn_lightning.evaluate run of this checkpoint, whose metrics "
        "and conventions go into config.json and the model card",
    )
    add_no_ema(parser)
    return parser


def evaluation_of_summary(path: str | Path, checkpoint: str, log: Callable[[str], object] = print) -> dict[str, Any]:
    """A bundle's ``evaluation`` from an evaluation's ``summary.json``: its metrics (those it computed), their
    conventions and the setting in words. Says in one line when the evaluation was of another checkpoint."""
    try:
        summary = json.loads(Path(path).expanduser().read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportError(
            f"--evaluation {str(path)!r} does not exist (give the summary.json of an evaluation)"
        ) from None
    except (OSError, ValueError) as err:
        raise ExportError(f"--evaluation {str(path)!r} is not readable JSON: {err}") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("metrics"), dict) or "protocol" not in summary:
        raise ExportError(
            f"--evaluation {str(path)!r} is not the summary.json of an evaluation (it has no metrics and protocol)"
        )
    evaluated = str(summary.get("checkpoint") or "")
    if evaluated and Path(evaluated).expanduser().resolve() != Path(checkpoint).expanduser().resolve():
        log(f"warning: --evaluation {path} is an evaluation of {evaluated}, not of --checkpoint {checkpoint}")
    protocol = summary.get("protocol") or {}
    setting = (
        f"{summary.get('dataset_name', 'custom data')}, {summary.get('n_images', '?')} images at "
        f"{protocol.get('image_size', '?')} px, holes: {protocol.get('mask', '?')}"
        + (" (the paper's Table 1 protocol)" if protocol.get("table1") else "")
        + f"; dmfn_lightning.evaluate of {evaluated or 'this checkpoint'}"
    )
    metrics = {k: v for k, v in summary["metrics"].items() if isinstance(v, int | float)}
    conventions = summary.get("conventions") if isinstance(summary.get("conventions"), dict) else {}
    return {
        "setting": setting,
        "metrics": metrics,
        "conventions": {k: conventions[k] for k in metrics if k in conventions},
    }


def bundle_options(
    checkpoint: str,
    generator: nn.Module,
    discriminator: str | None,
    prefer_ema: bool,
    license: str,
    evaluation: str | None = None,
) -> dict[str, Any]:
    """:func:`~dmfn_lightning.models.bundles.save_bundle`'s arguments for a bundle exported from ``checkpoint``:
    what it says the generator was trained on, the discriminator to include, the source as provenance, and the
    evaluation of ``evaluation`` (a summary.json) when given."""
    options: dict[str, Any] = {
        "training": training_of_source(checkpoint, generator, prefer_ema),
        "provenance": {"source": str(checkpoint), "exported_by": "dmfn_lightning.export"},
        "license": license,
    }
    if evaluation is not None:
        options["evaluation"] = evaluation_of_summary(evaluation, checkpoint)
    found = discriminator_of_source(checkpoint, discriminator)
    if found is not None:
        options["discriminator"], options["discriminator_config"] = found
    return options


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``dmfn-export``)."""
    args = build_parser().parse_args(argv)
    # Before the model is loaded: a bad --output fails in a second, not after the export.
    check_output_folder(args.output, "--output")
    check_source_not_overwritten(args.checkpoint, args.output, args.format)
    for flag, value in (("--discriminator", args.discriminator), ("--evaluation", args.evaluation)):
        if value is not None and "bundle" not in args.format:
            raise ExportError(f"{flag} goes into a weights bundle only: add --format bundle, or leave it out")
    generator = load_generator(args.checkpoint, map_location="cpu", prefer_ema=not args.no_ema)
    metadata: dict[str, Any] = {"source": str(args.checkpoint)}
    if getattr(generator, "metadata", None):
        metadata["source_metadata"] = dict(generator.metadata)  # provenance of the source travels with the copy
    bundle = {}
    if "bundle" in args.format:
        bundle = bundle_options(
            args.checkpoint, generator, args.discriminator, not args.no_ema, args.license, args.evaluation
        )
    export(
        generator,
        args.output,
        formats=args.format,
        opset=args.opset,
        onnx_exporter=args.onnx_exporter,
        onnx_native_instance_norm=args.onnx_native_instancenorm,
        verify_sizes=args.verify_sizes,
        tolerance=args.tolerance,
        metadata=metadata,
        bundle=bundle,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
