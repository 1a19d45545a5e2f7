"""Tabulate a sweep's runs (Table 2 or Table 3 of the paper) as Markdown, with the paper's numbers beside ours.

    python experiments/collect.py outputs/table2_multirun/<timestamp> --table 2 [--output table2.md]

Each job directory holds the ``results.json`` that ``dmfn_lightning.train`` writes at the end of a run. The
metrics are the validation metrics of the run's last validation (PSNR/SSIM on [0, 255], LPIPS when its weights
were available); for the Table 1 protocol run ``python -m dmfn_lightning.evaluate`` on each checkpoint.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# DESIGN.md section 8 gives the paper's numbers for the full model only (LPIPS, PSNR, SSIM); other rows of the
# paper's Tables 2 and 3 are not in the material this project was built from, so they print as "-".
PAPER = {
    "3": {"paper": (0.0530, 25.83, 0.8892)},
    "2": {"dmfb": (0.0530, 25.83, 0.8892)},
}
ROW_KEY = {"2": "block", "3": "loss_name"}


def _loss_name(result: dict) -> str:
    for override in result.get("overrides", []):
        if override.startswith("loss="):
            return override.split("=", 1)[1]
    return "paper"


def load_runs(sweep_dir: Path) -> list[dict]:
    runs = []
    for path in sorted(sweep_dir.glob("*/results.json")):
        result = json.loads(path.read_text())
        result["loss_name"] = _loss_name(result)
        result["job"] = path.parent.name
        runs.append(result)
    if not runs:
        raise SystemExit(f"no */results.json under {sweep_dir}: is it a finished `-m` sweep directory?")
    return runs


def _fmt(value, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown_table(runs: list[dict], table: str) -> str:
    key = ROW_KEY[table]
    columns = [key, "iterations", "LPIPS (ours)", "PSNR (ours)", "SSIM (ours)"]
    columns += ["LPIPS (paper)", "PSNR (paper)", "SSIM (paper)"]
    header = "| " + " | ".join(columns) + " |"
    lines = [header, "|" + "---|" * 8]
    for run in runs:
        m = run.get("metrics", {})
        paper = PAPER[table].get(run[key], (None, None, None))
        lines.append(
            f"| {run[key]} | {run.get('iteration')} | {_fmt(m.get('val/lpips'), 4)} | {_fmt(m.get('val/psnr'), 2)} "
            f"| {_fmt(m.get('val/ssim'), 4)} | {_fmt(paper[0], 4)} | {_fmt(paper[1], 2)} | {_fmt(paper[2], 4)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--table", choices=sorted(ROW_KEY), required=True)
    parser.add_argument("--output", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    text = markdown_table(load_runs(args.sweep_dir), args.table)
    print(text)
    if args.output:
        args.output.write_text(text)
    return text


if __name__ == "__main__":
    main()
