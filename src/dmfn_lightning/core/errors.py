"""User-facing failures: one clear paragraph on stderr and a non-zero exit, never a stack trace.

Entry points wrap their body in :func:`exit_on_user_error`. ``HYDRA_FULL_ERROR=1`` (Hydra's own switch, honoured
by the non-Hydra entry points too) re-raises so the full traceback is available when debugging. Only the Hydra
programs (train, evaluate) end their message with Hydra's hint, ``(set HYDRA_FULL_ERROR=1 for the full
traceback)``: for inpaint, export, app and manifest, which are not Hydra programs, the refusal is the one
``error:`` line.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class DMFNError(Exception):
    """Base of errors caused by the user's input or configuration (bad path, bad value, bad file)."""


class ConfigError(DMFNError, ValueError):
    """A configuration value is invalid; the message names the key, the value and the valid choices."""


class DataError(DMFNError, ValueError):
    """Bad data or data configuration: the message names the path and the problem."""


class CheckpointError(DMFNError, ValueError):
    """A checkpoint or generator file cannot be used; the message says which file and why."""


class WeightsUnavailableError(DMFNError, RuntimeError):
    """Pretrained weights are neither cached nor downloadable; the message names the file and where it goes."""


class FeatureExtractorUnavailableError(WeightsUnavailableError):
    """The Inception network for FID/KID cannot be built here (weights not cached, or torch-fidelity missing)."""


class DivergenceError(DMFNError, RuntimeError):
    """Training produced too many non-finite losses in a row."""


class ExportError(DMFNError, RuntimeError):
    """Export failed or the exported model does not match PyTorch."""


class ManifestError(DMFNError, ValueError):
    """A manifest, one of its mask files or an output folder does not match what it should be (one line)."""


class InpaintError(DMFNError, ValueError):
    """Invalid input to inpainting (image, mask, sizes, options); the message names the input and the problem."""


class InpaintMemoryError(InpaintError):
    """Inpainting would not fit, or did not fit, in memory; the message suggests a smaller working size."""


class NonFiniteOutputError(InpaintError):
    """The generator produced NaN or infinite values inside the hole (broken weights): nothing is saved."""


class OutputPathError(DMFNError, ValueError):
    """An output location is occupied or not writable; checked before any work starts."""


class RunFolderBusyError(OutputPathError):
    """Another live training holds the run folder's lock (``core.run_lock``); the message names its pid and host."""


def user_error_cause(exc: BaseException) -> BaseException | None:
    """The user error behind ``exc``: itself, or the cause Hydra's ``instantiate`` wrapped it in."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, DMFNError):
            return exc
        if type(exc).__name__ != "InstantiationException":
            return None
        exc, seen = exc.__cause__, seen + 1
    return None


def full_error_requested() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR", "0") not in ("", "0")


HYDRA_HINT = "(set HYDRA_FULL_ERROR=1 for the full traceback)"


def in_hydra_job() -> bool:
    """Whether a Hydra program's job is running (``@hydra.main``): only then is Hydra's switch worth naming.

    Hydra is looked up among the imported modules, not imported: a program that never imported it is no Hydra
    program.
    """
    hydra_config = sys.modules.get("hydra.core.hydra_config")
    try:
        return bool(hydra_config is not None and hydra_config.HydraConfig.initialized())
    except Exception:  # another Hydra version without this API: no hint rather than a crash while reporting
        return False


def exit_on_user_error(fn: Callable[..., T]) -> Callable[..., T]:
    """Turn user errors raised by ``fn`` into ``error: <message>`` on stderr and exit status 2.

    Inside a Hydra job (train, evaluate) Hydra's hint :data:`HYDRA_HINT` follows on a second line; other commands
    print the one line. ``HYDRA_FULL_ERROR=1`` re-raises in both cases (:func:`full_error_requested`).
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            cause = user_error_cause(exc)
            if cause is None or full_error_requested():
                raise
            print(f"error: {cause}", file=sys.stderr)
            if in_hydra_job():
                print(HYDRA_HINT, file=sys.stderr)
            sys.exit(2)

    return wrapper
