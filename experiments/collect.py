"""Tabulate runs of the paper's Tables 1, 2 or 3 as Markdown: every column the paper prints, beside ours.

    python experiments/collect.py outputs/table2_multirun/<timestamp> [--table 2] [--output table2.md] [--wandb]

Each run directory holds the ``results.json`` that ``dmfn_lightning.train`` writes at the end of a run (found
recursively, so a Table 1 directory may hold one run per dataset). The metrics are the validation metrics of the
run's last validation (PSNR/SSIM on [0, 255], LPIPS when its weights were available); for the Table 1 protocol run
``python -m dmfn_lightning.evaluate`` on each checkpoint. Without ``--table`` the table is inferred from the
sweep: runs that differ by ``model/block`` are Table 2, by ``loss`` Table 3, otherwise Table 1.

The paper prints its ablations with the variants as columns; here every such paper column is one row, in the
paper's order, with our run beside it ("-" where we have none). Runs of variants the paper does not have (e.g.
``model/block=released``) follow with "-" on the paper side. The metric columns (LPIPS, PSNR, SSIM: label, order
and decimals) are the paper's columns of the package's table of metrics (``dmfn_lightning.metrics.table``).

The paper's numbers are all measured with the Table 1 protocol (256x256 images, the exact centred 128x128 hole).
Each run's validation setting is read from the config Hydra recorded beside its ``results.json``
(``.hydra/config.yaml``: ``data.image_size`` and ``data.eval_mask``) and checked as ``evaluate`` checks its own
(``dmfn_lightning.evaluation.data.is_table1_setting``); when a run was validated otherwise (the toy sweeps' 64 px),
the table says so with ``evaluate``'s warning, and it says which runs it could not check.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import OmegaConf

from dmfn_lightning.evaluation.data import is_table1_setting
from dmfn_lightning.evaluation.reports import NOT_TABLE1_PROTOCOL
from dmfn_lightning.metrics.table import PAPER_METRICS
from dmfn_lightning.models.blocks import build_block


@dataclass(frozen=True)
class PaperColumn:
    """One column of a table of the paper: its label there, LPIPS / PSNR (dB) / SSIM, and (Table 2) parameters."""

    label: str
    lpips: float
    psnr: float
    ssim: float
    params: int | None = None


@dataclass(frozen=True)
class PaperTable:
    title: str
    dataset: str  # the dataset the paper's numbers are on
    key: str  # the run attribute matched against the column names: dataset, block or loss
    columns: dict[str, PaperColumn]  # our config name -> the paper's column, in the paper's order


# Hui et al., "Image Fine-grained Inpainting" (arXiv:2002.02609): every number of Tables 1-3 as printed
# (tests/experiments/test_collect.py pins them). Table 2's DMFB column equals Table 1's Paris row. Table 2 lists 803,392
# parameters per block for rate=2 and rate=8, although changing dilation rates does not change a block's parameter
# count; the structure behind that number is not described, so our rate2/rate8 are the DMFB with equal rates
# (471,808 parameters): an open question, not a reproduction.
PAPER: dict[str, PaperTable] = {
    "1": PaperTable(
        "Table 1: centre 128x128 hole on 256x256 images",
        "one row per dataset",
        "dataset",
        {
            "paris": PaperColumn("Paris StreetView", 0.1018, 25.00, 0.8563),
            "places2": PaperColumn("Places2", 0.1361, 21.53, 0.8079),
            "celeba_hq": PaperColumn("CelebA-HQ", 0.0460, 26.50, 0.8932),
            "ffhq": PaperColumn("FFHQ", 0.0457, 26.49, 0.8985),
        },
    ),
    "2": PaperTable(
        "Table 2: block structure",
        "Paris StreetView",
        "block",
        {
            "rate2": PaperColumn("rate=2", 0.1059, 24.93, 0.8530, 803_392),
            "rate8": PaperColumn("rate=8", 0.1067, 24.91, 0.8549, 803_392),
            "no_combination": PaperColumn("w/o combination", 0.1083, 24.24, 0.8505, 361_024),
            "no_ki": PaperColumn("w/o K_i", 0.1026, 24.93, 0.8561, 361_024),
            "dmfb": PaperColumn("DMFB", 0.1018, 25.00, 0.8563, 471_808),
        },
    ),
    "3": PaperTable(
        "Table 3: loss functions",
        "not named by the paper; CelebA-HQ inferred from the numbers (LPIPS ~0.053 vs ~0.10 on Paris)",
        "loss_name",
        {
            "no_self_guided": PaperColumn("w/o self-guided", 0.0537, 25.73, 0.8892),
            "no_align": PaperColumn("w/o align", 0.0534, 25.63, 0.8884),
            "no_dis_fm": PaperColumn("w/o dis_fm", 0.0542, 25.65, 0.8870),
            "paper": PaperColumn("with all", 0.0530, 25.83, 0.8892),
        },
    ),
}
DATASETS = tuple(PAPER["1"].columns)
# The dataset each sweep recipe trains on when the command line does not override `data=`; recipes that pick none
# keep conf/train.yaml's default data config, the demo photos.
RECIPE_DATASET = {"table2": "paris", "table3": "celeba_hq", None: "demo", "demo": "demo", "paper": "demo"}


def _override(result: dict, name: str) -> str | None:
    """The value of ``name=...`` (or ``+name=...``) among the run's command-line overrides, if any."""
    for override in result.get("overrides", []):
        key, _, value = override.lstrip("+~").partition("=")
        if key == name:
            return value
    return None


