"""Export the DMFN generator for deployment: ``python -m dmfn_lightning.export`` (console script ``dmfn-export``).

::

    python -m dmfn_lightning.export --checkpoint outputs/paris/last.ckpt --output exported/
    python -m dmfn_lightning.export --checkpoint generator.pt --output exported/ --format onnx --opset 18

Formats (all take the generator's 4-channel input ``cat([image * (1 - mask), mask])`` ``[N, 4, H, W]`` with the
image in [-1, 1] and 1 = hole, and return the raw prediction ``[N, 3, H, W]`` in [-1, 1], the input's size;
composite it yourself, ``mask * out + (1 - mask) * image``):

* **Any height and width.** The network needs H and W divisible by 4 (the eager generator refuses other sizes).
  The TorchScript and ONNX files pad their input inside the model, by reflection at the bottom and right, to the
  next multiples of 4 and crop the prediction back (:class:`PadToMultipleOf4`, exactly what
  :func:`dmfn_lightning.inpainting.run_generator` does), so a 150x200 input gives a 150x200 output; sides must be
  at least 4. ``pt2`` and ``generator`` keep the eager model's check and refuse such sizes.
* ``torchscript`` -> ``generator.torchscript.pt``: the network is traced (``torch.jit.trace``; it has no
  data-dependent control flow, so the trace is valid for every batch size, height and width; ``torch.jit.script``
  cannot compile the blocks' ``ModuleList`` indexing) and wrapped in the scripted padding. Load with
  ``torch.jit.load``.
* ``onnx`` -> ``generator.onnx``, one self-contained file with dynamic batch, height and width. By default the
  ``torch.export``-based exporter (``dynamo=True``, its default opset: 20 with torch 2.14) is used;
  ``--onnx-exporter torchscript`` selects the legacy exporter (``dynamo=False``, opset 17). Both handle
  ``InstanceNorm2d`` with dynamic H and W. Instance normalisation is written as two-stage reductions
  (:class:`TwoStageInstanceNorm`): onnxruntime's fused ``InstanceNormalization`` drifts by ~1.2e-4 from PyTorch
  over the 8-block network (it accumulates long float32 sums), the two-stage form stays at ~2e-5 for ~5 % more
  onnxruntime time; ``--onnx-native-instancenorm`` keeps the fused op.
* ``pt2`` -> ``generator.pt2`` (``torch.export`` ExportedProgram with dynamic dims; ``torch.export.load``).
* ``generator`` -> ``generator.pt``: the library's own weights + config file (``load_generator``).

After writing, every exported model is loaded back and compared with the PyTorch generator at two resolutions
(default 256x256 and 192x320, batch 2), and the TorchScript and ONNX files also at a size that is not a
multiple of 4 (the first size less 2 rows and 1 column); the maximum absolute difference is printed and must be
at most ``--tolerance`` (1e-4, not negative). ONNX is checked with onnxruntime when it is installed (``pip install
'dmfn_lightning[export]'``), otherwise that check is skipped with a message. A JSON report is written beside the
files (``export.json``).

Before the model is loaded, ``--output`` is checked: an existing file or a read-only folder is an error, and so
is an output folder whose ``generator.pt`` is the checkpoint being exported (it would be overwritten, losing its
metadata). The ``generator.pt`` written keeps the source's provenance: ``metadata.source`` and, when the source
has metadata (an exported generator's, a Lightning checkpoint's step), ``metadata.source_metadata``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dmfn_lightning.errors import ExportError, exit_on_user_error

FORMATS = ("torchscript", "onnx", "pt2", "generator")
DEFAULT_FORMATS = ("torchscript", "onnx", "generator")
FILENAMES = {
    "torchscript": "generator.torchscript.pt",
    "onnx": "generator.onnx",
    "pt2": "generator.pt2",
    "generator": "generator.pt",
}
DEFAULT_VERIFY_SIZES = ((256, 256), (192, 320))
# Example input for tracing/exporting: batch 2 and H != W so that no dimension is specialised to 1 or tied to
# another by the exporters.
_EXAMPLE_SHAPE = (2, 4, 64, 96)


def example_input(batch: int, height: int, width: int, seed: int = 0) -> Tensor:
    """A deterministic generator input: random image in [-1, 1] with a centred half-size hole."""
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, height, width, generator=g) * 2 - 1
    mask = torch.zeros(batch, 1, height, width)
    mask[..., height // 4 : height // 4 + height // 2, width // 4 : width // 4 + width // 2] = 1
    return torch.cat([image * (1 - mask), mask], dim=1)


@contextlib.contextmanager
def _quiet_export_warnings() -> Iterator[None]:
    # Known-harmless: TracerWarnings from shape checks (constant for valid inputs) and InstanceNorm's
    # "train=True" note (InstanceNorm2d without running stats always normalises with the input's statistics);
    # jit's deprecation notice. Correctness is established by the numerical check after export instead.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=r".*instance_norm.*train=True.*")
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.\w+` is deprecated.*", category=FutureWarning)
        warnings.filterwarnings("ignore", message=r".*legacy TorchScript-based ONNX export.*")
        yield


# ---------------------------------------------------------------------------------------------------------------
# exporters


class TwoStageInstanceNorm(nn.Module):
    """``InstanceNorm2d(affine=False)`` written as plain reductions, for ONNX.

    onnxruntime's ``InstanceNormalization`` and ``ReduceMean`` accumulate 16k-65k float32 values in one running sum;
    with the generator's activations that costs ~3e-5 per normalisation and ~1.2e-4 at the output of the 8-block
    network (PyTorch, which sums pairwise, stays within ~2e-5 of float64). Averaging over W, then over H keeps each
    sum short, and onnxruntime then matches PyTorch to ~1e-6 per layer. Same maths: biased variance, eps inside the
    square root.
    """

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        centred = x - x.mean(dim=3, keepdim=True).mean(dim=2, keepdim=True)
        var = (centred * centred).mean(dim=3, keepdim=True).mean(dim=2, keepdim=True)
        return centred * torch.rsqrt(var + self.eps)


def with_two_stage_instance_norm(generator: nn.Module) -> nn.Module:
    """A copy of ``generator`` whose parameter-free ``InstanceNorm2d`` layers are :class:`TwoStageInstanceNorm`."""
    model = copy.deepcopy(generator)
    for parent in model.modules():
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.InstanceNorm2d) and not child.affine and not child.track_running_stats:
                setattr(parent, name, TwoStageInstanceNorm(child.eps))
    return model


class PadToMultipleOf4(nn.Module):
    """Runs ``generator`` on any H x W: reflect-pads the input at the bottom/right to multiples of 4 and crops the
    prediction back to H x W, as :func:`dmfn_lightning.inpainting.run_generator` does (sides of at least 4).

    The pad amounts are computed from the input's shape inside the graph (scripted for TorchScript, symbolic for
    the ONNX exporters), so an exported model keeps its input's size instead of returning a 152-row prediction
    for 150 rows.
    """

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2], x.shape[-1]
        pad_h = (4 - height % 4) % 4
        pad_w = (4 - width % 4) % 4
        padded = nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        return self.generator(padded)[:, :, :height, :width]


def padded_reference(generator: nn.Module, x: Tensor) -> Tensor:
    """``generator``'s prediction for ``x`` of any size, padded and cropped as :class:`PadToMultipleOf4` does."""
    with torch.no_grad():
        return PadToMultipleOf4(generator)(x).float()


