"""``python -m benchmarks.hd_strategies`` writes into its output folder and leaves the README's figure alone unless
asked; it times one in-process call of the inpainting command's function and says so."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # the benchmarks package lives at the top of the checkout, not in the wheel
    sys.path.insert(0, str(REPO))

from benchmarks import hd_strategies  # noqa: E402
from dmfn_lightning.models import DMFNGenerator, export_generator  # noqa: E402

SMALL = ["--size", "120x80", "--photos", "chelsea", "--ratios", "0.1"]


@pytest.fixture
def generator_file(tmp_path) -> Path:
    torch.manual_seed(0)
    return export_generator(DMFNGenerator(num_blocks=1, base_channels=8), tmp_path / "generator.pt")


@pytest.fixture
def docs_figure(tmp_path, monkeypatch) -> Path:
    """A stand-in for docs/images/hd_strategies.png, so that a test never rewrites the committed figure."""
    figure = tmp_path / "docs" / "hd_strategies.png"
    monkeypatch.setattr(hd_strategies, "DOCS_FIGURE", figure)
    return figure


def test_default_output_is_a_folder_outside_docs():
    assert Path("outputs", "hd_strategies") == hd_strategies.DEFAULT_OUT
    assert Path(REPO, "docs", "images", "hd_strategies.png") == hd_strategies.DOCS_FIGURE


def test_writes_table_and_figure_into_out_only(tmp_path, generator_file, docs_figure, capsys):
    out = tmp_path / "out"
    assert hd_strategies.main(["--checkpoint", str(generator_file), *SMALL, "--out", str(out)]) == 0
    assert (out / "hd_strategies.png").stat().st_size > 0
    table = (out / "hd_strategies.md").read_text()
    assert "| 10% | crop |" in table
    # what is timed, in the table's own words: the function behind dmfn-inpaint, in this process
    assert "one call of `dmfn_lightning.inpaint.main`" in table and "without Python's start-up" in table
    assert "whole `dmfn-inpaint` command" not in table
    assert not docs_figure.exists()


def test_update_docs_also_replaces_the_readme_figure(tmp_path, generator_file, docs_figure):
    out = tmp_path / "out"
    args = ["--checkpoint", str(generator_file), *SMALL, "--out", str(out), "--update-docs"]
    assert hd_strategies.main(args) == 0
    assert docs_figure.stat().st_size > 0 and (out / "hd_strategies.png").exists()


def test_a_png_out_is_refused_with_the_new_spelling(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        hd_strategies.main(["--checkpoint", "g.pt", "--out", str(tmp_path / "figure.png")])
    assert info.value.code == 2
    assert "--update-docs" in capsys.readouterr().err