def run_dataset(result: dict) -> str | None:
    """The dataset a run trained on: ``data=...``, else the one its ``+experiment=...`` recipe uses."""
    data = _override(result, "data")
    if data:
        return data
    experiment = _override(result, "experiment")
    name = (experiment or "").removeprefix("released_")
    if name in DATASETS:
        return name
    return RECIPE_DATASET.get(experiment)


def validation_setting(run_dir: Path) -> dict | None:
    """A run's validation setting, ``{"image_size", "eval_mask", "table1"}``, from the config Hydra recorded in
    ``<run dir>/.hydra/config.yaml``; ``None`` when there is no such record or it cannot be read."""
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        return None
    try:
        data = OmegaConf.load(path).data
        size, mask = int(data.image_size), instantiate(data.eval_mask)
    except Exception:  # an unreadable or foreign record: the protocol is unknown, not an error of the table
        return None
    return {"image_size": size, "eval_mask": repr(mask), "table1": is_table1_setting(mask, size)}


def load_runs(sweep_dir: Path) -> list[dict]:
    runs = []
    for path in sorted(sweep_dir.rglob("results.json")):
        result = json.loads(path.read_text())
        result["loss_name"] = _override(result, "loss") or "paper"
        result["dataset"] = run_dataset(result)
        result.setdefault("block", _override(result, "model/block") or "dmfb")
        result["job"] = str(path.parent.relative_to(sweep_dir))
        result["validation"] = validation_setting(path.parent)
        runs.append(result)
    if not runs:
        raise SystemExit(f"no results.json under {sweep_dir}: is it a finished run or `-m` sweep directory?")
    return runs


def infer_table(runs: list[dict]) -> str:
    """Which of the paper's tables a set of runs belongs to (see the module docstring)."""
    experiments = {_override(run, "experiment") for run in runs}
    if "table2" in experiments or any(_override(run, "model/block") for run in runs):
        return "2"
    if "table3" in experiments or any(_override(run, "loss") for run in runs):
        return "3"
    return "1"


def block_params(name: str) -> int | None:
    """Parameters of one of our blocks (Table 2 compares parameters per block), None for an unknown name."""
    try:
        return sum(p.numel() for p in build_block(name).parameters())
    except ValueError:
        return None