def export_torchscript(generator: nn.Module, path: str | Path) -> Path:
    """Trace the generator to TorchScript, wrap it in the scripted :class:`PadToMultipleOf4` and save it (valid
    for any batch size, height and width)."""
    path = Path(path)
    with _quiet_export_warnings(), torch.no_grad():
        traced = torch.jit.trace(generator.eval(), example_input(_EXAMPLE_SHAPE[0], *_EXAMPLE_SHAPE[2:]))
        # Scripted, not traced: a trace would freeze the pad amounts of the example input (zero).
        model = torch.jit.script(PadToMultipleOf4(traced))
    model.save(str(path))
    return path


def export_onnx(
    generator: nn.Module,
    path: str | Path,
    opset: int | None = None,
    exporter: str = "dynamo",
    native_instance_norm: bool = False,
) -> Path:
    """Export the generator to one ONNX file with dynamic batch, height and width (any H and W: the input is padded
    to multiples of 4 inside the graph and the prediction cropped back, :class:`PadToMultipleOf4`).

    Unless ``native_instance_norm``, instance normalisation is exported as two-stage reductions
    (:class:`TwoStageInstanceNorm`) so that onnxruntime matches PyTorch within 1e-4 (measured ~2e-5 for the
    8-block generator at 256x256); the fused ``InstanceNormalization`` op is ~5 % faster end to end in onnxruntime
    but drifts by ~1.2e-4 over the full network.
    """
    path = Path(path)
    if not native_instance_norm:
        generator = with_two_stage_instance_norm(generator)
    generator = PadToMultipleOf4(generator)
    if exporter not in ("dynamo", "torchscript"):
        raise ExportError(f"--onnx-exporter must be 'dynamo' or 'torchscript', got {exporter!r}")
    try:
        import onnx  # noqa: F401  (both exporters need it)

        if exporter == "dynamo":
            import onnxscript  # noqa: F401
    except ImportError as err:
        raise ExportError(f"ONNX export needs the `{err.name}` package: pip install 'dmfn_lightning[export]'") from err
    x = example_input(_EXAMPLE_SHAPE[0], *_EXAMPLE_SHAPE[2:])
    names = {"input_names": ["input"], "output_names": ["output"]}
    try:
        with _quiet_export_warnings(), torch.no_grad():
            if exporter == "dynamo":
                dim = torch.export.Dim.DYNAMIC
                torch.onnx.export(
                    generator.eval(),
                    (x,),
                    str(path),
                    dynamo=True,
                    external_data=False,  # one self-contained file (the weights are far below the 2 GB limit)
                    opset_version=opset,
                    dynamic_shapes=({0: dim, 2: dim, 3: dim},),
                    verbose=False,
                    **names,
                )
            else:
                axes = {0: "batch", 2: "height", 3: "width"}
                torch.onnx.export(
                    generator.eval(),
                    (x,),
                    str(path),
                    dynamo=False,
                    opset_version=opset or 17,
                    dynamic_axes={"input": axes, "output": axes},
                    **names,
                )
    except Exception as err:  # the exporters raise many types; the user needs the message, not the stack
        raise ExportError(f"ONNX export ({exporter}) failed: {type(err).__name__}: {err}") from err
    return path


