"""User-facing failures: one clear paragraph on stderr and a non-zero exit, never a stack trace.

Entry points wrap their body in :func:`exit_on_user_error`. ``HYDRA_FULL_ERROR=1`` (Hydra's own switch, reused
by the non-Hydra entry points) re-raises so the full traceback is available when debugging.
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


def exit_on_user_error(fn: Callable[..., T]) -> Callable[..., T]:
    """Turn user errors raised by ``fn`` into ``error: <message>`` on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            cause = user_error_cause(exc)
            if cause is None or full_error_requested():
                raise
            print(f"error: {cause}", file=sys.stderr)
            print("(set HYDRA_FULL_ERROR=1 for the full traceback)", file=sys.stderr)
            sys.exit(2)

    return wrapper
