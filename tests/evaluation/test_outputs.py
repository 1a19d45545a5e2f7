"""evaluation.outputs: plain file names and relative paths that stay inside their folder, and StagedOutputs (an
evaluation's files swapped in together, a previous evaluation's replaced as a whole, an interrupted one changing
nothing, the user's own files refused)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dmfn_lightning.core.errors import OutputPathError
from dmfn_lightning.evaluation.outputs import (
    PARTIAL_PREFIX,
    StagedOutputs,
    check_plain_name,
    is_inside,
    plain_name_problem,
    relative_path_problem,
)

SUMMARY = {"n_images": 1, "metrics": {}, "protocol": {}}


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _write(staged: StagedOutputs, tag: str, images: bool = True) -> None:
    if images:
        (staged.staging / "images").mkdir()
        (staged.staging / "images" / f"{tag}.png").write_text(tag)
    (staged.staging / "per_image.csv").write_text(tag)
    (staged.staging / "table1.md").write_text(tag)
    (staged.staging / "summary.json").write_text(json.dumps({**SUMMARY, "tag": tag}))


def test_plain_names_and_relative_paths():
    assert plain_name_problem("00001_img1") is None and plain_name_problem(".hidden") is None
    for bad in ("", ".", "..", "a/b", "../x", "a\\b", "nul\x00", "x" * 251):
        assert plain_name_problem(bad) is not None, bad
    assert relative_path_problem("masks/center_256.png") is None
    for bad in ("", "/abs/m.png", "C:\\m.png", "C:m.png", "../m.png", "masks/../../m.png", "..\\m.png"):
        assert relative_path_problem(bad) is not None, bad
    with pytest.raises(OutputPathError, match=r"image name '\.\./x' contains a path separator"):
        check_plain_name("../x", Path("out"), "image name")


def test_is_inside(tmp_path):
    (tmp_path / "data" / "val").mkdir(parents=True)
    assert is_inside(tmp_path / "data" / "val", tmp_path / "data")
    assert is_inside(tmp_path / "data", tmp_path / "data")
    assert not is_inside(tmp_path / "data2", tmp_path / "data")
    assert not is_inside(tmp_path / "data" / ".." / "x", tmp_path / "data", resolve=False)
    (tmp_path / "link").symlink_to(tmp_path / "data" / "val")
    assert is_inside(tmp_path / "link" / "out", tmp_path / "data")  # where the files really go
    assert not is_inside(tmp_path / "link" / "out", tmp_path / "data", resolve=False)


def test_a_commit_replaces_the_previous_evaluation_as_a_whole(tmp_path):
    out = tmp_path / "out"
    staged = StagedOutputs(out)
    staged.check()  # does not exist yet
    with staged:
        _write(staged, "first")
        staged.commit()
    assert _files(out)["images/first.png"] == b"first"
    (out / "notes.txt").write_text("mine")  # other files are left alone
    staged.check()  # a previous evaluation's results: replaceable
    with staged:
        _write(staged, "second", images=False)
        staged.commit()
    files = _files(out)
    assert set(files) == {"per_image.csv", "table1.md", "summary.json", "notes.txt"}  # no image of the first
    assert json.loads(files["summary.json"])["tag"] == "second" and files["notes.txt"] == b"mine"
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []


def test_an_interrupted_evaluation_changes_nothing(tmp_path):
    out = tmp_path / "out"
    with StagedOutputs(out) as staged:
        _write(staged, "first")
        staged.commit()
    before = _files(out)
    with pytest.raises(KeyboardInterrupt), StagedOutputs(out) as staged:
        _write(staged, "second")
        raise KeyboardInterrupt
    assert _files(out) == before
    assert sorted(p.name for p in out.iterdir()) == ["images", "per_image.csv", "summary.json", "table1.md"]


@pytest.mark.parametrize(
    "mine", ["summary.json", "per_image.csv", "images/holiday.png", "table1.md", "summary.json:not-json"]
)
def test_files_that_are_not_an_evaluations_are_refused(tmp_path, mine):
    name, _, text = mine.partition(":")
    out = tmp_path / "out"
    (out / name).parent.mkdir(parents=True, exist_ok=True)
    (out / name).write_text(text or json.dumps({"my": "notes"}))
    with pytest.raises(OutputPathError) as info:
        StagedOutputs(out, option="--out").check()
    message = str(info.value)
    assert message.startswith(f"--out='{out}' already holds {name.split('/')[0]}") and "\n" not in message


def test_staging_folders_of_killed_runs_are_removed(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(done.stdout)  # a process that has ended
    host = socket.gethostname()
    stale = out / f"{PARTIAL_PREFIX}{host}.{dead}.abc123"
    running = out / f"{PARTIAL_PREFIX}{host}.{os.getpid()}.def456"  # this process: still running
    elsewhere = out / f"{PARTIAL_PREFIX}other-host.{dead}.ghi789"  # another machine's: not ours to judge
    for folder in (stale, running, elsewhere):
        (folder / "images").mkdir(parents=True)
    with StagedOutputs(out) as staged:
        _write(staged, "new")
        staged.commit()
    assert not stale.exists() and running.is_dir() and elsewhere.is_dir()
