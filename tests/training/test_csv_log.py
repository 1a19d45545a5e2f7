"""The CSV log (``logger=csv``: ``<run dir>/csv/metrics.csv``) of a resumed run continues the file of the run it
resumes; a fresh start in the same folder moves the previous file aside; rows written after the checkpoint a run
resumes from are replaced by the resumed run's rows for those steps."""

from __future__ import annotations

import csv
from pathlib import Path

from dmfn_lightning.training.loggers import ContinuingCSVLogger


def _iterations(rows: list[dict[str, str]]) -> list[int]:
    return [int(float(row["iteration"])) for row in rows if row.get("iteration")]


def _validations(rows: list[dict[str, str]]) -> list[int]:
    return [int(row["step"]) for row in rows if row.get("val/psnr")]


def test_a_resumed_run_continues_the_csv_log(tiny_runs):
    """Before: Lightning deleted metrics.csv at each resume ("Previous log files ... will be deleted")."""
    first, second, resumed = tiny_runs["first"], tiny_runs["second"], tiny_runs["resumed"]
    assert _iterations(first.rows) == [1, 2] and _validations(first.rows) == [1]
    assert _iterations(second.rows) == [1, 2, 3]
    assert _iterations(resumed.rows) == [1, 2, 3, 4, 5, 6]  # every iteration once
    assert _validations(resumed.rows) == [1, 3, 5]  # validations after iterations 2, 4 and 6, once each
    assert resumed.rows[: len(first.rows)] == first.rows  # the earlier rows, unchanged
    assert resumed.rows == tiny_runs["whole"].rows  # the log of the run that never stopped, value for value


def test_a_fresh_start_moves_the_previous_csv_log_aside(tiny_runs):
    fresh = tiny_runs["fresh"]
    assert _iterations(fresh.rows) == [1, 2]
    assert fresh.csv_files == ["hparams.yaml", "metrics.csv", "metrics.previous-1.csv"]
    with open(fresh.run_dir / "csv" / "metrics.previous-1.csv", newline="") as file:
        assert list(csv.DictReader(file)) == tiny_runs["resumed"].rows
    assert any("metrics.previous-1.csv" in line for line in fresh.logs)


def _write(path: Path, steps: range, extra: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=["loss", "step"])
        writer.writeheader()
        writer.writerows({"loss": f"{s / 10}", "step": s} for s in steps)


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_rows_after_the_resumed_checkpoint_are_replaced_not_repeated(tmp_path):
    """A run killed after logging steps 0..5 whose last checkpoint was at step 3: the resumed run logs 3, 4...
    again; the file must hold each step once, the earlier rows (0..2) kept."""
    metrics = tmp_path / "csv" / "metrics.csv"
    _write(metrics, range(6))
    logger = ContinuingCSVLogger(save_dir=tmp_path, name="csv", version="")
    logger.begin_fit(resuming=True)
    logger.log_metrics({"loss": 9.0, "lr": 0.1}, step=3)  # a new column too
    logger.log_metrics({"loss": 9.5}, step=4)
    logger.save()
    rows = _read(metrics)
    assert [row["step"] for row in rows] == ["0", "1", "2", "3", "4"]
    assert [row["loss"] for row in rows] == ["0.0", "0.1", "0.2", "9.0", "9.5"]
    assert [row["lr"] for row in rows] == ["", "", "", "0.1", ""]
    logger.log_metrics({"loss": 10.0}, step=5)  # later saves only append
    logger.save()
    assert [row["step"] for row in _read(metrics)] == ["0", "1", "2", "3", "4", "5"]


def test_a_logger_not_told_how_the_run_started_only_appends(tmp_path):
    """Used outside IterationTrainer (a plain Lightning Trainer), nothing already written is ever removed."""
    metrics = tmp_path / "csv" / "metrics.csv"
    _write(metrics, range(3))
    logger = ContinuingCSVLogger(save_dir=tmp_path, name="csv", version="")
    logger.log_hyperparams({"a": 1})
    logger.log_metrics({"loss": 1.0}, step=1)
    logger.save()
    assert [row["step"] for row in _read(metrics)] == ["0", "1", "2", "1"]


def test_the_csv_logger_config_names_the_continuing_logger(compose_conf):
    logger = compose_conf(None, "+logger=csv").logger
    assert logger._target_ == "dmfn_lightning.training.loggers.ContinuingCSVLogger"