def export_pt2(generator: nn.Module, path: str | Path) -> Path:
    """``torch.export`` the generator with dynamic batch, height and width and save the ExportedProgram."""
    path = Path(path)
    dim = torch.export.Dim.DYNAMIC
    x = example_input(_EXAMPLE_SHAPE[0], *_EXAMPLE_SHAPE[2:])
    with torch.no_grad():
        program = torch.export.export(generator.eval(), (x,), dynamic_shapes=({0: dim, 2: dim, 3: dim},))
    torch.export.save(program, str(path))
    return path


# ---------------------------------------------------------------------------------------------------------------
# verification


def _reference(generator: nn.Module, x: Tensor) -> Tensor:
    if x.shape[-2] % 4 or x.shape[-1] % 4:
        return padded_reference(generator, x)
    with torch.no_grad():
        return generator(x).float()


def verify(
    generator: nn.Module, fmt: str, path: Path, sizes: Sequence[tuple[int, int]], batch: int = 2
) -> list[float] | None:
    """Max |exported - PyTorch| at each (H, W) in ``sizes``; ``None`` when it cannot be checked here (ONNX without
    onnxruntime). Sizes that are not multiples of 4 are compared with :func:`padded_reference`."""
    if fmt == "onnx":
        try:
            import onnxruntime as ort
        except ImportError:
            return None
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name

        def run(x: Tensor) -> Tensor:
            return torch.from_numpy(session.run(None, {input_name: x.numpy()})[0])

    elif fmt == "torchscript":
        with _quiet_export_warnings():
            module = torch.jit.load(str(path), map_location="cpu")

        def run(x: Tensor) -> Tensor:
            with torch.no_grad():
                return module(x).float()

    elif fmt == "pt2":
        module = torch.export.load(str(path)).module()

        def run(x: Tensor) -> Tensor:
            with torch.no_grad():
                return module(x).float()

    elif fmt == "generator":
        from dmfn_lightning.models import load_generator

        module = load_generator(path)

        def run(x: Tensor) -> Tensor:
            with torch.no_grad():
                return module(x).float()

    else:
        raise ExportError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    diffs = []
    for i, (height, width) in enumerate(sizes):
        x = example_input(batch, height, width, seed=i + 1)
        out = run(x)
        ref = _reference(generator, x)
        if out.shape != ref.shape:
            raise ExportError(
                f"{path} returned shape {tuple(out.shape)} for input {tuple(x.shape)}, expected {tuple(ref.shape)}"
            )
        diffs.append(float((out - ref).abs().max()))
    return diffs


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
    log=print,
) -> dict[str, Any]:
    """Export ``generator`` in ``formats`` into ``output`` and verify each file; returns the report (also written
    to ``<output>/export.json``). Raises :class:`ExportError` when an export differs by more than ``tolerance``
    (a number >= 0), and :class:`~dmfn_lightning.inpainting.OutputPathError` before any work when ``output``
    cannot be written."""
    from dmfn_lightning.inpainting import check_output_folder
    from dmfn_lightning.models import export_generator

    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ExportError(f"unknown format(s) {unknown}; choose from {', '.join(FORMATS)}")
    check_tolerance(tolerance)
    for height, width in verify_sizes:
        if height % 4 or width % 4 or min(height, width) < 8:
            raise ExportError(f"verification size {height}x{width} must be at least 8 and divisible by 4")
    out_dir = check_output_folder(output, "--output")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ExportError(f"cannot create --output {str(out_dir)!r}: {err.strerror or err}") from err
    generator = generator.cpu().eval()
    report: dict[str, Any] = {
        "generator": dict(getattr(generator, "config", {})),
        "torch": torch.__version__,
        "input": "[N, 4, H, W]: cat([image * (1 - mask), mask]), image in [-1, 1], mask 1 = hole; H, W divisible by 4",
        "output": "[N, 3, H, W] raw prediction in [-1, 1] (tanh); composite with the mask yourself",
        "tolerance": tolerance,
        "formats": {},
    }
    failures = []
    for fmt in dict.fromkeys(formats):
        path = out_dir / FILENAMES[fmt]
        try:
            if fmt == "torchscript":
                export_torchscript(generator, path)
            elif fmt == "onnx":
                export_onnx(generator, path, opset, onnx_exporter, onnx_native_instance_norm)
            elif fmt == "pt2":
                export_pt2(generator, path)
            else:
                export_generator(generator, path, metadata={**(metadata or {}), "exported_by": "dmfn_lightning.export"})
        except OSError as err:
            raise ExportError(f"cannot write {path}: {err.strerror or err}") from err
        entry: dict[str, Any] = {"file": str(path), "bytes": path.stat().st_size}
        if fmt == "onnx":
            import onnx

            model = onnx.load(str(path), load_external_data=False)
            entry["opset"] = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
            entry["exporter"] = onnx_exporter
            entry["instance_norm"] = "native" if onnx_native_instance_norm else "two-stage reductions"
        sizes = list(verify_sizes)
        if fmt in ("torchscript", "onnx"):  # these two pad inside the model: check a size that needs it
            sizes.append((verify_sizes[0][0] - 2, verify_sizes[0][1] - 1))
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
        if target.is_file() and target.resolve() == Path(checkpoint).expanduser().resolve():
            raise ExportError(
                f"--output {str(output)!r} holds the checkpoint being exported: writing {target.name} there would "
                "overwrite it (and lose its metadata). Choose another --output folder"
                + (", or leave out --format generator" if fmt == "generator" else "")
            )


def _parse_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 256x256, got {text!r}") from None
    return height, width


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dmfn_lightning.export",
        description="Export the DMFN generator to TorchScript / ONNX and check the result against PyTorch.",
    )
    parser.add_argument(
        "--checkpoint", required=True, metavar="CKPT", help="Lightning checkpoint, exported generator or released G"
    )
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
    parser.add_argument("--no-ema", action="store_true", help="export the raw generator of a Lightning checkpoint")
    return parser


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``dmfn-export``)."""
    from dmfn_lightning.inpainting import check_output_folder
    from dmfn_lightning.models import load_generator

    args = build_parser().parse_args(argv)
    # Before the model is loaded: a bad --output fails in a second, not after the export.
    check_output_folder(args.output, "--output")
    check_source_not_overwritten(args.checkpoint, args.output, args.format)
    generator = load_generator(args.checkpoint, map_location="cpu", prefer_ema=not args.no_ema)
    metadata: dict[str, Any] = {"source": str(args.checkpoint)}
    if getattr(generator, "metadata", None):
        metadata["source_metadata"] = dict(generator.metadata)  # provenance of the source travels with the copy
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
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
