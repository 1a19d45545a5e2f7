"""Training: one manual-optimization iteration, every experiment config, resume, sweeps, loggers, DDP."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dmfn_lightning.train import compose_config, train
from tests.cli import run_module
from tests.fakes import fake_dataset_layouts
from tests.wandb_records import finished_wandb_records

TINY = ["+debug=fast"]
REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = ["demo", "paris", "places2", "celeba_hq", "ffhq", "table2", "table3"]


def _cli(args: list[str], cwd: Path, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_module("train", args, cwd, env, timeout)


@pytest.fixture(scope="module")
def fake_data(tmp_path_factory):
    return fake_dataset_layouts(tmp_path_factory.mktemp("data"), size=72)


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def _changed(before: dict, after: dict) -> bool:
    return any(not torch.equal(before[k], after[k]) for k in before)


def test_one_iteration_changes_g_then_d_and_nothing_else(tmp_path):
    cfg = compose_config(["+experiment=demo", *TINY, "trainer.max_steps=1", "trainer.limit_val_batches=0"], tmp_path)
    from dmfn_lightning import train as train_mod

    module = train_mod.build_module(cfg)
    datamodule = train_mod.instantiate(cfg.data)
    g0, d0, v0 = _snapshot(module.generator), _snapshot(module.discriminator), _snapshot(module.vgg)
    snapshots = []
    step = module._step_optimizer

    def recording_step(optimizer, loss):
        finite = step(optimizer, loss)
        snapshots.append((_snapshot(module.generator), _snapshot(module.discriminator)))
        return finite

    module._step_optimizer = recording_step
    trainer = train_mod.build_trainer(cfg, tmp_path, [], [])
    trainer.fit(module, datamodule=datamodule)
    assert trainer.global_step == 2  # one iteration = two optimizer steps in Lightning's count
    (g1, d1), (g2, d2) = snapshots
    assert _changed(g0, g1) and not _changed(d0, d1)  # G step: G moves, D frozen
    assert not _changed(g1, g2) and _changed(d1, d2)  # D step: D moves, G untouched
    assert not _changed(v0, _snapshot(module.vgg))  # VGG19 is never trained
    assert all(p.requires_grad for p in module.discriminator.parameters())  # untoggled afterwards


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_runs_tiny(experiment, fake_data, tmp_path, monkeypatch):
    monkeypatch.setenv("DMFN_DATA", str(fake_data))
    overrides = [
        f"+experiment={experiment}",
        *TINY,
        "data.image_size=64",
        "trainer.max_steps=1",
        "trainer.val_check_interval=1",
    ]
    if experiment != "demo":
        overrides += ["data.eval_batch_size=2", "trainer.limit_val_batches=1"]
    cfg = compose_config(overrides, tmp_path)
    result = train(cfg)
    assert result["iteration"] == 1
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert {"val/psnr", "val/ssim", "val/reconstruction"} <= set(result["metrics"])


def test_paper_experiment_settings():
    cfg = compose_config(["+experiment=paris"])
    assert cfg.data.image_size == 256 and cfg.data.batch_size == 16
    assert cfg.trainer.max_steps == 100_000
    assert cfg.optim.generator.lr == cfg.optim.discriminator.lr == 2e-4
    assert list(cfg.optim.generator.betas) == [0.5, 0.999]
    assert cfg.mask._target_.endswith("RandomBoxMask") and cfg.mask.delta == 32
    assert cfg.logger._target_.endswith("build_wandb_logger")
    weights = {k: cfg.loss[k] for k in ("reconstruction_weight", "vgg_weight", "dis_fm_weight", "adversarial_weight")}
    assert weights == {
        "reconstruction_weight": 1.0,
        "vgg_weight": 25.0,
        "dis_fm_weight": 5.0,
        "adversarial_weight": 0.003,
    }
    assert cfg.loss.alignment_weight == 1.0


def test_resume_from_last_continues_at_saved_step_with_identical_optimizer_state(tmp_path):
    base = ["+experiment=demo", *TINY, "checkpoint.every_n_steps=2", "trainer.limit_val_batches=0"]
    train(compose_config([*base, "trainer.max_steps=2"], tmp_path))
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 4 and ckpt["dmfn"]["iteration"] == 2
    assert len(ckpt["optimizer_states"]) == 2 and len(ckpt["lr_schedulers"]) == 2

    from dmfn_lightning import train as train_mod

    cfg = compose_config([*base, "trainer.max_steps=3"], tmp_path)
    module = train_mod.build_module(cfg)
    restored = {}

    class Probe(train_mod.pl.Callback):
        def on_train_start(self, trainer, pl_module):
            restored["step"] = trainer.global_step
            restored["opt"] = [copy.deepcopy(o.state_dict()) for o in trainer.optimizers]
            restored["g"] = {k: v.clone() for k, v in pl_module.generator.state_dict().items()}

    trainer = train_mod.build_trainer(cfg, tmp_path, [Probe()], [])
    trainer.fit(
        module, datamodule=train_mod.instantiate(cfg.data), ckpt_path=str(tmp_path / "checkpoints" / "last.ckpt")
    )
    assert restored["step"] == 4
    for saved, got in zip(ckpt["optimizer_states"], restored["opt"]):
        for pid, state in saved["state"].items():
            for key, value in state.items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(got["state"][pid][key])), key
    for k, v in restored["g"].items():
        assert torch.equal(v, ckpt["state_dict"][f"generator.{k}"]), k
    assert trainer.global_step == 6


def test_auto_resume_with_ckpt_path_last(tmp_path):
    base = ["+experiment=demo", *TINY, "checkpoint.every_n_steps=1", "trainer.limit_val_batches=0"]
    first = train(compose_config([*base, "trainer.max_steps=1"], tmp_path))
    second = train(compose_config([*base, "trainer.max_steps=2"], tmp_path))  # same run dir, ckpt_path=last
    assert first["iteration"] == 1 and second["iteration"] == 2
    fresh = train(compose_config([*base, "trainer.max_steps=1", "ckpt_path=null"], tmp_path / "other"))
    assert fresh["iteration"] == 1


def test_export_generator_and_ema(tmp_path):
    from dmfn_lightning.models import load_generator
    from dmfn_lightning.models.generator_files import recorded_image_size

    cfg = compose_config(["+experiment=demo", *TINY, "export_generator=true", "model.ema_decay=0.5"], tmp_path)
    result = train(cfg)
    generator = load_generator(result["generator"])
    assert generator.config["num_blocks"] == 1 and generator.config["base_channels"] == 16
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    ema = {k.removeprefix("generator_ema.shadow."): v for k, v in ckpt["state_dict"].items() if "ema" in k}
    live = {k.removeprefix("generator."): v for k, v in ckpt["state_dict"].items() if k.startswith("generator.")}
    assert ema.keys() == live.keys()
    assert any(not torch.equal(ema[k], live[k]) for k in ema)  # EMA lags the live weights
    exported = generator.state_dict()
    assert all(torch.equal(exported[k], ema[k]) for k in exported)  # export uses the EMA weights
    # the file says what it was trained on, so the resize/crop strategies and evaluate use the right size
    assert recorded_image_size(generator) == 64 and generator.metadata["mask"] == "RandomBoxMask"
    assert not any(k.startswith("vgg.") for k in ckpt["state_dict"])  # frozen VGG kept out of checkpoints


def test_lightning_load_from_checkpoint_validate_and_test_on_a_tiny_run(tmp_path):
    import pytorch_lightning as pl
    from hydra.utils import instantiate

    from dmfn_lightning.module import DMFNModule

    cfg = compose_config(["+experiment=demo", *TINY, "model.ema_decay=0.5"], tmp_path)
    train(cfg)
    last = tmp_path / "checkpoints" / "last.ckpt"
    saved = torch.load(last, map_location="cpu", weights_only=True)

    # The standard Lightning call: the networks are rebuilt from the config in the checkpoint's hyperparameters.
    module = DMFNModule.load_from_checkpoint(last)
    assert saved["hyper_parameters"]["config"]["model"]["generator"]["base_channels"] == 16
    assert module.generator.config["base_channels"] == 16 and module.generator_ema is not None
    state = module.state_dict()
    assert state.keys() == saved["state_dict"].keys()
    assert all(torch.equal(state[k], v) for k, v in saved["state_dict"].items())

    def datamodule():
        return instantiate(cfg.data)

    quiet = {"logger": False, "enable_progress_bar": False, "enable_model_summary": False, "accelerator": "cpu"}
    # Trainer.validate with ckpt_path restores the weights into a freshly built module...
    fresh = DMFNModule.from_config(cfg)
    via_ckpt = pl.Trainer(**quiet).validate(fresh, datamodule=datamodule(), ckpt_path=str(last))[0]
    # ...and gives the same numbers as validating the module loaded above.
    direct = pl.Trainer(**quiet).validate(module, datamodule=datamodule())[0]
    assert {"val/psnr", "val/ssim", "val/l1", "val/reconstruction"} <= via_ckpt.keys()
    assert via_ckpt == pytest.approx(direct, rel=1e-6)
    # Trainer.test reports the Table 1 metrics on the test split.
    tested = pl.Trainer(**quiet).test(module, datamodule=datamodule())[0]
    assert {"test/psnr", "test/ssim", "test/l1", "test/l1_hole"} <= tested.keys()
    assert 5 < tested["test/psnr"] < 60 and 0 < tested["test/ssim"] <= 1


def test_init_from_starts_the_run_from_given_generator_and_discriminator_weights(tmp_path):
    from dmfn_lightning import train as train_mod
    from dmfn_lightning.models.generator_files import export_generator

    base = ["+experiment=demo", *TINY, "model.ema_decay=0.9"]
    donor = train_mod.build_module(compose_config([*base, "seed=1"], tmp_path / "donor"))
    torch.manual_seed(123)
    for p in [*donor.generator.parameters(), *donor.discriminator.parameters()]:
        p.data.normal_()
    g_file = export_generator(donor.generator, tmp_path / "g.pt")
    d_file = tmp_path / "d.pth"
    torch.save(donor.discriminator.state_dict(), d_file)

    cfg = compose_config([*base, f"init_from.generator={g_file}", f"init_from.discriminator={d_file}"], tmp_path)
    module = train_mod.build_module(cfg)
    for mine, theirs in [
        (module.generator, donor.generator),
        (module.generator_ema.shadow, donor.generator),  # EMA starts from the loaded weights too
        (module.discriminator, donor.discriminator),
    ]:
        assert not _changed(_snapshot(theirs), _snapshot(mine))
    fresh = train_mod.build_module(compose_config(base, tmp_path / "fresh"))
    assert _changed(_snapshot(fresh.generator), _snapshot(module.generator))


@pytest.mark.slow
def test_table2_and_table3_multiruns_make_one_run_dir_per_job(tmp_path):
    common = ["+experiment=demo", "+debug=fast", "trainer.max_steps=1", "trainer.limit_val_batches=1"]
    for name, sweep in (("table2", "model/block=dmfb,rate2"), ("table3", "loss=paper,no_align")):
        out = tmp_path / name
        proc = _cli(["-m", *common, sweep, f"hydra.sweep.dir={out}"], cwd=tmp_path, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs = sorted(p for p in out.iterdir() if p.is_dir() and (p / "checkpoints" / "last.ckpt").is_file())
        assert len(runs) == 2, [p.name for p in out.iterdir()]
        assert any(sweep.split("=")[1].split(",")[1] in p.name for p in runs)
        table = subprocess.run(
            [sys.executable, str(REPO / "experiments" / "collect.py"), str(out), "--table", name[-1]],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        # Every paper column is printed; the ones this sweep ran have our numbers beside them.
        rows = [line for line in table.splitlines() if line.startswith("| ") and "(ours)" not in line]
        ran = sorted(row.split("|")[1].strip() for row in rows if row.split("|")[3].strip() != "-")
        assert ran == sorted(sweep.split("=")[1].split(",")), table


@pytest.mark.slow
def test_ddp_two_cpu_processes_end_with_identical_weights(tmp_path):
    proc = _cli(
        [
            "+experiment=demo",
            "+debug=fast",
            "strategy=ddp",
            "strategy.accelerator=cpu",
            "strategy.devices=2",
            "trainer.max_steps=3",
            f"hydra.run.dir={tmp_path}",
        ],
        cwd=tmp_path,
        timeout=600,
        env={"OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads((tmp_path / "ddp_consistency.json").read_text())
    assert len(report["rank_digests"]) == 2 and report["in_sync"] is True
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 6


def test_wandb_offline_run_lives_in_the_run_dir_with_iteration_as_x_axis(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    run_dir = tmp_path / "run"
    cfg = compose_config(
        [
            "+experiment=demo",
            *TINY,
            "trainer.max_steps=3",
            "trainer.val_check_interval=3",
            "logger=wandb",
            "callbacks.image_panels={_target_:dmfn_lightning.training.callbacks.ImagePanels,every_n_steps:1,num_samples:2}",
        ],
        run_dir,
    )
    train(cfg)
    runs = list((run_dir / "wandb").glob("offline-run-*"))  # beside the run's checkpoints, not in ./outputs
    assert len(runs) == 1
    media = list(runs[0].rglob("media/images/**/*.png"))
    assert media, sorted(str(p.relative_to(runs[0])) for p in runs[0].rglob("*"))[:30]
    records = finished_wandb_records(next(runs[0].glob("*.wandb")))

    # Every chart is drawn against `iteration`: declared as the step metric of all keys...
    metrics = {r.metric.name or r.metric.glob_name: r.metric.step_metric for r in records if r.HasField("metric")}
    assert metrics.get("*") == "iteration", metrics
    # ...and present in every history row, with the paper's count (not Lightning's doubled global_step).
    rows = [{i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item} for r in records]
    rows = [row for r, row in zip(records, rows) if r.HasField("history")]
    assert rows and all("iteration" in row for row in rows), [sorted(r) for r in rows][:5]
    panels = [row for row in rows if any(k.startswith("val/panels") for k in row)]
    assert sorted(row["iteration"] for row in panels) == [1, 2, 3, 3]  # every iteration, and at the end
    assert max(row["iteration"] for row in rows) == 3
    assert any("val/psnr" in row for row in rows) and any(k.startswith("train/") for row in rows for k in row)
    # The run config is in the file too.
    config_keys = {i.key for r in records if r.HasField("config") for i in r.config.update}
    assert {"model", "data", "loss", "optim"} <= config_keys, config_keys


def test_paper_experiment_without_data_stops_at_once_naming_the_path(tmp_path):
    proc = _cli(
        ["+experiment=paris", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path,
        timeout=120,
        env={"DMFN_DATA": str(tmp_path / "nowhere")},
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert str(tmp_path / "nowhere" / "paris") in proc.stderr
    assert "DMFN_DATA" in proc.stderr or "data.root" in proc.stderr


def test_missing_vgg_weights_stop_with_the_expected_file(tmp_path, fake_data):
    proc = _cli(
        ["+experiment=paris", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path,
        timeout=120,
        env={"DMFN_DATA": str(fake_data), "TORCH_HOME": str(tmp_path / "th")},
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "vgg19-dcbb9e9d.pth" in proc.stderr and "model.vgg.weights=random" in proc.stderr


@pytest.mark.slow
def test_wandb_multirun_jobs_share_a_group_and_are_named_by_overrides(tmp_path):
    out = tmp_path / "sweep"
    proc = _cli(
        [
            "-m",
            "+experiment=demo",
            "+debug=fast",
            "trainer.max_steps=1",
            "trainer.limit_val_batches=0",
            "logger=wandb",
            f"logger.save_dir={tmp_path / 'wb'}",
            "loss=paper,no_align",
            f"hydra.sweep.dir={out}",
        ],
        cwd=tmp_path,
        timeout=600,
        env={"WANDB_MODE": "offline"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted((tmp_path / "wb" / "wandb").glob("offline-run-*"))
    assert len(runs) == 2  # wandb.finish() between jobs: one run each, not one shared run
    blobs = [next(run.glob("*.wandb")).read_bytes() for run in runs]
    group = f"train-{out.name}".encode()
    assert all(group in blob for blob in blobs)
    assert any(b"loss=no_align" in blob for blob in blobs) and any(b"loss=paper" in blob for blob in blobs)


def test_slurm_launcher_config_composes_with_ddp():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    cfg = compose_config(["hydra/launcher=slurm", "+experiment=table2", "strategy=ddp", "strategy.devices=4"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.tasks_per_node == launcher.gpus_per_node == 4  # one task per GPU
    assert launcher.signal_delay_s > 0  # SIGTERM/SIGUSR before the limit: checkpoint, then requeue
    assert cfg.hydra.sweeper.params["model/block"] == "dmfb,rate2,rate8,no_combination,no_ki"


def test_random_vgg_swaps_in_the_loss_if_random_vgg_profile_records_it_and_says_so(tmp_path, caplog):
    import logging

    from dmfn_lightning.module import DMFNModule
    from dmfn_lightning.train import build_module

    # The demo sets loss_if_random_vgg=no_vgg and +debug=fast makes VGG19 random; a loss.* override still applies.
    overrides = ["+experiment=demo", *TINY, "trainer.max_steps=1", "loss.dis_fm_weight=2.5"]
    cfg = compose_config(overrides, tmp_path / "demo")
    with caplog.at_level(logging.WARNING, logger="dmfn_lightning.train"):
        train(cfg)
    assert "trains with loss=no_vgg (loss_if_random_vgg)" in caplog.text
    expected = {"vgg_weight": 0.0, "self_guided": False, "alignment_weight": 0.0, "dis_fm_weight": 2.5}
    summary = json.loads((tmp_path / "demo" / "results.json").read_text())
    assert expected.items() <= summary["loss"].items()
    # The checkpoint's run config carries the swapped loss, so the rebuilt module trains what was trained.
    loss = DMFNModule.load_from_checkpoint(tmp_path / "demo" / "checkpoints" / "last.ckpt").loss
    assert (loss.vgg_weight, loss.self_guided, loss.alignment_weight, loss.dis_fm_weight) == (0.0, False, 0.0, 2.5)
    assert loss.reconstruction_weight == 1.0 and loss.adversarial_weight == 0.003

    # Random VGG19 without the key (its default is null) keeps the configured paper loss.
    cfg = compose_config([*TINY, "model.vgg.weights=random"], tmp_path / "plain")
    assert cfg.loss_if_random_vgg is None
    loss = build_module(cfg).loss
    assert (loss.vgg_weight, loss.self_guided, loss.alignment_weight) == (25.0, True, 1.0)
    assert cfg.loss.vgg_weight == 25.0

    # A misspelt profile stops before the model is built, naming the key and the choices.
    with pytest.raises(ValueError, match=r"loss_if_random_vgg='no_vgs'.*no_vgg"):
        build_module(compose_config([*TINY, "loss_if_random_vgg=no_vgs"], tmp_path / "typo"))
