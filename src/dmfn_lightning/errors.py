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


def _user_error_types() -> tuple[type[BaseException], ...]:
    # Imported lazily: each lives beside the code that raises it.
    from dmfn_lightning.models.io import CheckpointError
    from dmfn_lightning.weights import WeightsUnavailableError

    types: list[type[BaseException]] = [
        DMFNError,
        CheckpointError,
        WeightsUnavailableError,
        FileNotFoundError,
    ]
    try:
        from dmfn_lightning.data.datasets import DataError

        types.append(DataError)
    except ImportError:  # pragma: no cover - data layer always present in a full install
        pass
    return tuple(types)


def user_error_cause(exc: BaseException) -> BaseException | None:
    """The user error behind ``exc``: itself, or the cause Hydra's ``instantiate`` wrapped it in."""
    types = _user_error_types()
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, types):
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
