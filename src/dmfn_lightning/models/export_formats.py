"""The generator's deployment formats: how each is written, loaded back and run (:data:`EXPORT_FORMATS`).

Every format takes the generator's 4-channel input (:meth:`DMFNGenerator.make_input`) and returns the raw
prediction. One :class:`ExportFormat` per format holds its file name, its writer and its loader, so that
:func:`dmfn_lightning.export.export` and :func:`dmfn_lightning.export.verify` never switch on the format's name.
TorchScript and ONNX wrap the network in :class:`PadToMultipleOf4` so that they accept any height and width, padded
exactly as the library's inference path pads; ONNX also replaces instance normalisation by
:class:`TwoStageInstanceNorm` (see there for why). :meth:`ExportFormat.takes` says which sizes a format runs.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dmfn_lightning.core.errors import ExportError
from dmfn_lightning.core.sizes import MIN_SIDE, MULTIPLE
from dmfn_lightning.models.bundles import save_bundle
from dmfn_lightning.models.generator import DMFNGenerator
from dmfn_lightning.models.generator_files import export_generator, load_generator
from dmfn_lightning.models.inference import crop_output, pad_input, predict

__all__ = [
    "DEFAULT_FORMATS",
    "EXPORT_FORMATS",
    "FILENAMES",
    "FORMATS",
    "ExportFormat",
    "ExportOptions",
    "PadToMultipleOf4",
    "Runner",
    "TwoStageInstanceNorm",
    "example_input",
    "export_onnx",
    "export_pt2",
    "export_torchscript",
    "get_format",
    "padded_reference",
    "quiet_export_warnings",
    "scripted_wrapper",
    "with_two_stage_instance_norm",
]

# Example input for tracing/exporting: batch 2 and H != W so that no dimension is specialised to 1 or tied to
# another by the exporters.
_EXAMPLE_SHAPE = (2, 4, 64, 96)
_ONNX_EXPORTERS = ("dynamo", "torchscript")

Runner = Callable[[Tensor], Tensor]
"""An exported model loaded back: generator input ``[N, 4, H, W]`` -> float32 prediction ``[N, 3, H, W]``."""


def example_input(batch: int, height: int, width: int, seed: int = 0) -> Tensor:
    """A deterministic generator input: random image in [-1, 1] with a centred half-size hole."""
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, height, width, generator=g) * 2 - 1
    mask = torch.zeros(batch, 1, height, width)
    mask[..., height // 4 : height // 4 + height // 2, width // 4 : width // 4 + width // 2] = 1
    return DMFNGenerator.make_input(image, mask)


def _tracing_input() -> Tensor:
    return example_input(_EXAMPLE_SHAPE[0], *_EXAMPLE_SHAPE[2:])


@contextlib.contextmanager
def quiet_export_warnings() -> Iterator[None]:
    """Silence the exporters' known-harmless warnings (correctness is established by the numerical check)."""
    # TracerWarnings come from shape checks (constant for valid inputs); InstanceNorm's "train=True" note is moot
    # (InstanceNorm2d without running stats always normalises with the input's statistics).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=r".*instance_norm.*train=True.*")
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.\w+` is deprecated.*", category=FutureWarning)
        warnings.filterwarnings("ignore", message=r".*legacy TorchScript-based ONNX export.*")
        yield


# ---------------------------------------------------------------------------------------------------------------
# graph rewrites for export


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
    """Runs ``generator`` on any H x W: pads the input exactly as the library's inference path does
    (:func:`dmfn_lightning.models.inference.pad_input`, the same function: bottom/right to multiples of 4 and at
    least 8, by reflection, or replication where a side is too short to reflect) and crops the prediction back to
    H x W (:func:`~dmfn_lightning.models.inference.crop_output`).

    The pad amounts are computed from the input's shape inside the graph (scripted for TorchScript, symbolic for
    the ONNX exporters), so an exported model keeps its input's size instead of returning a 152-row prediction
    for 150 rows, and gives the library's prediction at every size, 1x1 included.
    """

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2], x.shape[-1]
        return crop_output(self.generator(pad_input(x)), height, width)


def padded_reference(generator: nn.Module, x: Tensor) -> Tensor:
    """``generator``'s float32 prediction for ``x`` of any size from the library's inference engine: what an
    exported file must reproduce (:class:`PadToMultipleOf4` pads with the same function)."""
    with torch.no_grad():
        return predict(generator, x)


# ---------------------------------------------------------------------------------------------------------------
# writers


def scripted_wrapper(generator: nn.Module) -> torch.jit.ScriptModule:
    """The generator traced (``torch.jit.trace``), inside the scripted :class:`PadToMultipleOf4`: valid for any
    batch size, height and width. Scripted, not traced: a trace would freeze the pad amounts of the example input
    (zero) and the choice between reflection and replication."""
    with quiet_export_warnings(), torch.no_grad():
        traced = torch.jit.trace(generator.eval(), _tracing_input())
        return torch.jit.script(PadToMultipleOf4(traced))


def export_torchscript(generator: nn.Module, path: str | Path) -> Path:
    """Save :func:`scripted_wrapper` of the generator as TorchScript (any batch size, height and width)."""
    path = Path(path)
    scripted_wrapper(generator).save(str(path))
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
    if exporter not in _ONNX_EXPORTERS:
        raise ExportError(f"--onnx-exporter must be 'dynamo' or 'torchscript', got {exporter!r}")
    if not native_instance_norm:
        generator = with_two_stage_instance_norm(generator)
    # torch.export keeps the padding's sizes symbolic; the legacy exporter traces, so it is handed the scripted
    # padding (exported as ONNX control flow) around the traced generator, as the TorchScript file is.
    generator = PadToMultipleOf4(generator).eval() if exporter == "dynamo" else scripted_wrapper(generator)
    try:  # optional dependencies (the [export] extra), so imported only when ONNX is asked for
        import onnx  # noqa: F401  (both exporters need it)

        if exporter == "dynamo":
            import onnxscript  # noqa: F401
    except ImportError as err:
        raise ExportError(f"ONNX export needs the `{err.name}` package: pip install 'dmfn_lightning[export]'") from err
    if exporter == "dynamo":
        dim = torch.export.Dim.DYNAMIC
        kwargs: dict[str, Any] = {
            "dynamo": True,
            "external_data": False,  # one self-contained file (the weights are far below the 2 GB limit)
            "opset_version": opset,
            "dynamic_shapes": ({0: dim, 2: dim, 3: dim},),
            "verbose": False,
        }
    else:
        axes = {0: "batch", 2: "height", 3: "width"}
        kwargs = {"dynamo": False, "opset_version": opset or 17, "dynamic_axes": {"input": axes, "output": axes}}
    try:
        with quiet_export_warnings(), torch.no_grad():
            torch.onnx.export(
                generator, (_tracing_input(),), str(path), input_names=["input"], output_names=["output"], **kwargs
            )
    except Exception as err:  # the exporters raise many types; the user needs the message, not the stack
        raise ExportError(f"ONNX export ({exporter}) failed: {type(err).__name__}: {err}") from err
    return path


def export_pt2(generator: nn.Module, path: str | Path) -> Path:
    """``torch.export`` the generator with dynamic batch, height and width and save the ExportedProgram."""
    path = Path(path)
    dim = torch.export.Dim.DYNAMIC
    with torch.no_grad():
        program = torch.export.export(generator.eval(), (_tracing_input(),), dynamic_shapes=({0: dim, 2: dim, 3: dim},))
    torch.export.save(program, str(path))
    return path


# ---------------------------------------------------------------------------------------------------------------
# loaders


def _torch_runner(module: Callable[[Tensor], Tensor]) -> Runner:
    def run(x: Tensor) -> Tensor:
        with torch.no_grad():
            return module(x).float()

    return run


def _load_torchscript(path: Path) -> Runner:
    with quiet_export_warnings():
        return _torch_runner(torch.jit.load(str(path), map_location="cpu"))


def _load_onnx(path: Path) -> Runner | None:
    try:  # optional dependency: without it the ONNX file cannot be checked here
        import onnxruntime as ort
    except ImportError:
        return None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def run(x: Tensor) -> Tensor:
        return torch.from_numpy(session.run(None, {input_name: x.numpy()})[0])

    return run


def _load_pt2(path: Path) -> Runner:
    return _torch_runner(torch.export.load(str(path)).module())


def _load_generator_file(path: Path) -> Runner:
    generator = load_generator(path)
    # As the library runs generator.pt (inpaint, evaluate, the web app): through the inference path, which pads.
    return _torch_runner(lambda x: predict(generator, x))


# ---------------------------------------------------------------------------------------------------------------
# the registry


@dataclass(frozen=True)
class ExportOptions:
    """The export's settings that some formats use (``python -m dmfn_lightning.export``'s flags)."""

    opset: int | None = None
    onnx_exporter: str = "dynamo"
    onnx_native_instance_norm: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)  # stored in generator.pt
    # save_bundle's keyword arguments for the bundle: discriminator (+ discriminator_config), training, provenance,
    # license.
    bundle: dict[str, Any] = field(default_factory=dict)


def _no_details(path: Path, options: ExportOptions) -> dict[str, Any]:
    return {}


def _onnx_details(path: Path, options: ExportOptions) -> dict[str, Any]:
    import onnx  # optional dependency; present, since export_onnx wrote the file

    model = onnx.load(str(path), load_external_data=False)
    return {
        "opset": next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None),
        "exporter": options.onnx_exporter,
        "instance_norm": "native" if options.onnx_native_instance_norm else "two-stage reductions",
    }


@dataclass(frozen=True)
class ExportFormat:
    """One deployment format: its file, how to write it and how to run the written file."""

    name: str
    filename: str
    write: Callable[[nn.Module, Path, ExportOptions], object]
    load: Callable[[Path], Runner | None]  # None: the file cannot be run here (a missing optional package)
    any_size: bool  # pads inside the model (PadToMultipleOf4): accepts H and W that are not multiples of 4
    details: Callable[[Path, ExportOptions], dict[str, Any]] = _no_details  # extra report fields
    # Run through the library's inference path (load_generator + run_generator), which pads: any size as well.
    library_pads: bool = False

    def takes(self, height: int, width: int) -> bool:
        """Whether the written file runs an ``height x width`` input: any size of at least 1 pixel when the model
        or the library pads it, else sides divisible by 4 and at least 8 (the eager generator's own check)."""
        if height < 1 or width < 1:
            return False
        if self.any_size or self.library_pads:
            return True
        return height % MULTIPLE == 0 and width % MULTIPLE == 0 and min(height, width) >= MIN_SIDE

    @property
    def size_rule(self) -> str:
        """:meth:`takes` in words, for messages and the report."""
        if self.any_size or self.library_pads:
            return "any height and width of at least 1"
        return f"height and width divisible by {MULTIPLE} and at least {MIN_SIDE}"


EXPORT_FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat(
            "torchscript",
            "generator.torchscript.pt",
            write=lambda g, path, options: export_torchscript(g, path),
            load=_load_torchscript,
            any_size=True,
        ),
        ExportFormat(
            "onnx",
            "generator.onnx",
            write=lambda g, path, o: export_onnx(g, path, o.opset, o.onnx_exporter, o.onnx_native_instance_norm),
            load=_load_onnx,
            any_size=True,
            details=_onnx_details,
        ),
        ExportFormat(
            "pt2",
            "generator.pt2",
            write=lambda g, path, options: export_pt2(g, path),
            load=_load_pt2,
            any_size=False,
        ),
        ExportFormat(
            "generator",
            "generator.pt",
            write=lambda g, path, o: export_generator(
                g, path, metadata={**o.metadata, "exported_by": "dmfn_lightning.export"}
            ),
            load=_load_generator_file,
            any_size=False,
            library_pads=True,
        ),
        ExportFormat(
            "bundle",
            "bundle",  # a folder: model.safetensors, discriminator.safetensors, config.json, README.md
            write=lambda g, path, o: save_bundle(path, g, **o.bundle),
            load=_load_generator_file,  # load_generator reads bundle folders too
            any_size=False,
            library_pads=True,
        ),
    )
}
FORMATS = tuple(EXPORT_FORMATS)
DEFAULT_FORMATS = ("torchscript", "onnx", "generator")
FILENAMES = {name: f.filename for name, f in EXPORT_FORMATS.items()}


def get_format(name: str) -> ExportFormat:
    """The :class:`ExportFormat` called ``name``, or :class:`ExportError` naming the known ones."""
    try:
        return EXPORT_FORMATS[name]
    except KeyError:
        raise ExportError(f"unknown format {name!r}; choose from {', '.join(FORMATS)}") from None