def _fmt(value, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def table_rows(runs: list[dict], table: str) -> tuple[list[str], list[list[str]]]:
    """Column names and rows (as printed) of ``table`` for ``runs``: every paper column, with our run beside it."""
    spec = PAPER[table]
    key = spec.key
    columns = [key.removesuffix("_name"), "paper column", "iterations"]
    columns += [f"{metric.label} ({side})" for metric in PAPER_METRICS for side in ("ours", "paper")]
    if table == "2":
        columns += ["params/block (ours)", "params/block (paper)"]

    def row(name: str, paper: PaperColumn | None, run: dict | None) -> list[str]:
        m = (run or {}).get("metrics", {})
        cells = [name, paper.label if paper else "-", str(run.get("iteration")) if run else "-"]
        for metric in PAPER_METRICS:
            cells.append(_fmt(m.get(f"val/{metric.name}"), metric.digits))
            cells.append(_fmt(getattr(paper, metric.name) if paper else None, metric.digits))
        if table == "2":
            cells += [_count(block_params(name)), _count(paper.params if paper else None)]
        return cells

    rows: list[list[str]] = []
    for name, paper in spec.columns.items():
        matched = [run for run in runs if run.get(key) == name]
        rows += [row(name, paper, run) for run in matched] or [row(name, paper, None)]
    rows += [row(str(run.get(key)), None, run) for run in runs if run.get(key) not in spec.columns]
    return columns, rows


def protocol_notes(runs: list[dict]) -> list[str]:
    """The lines under a table's title about the runs' validation protocol: ``evaluate``'s warning when a run was
    not validated with the Table 1 protocol (the paper's numbers were), and the runs that could not be checked."""
    other = [run for run in runs if run.get("validation") is not None and not run["validation"]["table1"]]
    unknown = [run for run in runs if run.get("validation") is None]
    lines = []
    if other:
        validated = ", ".join(
            f"{run['job']} ({run['validation']['image_size']} px, {run['validation']['eval_mask']})" for run in other
        )
        lines += [NOT_TABLE1_PROTOCOL, ">", f"> Validated otherwise: {validated}.", ""]
    if unknown:
        jobs = ", ".join(run["job"] for run in unknown)
        lines += [f"Validation protocol not recorded (no .hydra/config.yaml beside results.json): {jobs}.", ""]
    return lines


def markdown_table(runs: list[dict], table: str) -> str:
    spec = PAPER[table]
    ours_on = sorted({str(run["dataset"]) for run in runs if run.get("dataset")}) or ["unknown"]
    columns, rows = table_rows(runs, table)
    lines = [f"## {spec.title}", "", *protocol_notes(runs), f"Paper: {spec.dataset}. Ours: {', '.join(ours_on)}.", ""]
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines) + "\n"


def sweep_group(sweep_dir: Path) -> str:
    """The W&B group the sweep's training jobs logged to (``train-<sweep dir name>``, see
    :mod:`dmfn_lightning.training.loggers`)."""
    return f"train-{sweep_dir.resolve().name}"


def log_to_wandb(runs: list[dict], table: str, sweep_dir: Path, project: str, group: str | None = None) -> str:
    """Log the table as a ``wandb.Table`` (key ``paper/table<N>``) in a ``collect`` run of the sweep's group.

    Online when logged in to W&B (or ``WANDB_MODE`` says so), offline otherwise; the run's files go to
    ``<sweep dir>/wandb``. Returns the run's local directory.
    """
    import os

    import wandb

    from dmfn_lightning.training.loggers import _wandb_logged_in

    mode = os.environ.get("WANDB_MODE") or ("online" if _wandb_logged_in() else "offline")
    columns, rows = table_rows(runs, table)
    run = wandb.init(
        project=project,
        group=group or sweep_group(sweep_dir),
        job_type="collect",
        name=f"table{table}",
        dir=str(sweep_dir),
        mode=mode,
        config={"table": table, "paper_dataset": PAPER[table].dataset, "runs": len(runs)},
        settings=wandb.Settings(init_timeout=30, silent=True),
    )
    run.log({f"paper/table{table}": wandb.Table(columns=columns, data=rows)})
    local_dir = str(run.dir)
    run.finish()
    return local_dir


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--table", choices=sorted(PAPER), help="default: inferred from the runs' overrides")
    parser.add_argument("--output", type=Path, help="also write the table to this file")
    parser.add_argument("--wandb", action="store_true", help="also log the table to the sweep's W&B group")
    parser.add_argument("--wandb-project", default="dmfn_lightning", help="W&B project (default: %(default)s)")
    parser.add_argument("--wandb-group", help="W&B group (default: train-<sweep dir name>, as the jobs logged)")
    args = parser.parse_args(argv)
    runs = load_runs(args.sweep_dir)
    table = args.table or infer_table(runs)
    text = markdown_table(runs, table)
    print(text)
    if args.output:
        args.output.write_text(text)
    if args.wandb:
        where = log_to_wandb(runs, table, args.sweep_dir, args.wandb_project, args.wandb_group)
        print(f"logged paper/table{table} to W&B group {args.wandb_group or sweep_group(args.sweep_dir)} ({where})")
    return text


if __name__ == "__main__":
    main()
