"""Reading and writing torch files safely: atomic saves that a crash cannot truncate, and ``weights_only`` loads
that refuse a file which would run code, with the reason and the offending global named."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from dmfn_lightning.core.errors import CheckpointError
from dmfn_lightning.core.files import atomic_write
from dmfn_lightning.core.weights import TORCH_LOAD_ERRORS, weights_only_refusal

__all__ = ["atomic_torch_save", "safe_load"]


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through :func:`~dmfn_lightning.core.files.atomic_write`: a crash mid-write leaves the old
    file intact."""
    atomic_write(path, lambda f: torch.save(obj, f))


# Names of pickled classes that make a file a whole pickled model rather than weights (the modules of torch.nn,
# Lightning and this package, or a script's own classes).
_MODEL_GLOBAL = re.compile(r"^(torch\.nn\.modules\.|dmfn_lightning\.|pytorch_lightning\.|lightning\.|__main__\.)")


def _unsafe_pickle_error(path: Path, exc: pickle.UnpicklingError) -> CheckpointError:
    """The message for a file that ``torch.load(weights_only=True)`` refused (torch >= 2.6 wordings)."""
    refusal = weights_only_refusal(path, exc)
    if refusal is None:
        # Not a pickle at all (an image, a text file, garbage): the weights-only unpickler trips on byte one.
        return CheckpointError(f"{path} is not a PyTorch checkpoint (truncated or corrupted, or another kind of file)")
    name, reason = refusal
    if name and _MODEL_GLOBAL.match(name):
        return CheckpointError(
            f"{path} is a whole pickled model ({name}), not weights: loading it would unpickle Python objects, "
            "which can run arbitrary code, so it is refused (torch.load(weights_only=True)). If you trust the "
            "file, convert it once in Python: `import torch; from dmfn_lightning.models import export_generator; "
            f"export_generator(torch.load({str(path)!r}, weights_only=False), 'generator.pt')` (for a whole "
            "DMFNModule, pass its `.generator`), then use generator.pt."
        )
    what = f"a pickled `{name}`" if name else reason
    return CheckpointError(
        f"{path} holds Python objects that are unsafe to load ({what}, refused by torch.load(weights_only=True)): "
        "unpickling them could run arbitrary code, so the file was refused, not because it is damaged. Use a "
        "checkpoint from a source you trust: a generator.pt or .ckpt written by this package, or the authors' "
        "released weights."
    )


def safe_load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(weights_only=True)`` with the failure modes turned into :class:`CheckpointError`.

    The message tells a folder, a missing file, a damaged or foreign file, a TorchScript archive and a file that
    was refused as unsafe (pickled Python objects, e.g. a whole pickled model) apart.
    """
    path = Path(path)
    if path.is_dir():
        inside = [p.name for p in (path / "generator.pt", path / "checkpoints" / "last.ckpt") if p.is_file()]
        hint = f" (it holds {inside[0]}: pass that file)" if inside else ""
        if inside and inside[0] == "last.ckpt":
            hint = f" (it holds checkpoints/last.ckpt: pass {path / 'checkpoints' / 'last.ckpt'})"
        raise CheckpointError(
            f"checkpoint {str(path)!r} is a folder; expected a checkpoint file (generator.pt, a .ckpt or the "
            f"authors' weights){hint}"
        )
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise _unsafe_pickle_error(path, exc) from exc
    except RuntimeError as exc:
        if "TorchScript" in str(exc):
            raise CheckpointError(
                f"{path} is a TorchScript archive (e.g. generator.torchscript.pt from dmfn_lightning.export): load "
                "it with torch.jit.load; here, pass the generator.pt written beside it or a .ckpt"
            ) from exc
        raise _unreadable(path, exc) from exc
    except TORCH_LOAD_ERRORS as exc:
        raise _unreadable(path, exc) from exc


def _unreadable(path: Path, exc: BaseException) -> CheckpointError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return CheckpointError(
        f"{path} is not a readable PyTorch file (truncated or corrupted?): {type(exc).__name__}: {first}"
    )
