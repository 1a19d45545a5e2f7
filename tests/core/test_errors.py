"""core.errors: user errors become one ``error:`` line on stderr and exit status 2 (also through Hydra's
instantiate wrapper), anything else and HYDRA_FULL_ERROR=1 keep the traceback; the error classes' kinds."""

from __future__ import annotations

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException

from dmfn_lightning.core.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    DMFNError,
    InpaintError,
    InpaintMemoryError,
    NonFiniteOutputError,
    OutputPathError,
    WeightsUnavailableError,
    exit_on_user_error,
    user_error_cause,
)


@exit_on_user_error
def command(exc: BaseException | None = None, value: int = 0) -> int:
    """A command's body: returns ``value`` or raises ``exc``."""
    if exc is not None:
        raise exc
    return value


@pytest.fixture
def outside_hydra(monkeypatch):
    """No Hydra job running (a plain command such as inpaint or export)."""
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setattr(HydraConfig.instance(), "cfg", None)


def test_a_user_error_prints_one_error_line_and_exits_2(outside_hydra, capsys):
    assert command(value=7) == 7 and command.__name__ == "command"  # no error: the result, the function's name
    with pytest.raises(SystemExit) as info:
        command(DataError("/data/x.png: cannot decode image"))
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines() == ["error: /data/x.png: cannot decode image"]


def test_an_error_wrapped_by_hydra_instantiate_is_reported_by_its_cause(outside_hydra, capsys):
    cause = ConfigError("loss.vgg_weight=-1.0 must be >= 0")
    wrapped = InstantiationException("Error in call to target 'dmfn_lightning.losses.DMFNLoss'")
    wrapped.__cause__ = cause
    assert user_error_cause(wrapped) is cause
    with pytest.raises(SystemExit) as info:
        command(wrapped)
    assert info.value.code == 2 and capsys.readouterr().err.splitlines() == ["error: loss.vgg_weight=-1.0 must be >= 0"]


def test_bugs_and_hydra_full_error_keep_the_traceback(outside_hydra, monkeypatch, capsys):
    with pytest.raises(KeyError):
        command(KeyError("a bug, not a user error"))
    wrapped = RuntimeError("another wrapper")
    wrapped.__cause__ = DataError("bad")
    assert user_error_cause(wrapped) is None  # only Hydra's InstantiationException is looked through
    with pytest.raises(RuntimeError):
        command(wrapped)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(DataError, match="bad file"):
        command(DataError("bad file"))
    assert capsys.readouterr().err == ""


def test_error_kinds():
    for cls in (ConfigError, DataError, CheckpointError, InpaintError, OutputPathError):
        assert issubclass(cls, DMFNError) and issubclass(cls, ValueError), cls
    assert issubclass(WeightsUnavailableError, RuntimeError) and issubclass(WeightsUnavailableError, DMFNError)
    assert issubclass(InpaintMemoryError, InpaintError) and issubclass(NonFiniteOutputError, InpaintError)
