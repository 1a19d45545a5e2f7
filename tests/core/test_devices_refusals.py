"""Devices that are not there are refused in one line by dmfn_lightning.core.devices.resolve_device (issue case 14:
``--device mps`` / ``device=mps`` on a machine without MPS ended in a traceback when the generator was moved)."""

from __future__ import annotations

import pytest
import torch

from dmfn_lightning.core import devices
from dmfn_lightning.core.devices import resolve_device
from dmfn_lightning.core.errors import DMFNError, InpaintError


def test_mps_without_mps_is_one_clear_line(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    for name in ("mps", "MPS", "mps:0"):
        with pytest.raises(InpaintError, match=rf"device '{name}' requested but MPS \(Apple silicon\) is not avail"):
            resolve_device(name)


def test_mps_where_it_is_there_is_resolved(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("mps") == torch.device("mps")


def test_cuda_and_other_device_types(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InpaintError, match=r"device 'cuda' requested but CUDA is not available here; use cpu or auto"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(InpaintError, match=r"'cuda:2' requested but this machine has 2 CUDA device\(s\).*cuda:0 \.\. "):
        resolve_device("cuda:2")
    with pytest.raises(InpaintError, match="'meta' cannot run the generator; use cpu, cuda, cuda:N, mps or auto"):
        resolve_device("meta")
    with pytest.raises(InpaintError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    assert resolve_device("cpu") == torch.device("cpu") and resolve_device(" CPU ") == torch.device("cpu")
    assert issubclass(InpaintError, DMFNError) and devices.DEVICE_CHOICES.endswith("or auto")
