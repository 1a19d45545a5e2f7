"""training.loggers: W&B online only when logged in (never a prompt), runs written in the run folder, multirun
jobs grouped, and every chart drawn against the paper's iteration."""

from __future__ import annotations

from pytorch_lightning.loggers import WandbLogger

from dmfn_lightning.training import loggers
from dmfn_lightning.training.loggers import IterationWandbLogger, build_wandb_logger


def test_logged_in_means_an_api_key_or_a_netrc_entry(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "missing-netrc"))
    assert loggers._wandb_logged_in() is False
    netrc = tmp_path / "netrc"
    netrc.write_text("machine github.com\n  login me\n")
    monkeypatch.setenv("NETRC", str(netrc))
    assert loggers._wandb_logged_in() is False
    netrc.write_text("machine api.wandb.ai\n  login user\n  password secret\n")
    assert loggers._wandb_logged_in() is True
    monkeypatch.setenv("NETRC", str(tmp_path / "missing-netrc"))
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    assert loggers._wandb_logged_in() is True


def test_not_logged_in_gives_an_offline_logger_in_the_save_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)  # restored afterwards: build_wandb_logger sets it
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setattr(loggers, "_wandb_logged_in", lambda: False)
    logger = build_wandb_logger(project="p", save_dir=str(tmp_path / "run"), tags=("a",))
    assert isinstance(logger, IterationWandbLogger)
    assert (tmp_path / "run").is_dir() and logger.save_dir == str(tmp_path / "run")
    assert loggers.os.environ["WANDB_MODE"] == "offline"
    assert loggers._hydra_job() == (None, None)  # not a multirun job: no group, no job name
    monkeypatch.setenv("WANDB_MODE", "disabled")  # an explicit mode is kept
    build_wandb_logger(save_dir=str(tmp_path / "other"))
    assert loggers.os.environ["WANDB_MODE"] == "disabled"


def test_every_row_carries_the_iteration_and_it_is_the_x_axis(monkeypatch, tmp_path):
    logged = []
    monkeypatch.setattr(WandbLogger, "log_metrics", lambda self, metrics, step=None: logged.append((metrics, step)))
    logger = IterationWandbLogger(project="p", save_dir=str(tmp_path), mode="disabled")
    logger.log_metrics({"train/total": 1.5}, step=12)
    logger.log_metrics({"val/panels": 0, "iteration": 7}, step=14)  # an iteration given is kept
    logger.log_metrics({"x": 1.0})
    assert logged == [
        ({"train/total": 1.5, "iteration": 12}, 12),
        ({"val/panels": 0, "iteration": 7}, 14),
        ({"x": 1.0}, None),
    ]

    class Run:
        def __init__(self) -> None:
            self.defined = []

        def define_metric(self, name, **kwargs):
            self.defined.append((name, kwargs))

    run = Run()
    monkeypatch.setattr(WandbLogger, "experiment", property(lambda self: run))
    assert logger.experiment is run and logger.experiment is run
    assert run.defined == [("iteration", {}), ("*", {"step_metric": "iteration", "step_sync": True})]  # once


def test_the_wandb_logger_config_names_this_builder(compose_conf):
    assert compose_conf(None, "+logger=wandb").logger._target_ == "dmfn_lightning.training.loggers.build_wandb_logger"
