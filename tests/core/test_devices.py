"""core.devices: device names resolved (or refused in one line), the autocast context of each precision, the memory
estimate and the guard that refuses an image too large for the free memory with a working size that fits, and
out-of-memory errors recognised."""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn

import dmfn_lightning.core.devices as devices
from dmfn_lightning.core.devices import (
    PRECISIONS,
    autocast,
    check_memory,
    estimate_inference_bytes,
    is_out_of_memory,
    prepare_generator,
    resolve_device,
)
from dmfn_lightning.core.errors import InpaintError, InpaintMemoryError


class _Generator(nn.Module):
    """Stands in for a generator with the paper's 64 base channels (only ``config`` is read)."""

    config = {"base_channels": 64}  # noqa: RUF012

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 3, 1)


def test_device_names_resolve_or_are_refused_naming_the_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("CPU") == torch.device("cpu")
    given = torch.device("cuda", 1)
    assert resolve_device(given) is given  # a torch.device is taken as it is
    with pytest.raises(InpaintError, match=r"device 'cuda' requested but CUDA is not available here"):
        resolve_device("cuda")
    with pytest.raises(InpaintError, match=r"unknown device 'gpu7'; use cpu, cuda, cuda:N"):
        resolve_device("gpu7")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


def test_each_precision_has_its_autocast_context():
    assert list(PRECISIONS) == ["fp32", "bf16", "fp16"]
    cpu = torch.device("cpu")
    assert isinstance(autocast(cpu, "fp32"), contextlib.nullcontext)
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with autocast(cpu, "bf16"):
        assert (a @ b).dtype == torch.bfloat16
    with autocast(cpu, "fp32"):
        assert (a @ b).dtype == torch.float32
    with pytest.raises(InpaintError, match="precision must be one of fp32, bf16, fp16, got 'fp64'"):
        autocast(cpu, "fp64")


def test_prepare_generator_puts_it_in_eval_mode_on_the_device():
    generator = _Generator().train()
    assert prepare_generator(generator, torch.device("cpu")) is generator
    assert not generator.training and generator.conv.weight.device.type == "cpu"


def test_memory_estimate_is_20_bytes_per_channel_and_256_per_pixel():
    assert estimate_inference_bytes(256, 256) == 256 * 256 * (20 * 64 + 256) == 100_663_296
    assert estimate_inference_bytes(256, 256, batch=3, base_channels=16) == 3 * 256 * 256 * (20 * 16 + 256)


def test_memory_guard_refuses_with_a_working_size_that_fits(monkeypatch):
    monkeypatch.setattr(devices, "available_memory", lambda device: 64 * 2**20)  # 64 MiB free
    check_memory(_Generator(), 100, 100)  # 100 x 100 needs ~15 MiB: fits
    with pytest.raises(InpaintMemoryError) as info:
        check_memory(_Generator(), 600, 800)
    assert str(info.value) == (
        "Inpainting a 800x600 image at full resolution needs about 0.7 GiB of memory, but only 0.1 GiB is free on "
        "cpu. Process it at a lower resolution with --working-size 192 (working_size=192 in Python; the known "
        "pixels stay untouched at full resolution), or downscale the image."
    )
    with pytest.raises(
        InpaintMemoryError, match=r"--working-size 512 processes a 800x600 image at 512x384.*at most 192"
    ):
        check_memory(_Generator(), 600, 800, working_size=512)
    check_memory(_Generator(), 600, 800, working_size=192)  # the suggestion fits
    monkeypatch.setattr(devices, "available_memory", lambda device: 2**20)  # 1 MiB: no working size fits
    with pytest.raises(InpaintMemoryError, match=r"4 images of 800x600 .* Inpaint fewer images at a time"):
        check_memory(_Generator(), 600, 800, batch=4)
    with pytest.raises(InpaintMemoryError, match=r"Free some memory, or use a device with more\.$"):
        check_memory(_Generator(), 600, 800)
    monkeypatch.setattr(devices, "available_memory", lambda device: None)  # unknown (e.g. MPS): nothing refused
    check_memory(_Generator(), 60_000, 80_000)


def test_out_of_memory_errors_are_recognised():
    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory"))
    assert is_out_of_memory(RuntimeError("can't allocate memory: you tried to allocate 1099511627776 bytes"))
    assert not is_out_of_memory(RuntimeError("Expected all tensors to be on the same device"))
    assert not is_out_of_memory(ValueError("out of memory"))  # only allocation failures, not a message in a bug
    assert devices.available_memory("cpu") is None or devices.available_memory("cpu") > 0
    assert devices.available_memory("meta") is None
