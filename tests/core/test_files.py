"""core.files: atomic writes (the old file intact and no temporary file left on an error, the umask's mode on
success) and the checks of an output folder before any work (an existing file, a file as a parent, an unwritable
folder or parent)."""

from __future__ import annotations

import os

import pytest

from dmfn_lightning.core.errors import OutputPathError
from dmfn_lightning.core.files import (
    atomic_write,
    atomic_write_bytes,
    check_output_folder,
    current_umask,
    probe_writable,
)
from tests.readonly import unwritable_folder


def test_atomic_write_creates_the_folders_and_replaces_the_file(tmp_path):
    path = tmp_path / "a" / "b" / "out.bin"
    assert atomic_write_bytes(path, b"first") == path
    assert atomic_write(path, lambda f: f.write(b"second")) == path
    assert path.read_bytes() == b"second"
    assert [p.name for p in path.parent.iterdir()] == ["out.bin"]


def test_an_error_mid_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    path = tmp_path / "out.bin"
    atomic_write_bytes(path, b"old contents")

    def half_then_fail(f):
        f.write(b"half of the new")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write(path, half_then_fail)
    assert path.read_bytes() == b"old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
    with pytest.raises(KeyboardInterrupt):  # any exception, Ctrl+C included
        atomic_write(tmp_path / "new.bin", lambda f: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # nothing half-written under the new name either


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077, 0o002])
def test_the_mode_follows_the_umask_like_a_plain_open(tmp_path, umask):
    old = os.umask(umask)
    try:
        assert current_umask() == umask and current_umask() == umask  # reading it leaves it as it was
        atomic_write_bytes(tmp_path / "atomic.bin", b"x")
        (tmp_path / "plain.bin").write_bytes(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "atomic.bin").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "atomic.bin").stat().st_mode & 0o777 == (tmp_path / "plain.bin").stat().st_mode & 0o777


def test_check_output_folder_accepts_a_folder_to_be_created_and_creates_nothing(tmp_path):
    target = tmp_path / "new" / "deeper"
    assert check_output_folder(target) == target
    assert not (tmp_path / "new").exists()
    assert check_output_folder(tmp_path) == tmp_path
    assert list(tmp_path.iterdir()) == []  # the write probe is removed


def test_check_output_folder_refuses_a_file_or_a_file_as_parent(tmp_path):
    occupied = tmp_path / "results.txt"
    occupied.write_text("data")
    with pytest.raises(OutputPathError) as info:
        check_output_folder(occupied, "--out")
    assert str(info.value) == f"--out {str(occupied)!r} is an existing file; expected a folder"
    with pytest.raises(OutputPathError) as info:
        check_output_folder(occupied / "sub" / "dir")
    assert str(info.value) == (
        f"--output {str(occupied / 'sub' / 'dir')!r} cannot be created: {str(occupied)!r} is a file, not a folder"
    )
    assert occupied.read_text() == "data"


def test_check_output_folder_refuses_an_unwritable_folder_or_parent(tmp_path):
    locked = unwritable_folder(tmp_path)
    with pytest.raises(OutputPathError, match=rf"^--output {str(locked)!r} is not writable \("):
        check_output_folder(locked)
    with pytest.raises(OutputPathError) as info:
        check_output_folder(locked / "run" / "1")
    assert str(info.value).startswith(
        f"--output {str(locked / 'run' / '1')!r}: its parent {str(locked)!r} is not writable"
    )
    with pytest.raises(OSError):
        probe_writable(locked)
    probe_writable(tmp_path)  # a writable folder: no error, no file left
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".dmfn_write_test_")]
