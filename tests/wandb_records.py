"""Read an offline W&B run file back with W&B's own protobuf definitions (no network, no wandb API)."""

from __future__ import annotations

import struct
import time
from pathlib import Path


def wandb_records(path: Path) -> list:
    """Every record of an offline W&B run file, parsed with W&B's own protobuf definitions.

    The file is a LevelDB-style log: a 7-byte file header, then 32 KiB blocks of chunks, each with a 7-byte header
    (CRC32, length, type: 1 full, 2 first, 3 middle, 4 last) and a tail of fewer than 7 bytes left as padding.
    """
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    ident, magic, _version = struct.unpack("<4sHB", data[:7])
    assert ident == b":W&B" and magic == 0xBEE1, (ident, magic)
    records, pending, pos, block = [], b"", 7, 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block tail too short for a header
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:
            break
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def finished_wandb_records(path: Path, timeout: float = 60) -> list:
    """The records once the file is complete: W&B's service writes the last ones shortly after ``finish()``."""
    deadline = time.monotonic() + timeout
    records = wandb_records(path)
    while not any(r.HasField("exit") for r in records):
        assert time.monotonic() < deadline, [r.WhichOneof("record_type") for r in records]
        time.sleep(0.2)
        records = wandb_records(path)
    return records
