"""Crash safety: kill/resume, SIGTERM, atomic checkpoint writes, the divergence guard, safe loading, determinism."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dmfn_lightning import train as train_mod
from dmfn_lightning.core.errors import CheckpointError, DivergenceError
from dmfn_lightning.train import compose_config, train
from tests.cli import run_module

TINY = ["+experiment=demo", "+debug=fast", "trainer.limit_val_batches=0"]


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "disabled", "DMFN_OFFLINE": "1", "HYDRA_FULL_ERROR": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "dmfn_lightning.train", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"training exited before {path} appeared:\n{proc.stdout.read()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{path} did not appear within {timeout} s")
        time.sleep(0.05)


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _state_probe(store: dict) -> train_mod.pl.Callback:
    """Records, at the start of a (resumed) fit, everything a checkpoint is supposed to restore."""
    import copy

    class Probe(train_mod.pl.Callback):
        def on_train_start(self, trainer, pl_module):
            store["global_step"] = trainer.global_step
            store["state_dict"] = {k: v.clone() for k, v in pl_module.state_dict().items()}
            store["optimizers"] = [copy.deepcopy(o.state_dict()) for o in trainer.optimizers]
            store["schedulers"] = [copy.deepcopy(c.scheduler.state_dict()) for c in trainer.lr_scheduler_configs]

    return Probe()


def _assert_restored(ckpt: dict, store: dict) -> None:
    assert store["global_step"] == ckpt["global_step"]
    assert store["state_dict"].keys() == ckpt["state_dict"].keys()
    for key, value in ckpt["state_dict"].items():  # G, D and the EMA generator
        assert torch.equal(store["state_dict"][key], value), key
    assert any(k.startswith("generator_ema.") for k in ckpt["state_dict"])
    for saved, got in zip(ckpt["optimizer_states"], store["optimizers"], strict=True):
        for pid, state in saved["state"].items():
            for name, value in state.items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(got["state"][pid][name])), (pid, name)
    for saved, got in zip(ckpt["lr_schedulers"], store["schedulers"], strict=True):
        assert saved["last_epoch"] == got["last_epoch"] and saved["_last_lr"] == got["_last_lr"]


def _checkpoint_files(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").iterdir())


def _assert_one_last_and_best(run: Path, save_top_k: int = 1) -> None:
    names = _checkpoint_files(run)
    assert "last.ckpt" in names and not [n for n in names if n.startswith("last-")], names
    best = [n for n in names if n.startswith("best-")]
    assert len(best) <= save_top_k and len(names) == 1 + len(best), names


@pytest.mark.slow
def test_sigkill_then_restart_resumes_from_the_saved_step(tmp_path):
    """Fresh run, then a resumed run killed mid-way, then a second resume: last.ckpt is always the newest state."""
    run = tmp_path / "run"
    # With validation on, a best-by-PSNR file is kept too: it must never multiply either.
    base = ["+experiment=demo", "+debug=fast", "trainer.val_check_interval=4", "model.ema_decay=0.9"]
    first = run_module("train", [*base, "trainer.max_steps=2", f"hydra.run.dir={run}"], tmp_path, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    _assert_one_last_and_best(run)
    last = run / "checkpoints" / "last.ckpt"
    assert _load(last)["global_step"] == 4

    every = 4
    args = [*base, "trainer.max_steps=40", f"checkpoint.every_n_steps={every}", f"hydra.run.dir={run}"]
    proc = _start(args, tmp_path)
    # Periodic saves of the resumed run must land in last.ckpt itself (not last-v1.ckpt, ...).
    deadline = time.monotonic() + 240
    while _load(last)["global_step"] < 16:  # safe to read while training: writes are atomic renames
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.monotonic() < deadline, f"last.ckpt stayed behind: {_checkpoint_files(run)}"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    ckpt = _load(last)
    saved_step = ckpt["global_step"]
    assert 16 <= saved_step < 80 and saved_step % (2 * every) == 0  # a periodic save, mid-run
    _assert_one_last_and_best(run)

    # The state a restart gets is exactly what was saved (probe on a copy, so the real run dir stays as killed).
    probe_dir = tmp_path / "probe"
    shutil.copytree(run, probe_dir)
    store: dict = {}
    cfg = compose_config([*args[:-1], f"trainer.max_steps={saved_step // 2 + 1}"], probe_dir)
    module = train_mod.build_module(cfg)
    trainer = train_mod.build_trainer(cfg, probe_dir, [_state_probe(store)], [])
    trainer.fit(
        module, datamodule=train_mod.setup_datamodule(cfg), ckpt_path=str(probe_dir / "checkpoints" / "last.ckpt")
    )
    _assert_restored(ckpt, store)

    # The same command again continues (not from zero) and finishes at max_steps.
    restart = run_module("train", args, tmp_path, timeout=300)
    assert restart.returncode == 0, restart.stderr[-3000:]
    log = restart.stderr + restart.stdout
    assert f"Resuming from {last}" in log and "Restored all states from the checkpoint" in log
    final = _load(last)
    assert final["global_step"] == 80 and final["dmfn"]["iteration"] == 40
    _assert_one_last_and_best(run)


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_the_requeued_run_continues(tmp_path):
    run = tmp_path / "run"
    args = [
        *TINY,
        "trainer.max_steps=40",
        "checkpoint.every_n_steps=1000",  # no periodic save: whatever exists after SIGTERM was written by it
        "callbacks.image_panels={_target_:dmfn_lightning.training.callbacks.ImagePanels,every_n_steps:1,num_samples:1}",
        f"hydra.run.dir={run}",
    ]
    proc = _start(args, tmp_path)
    _wait_for(run / "images" / "iter_000003.png", proc)
    assert not (run / "checkpoints" / "last.ckpt").exists()
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 143, output[-2000:]  # 128 + SIGTERM: interrupted, not finished
    ckpt = _load(run / "checkpoints" / "last.ckpt")
    assert 6 <= ckpt["global_step"] < 80, output[-2000:]
    assert "SIGTERMException: saved" in output

    assert _checkpoint_files(run) == ["last.ckpt"]

    requeued = run_module("train", args, tmp_path, timeout=300)
    assert requeued.returncode == 0, requeued.stderr[-3000:]
    assert "Resuming from" in requeued.stderr + requeued.stdout
    assert _checkpoint_files(run) == ["last.ckpt"] and _load(run / "checkpoints" / "last.ckpt")["global_step"] == 80
    assert _load(run / "checkpoints" / "last.ckpt")["global_step"] == 80


def test_checkpoint_write_killed_midway_leaves_previous_last_loadable(tmp_path):
    path = tmp_path / "last.ckpt"
    script = f"""
import os, torch
from dmfn_lightning.training.callbacks import AtomicCheckpointIO
io = AtomicCheckpointIO()
io.save_checkpoint({{"global_step": 2, "w": torch.arange(1000.)}}, {str(path)!r})
real_save = torch.save
def dying_save(obj, f, *args, **kwargs):
    f.write(b"PK\\x03\\x04 half a checkpoint")  # the bytes a crash would leave behind
    f.flush()
    os._exit(9)  # killed mid-write: no cleanup, no exception handling
torch.save = dying_save
io.save_checkpoint({{"global_step": 4, "w": torch.zeros(1000)}}, {str(path)!r})
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    ckpt = _load(path)
    assert ckpt["global_step"] == 2 and torch.equal(ckpt["w"], torch.arange(1000.0))
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "last.ckpt"]
    assert leftovers and all(name.startswith(".last.ckpt.") for name in leftovers)  # only the dead temp file


def test_divergence_guard_skips_nonfinite_steps_and_stops_with_last_good_state(tmp_path):
    cfg = compose_config([*TINY, "trainer.max_steps=20", "model.max_nonfinite_steps=3"], tmp_path)
    module = train_mod.build_module(cfg)
    real_loss = module.loss.generator_loss
    calls = {"n": 0}
    g_before: list[dict] = []  # G at the start of each iteration's G step

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        g_before.append({k: v.detach().clone() for k, v in module.generator.state_dict().items()})
        total, terms = real_loss(*args, **kwargs)
        if calls["n"] <= 2:
            return total, terms
        return total * float("nan"), terms  # from the third iteration on, the G loss is NaN

    module.loss.generator_loss = poisoned
    logged: list[float] = []

    class Streak(train_mod.pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            logged.append(float(trainer.callback_metrics.get("train/nonfinite_streak", 0.0)))

    callbacks = [*train_mod.build_callbacks(cfg), Streak()]
    trainer = train_mod.build_trainer(cfg, tmp_path, callbacks, [])
    with pytest.raises(DivergenceError, match=r"3 iterations in a row with a non-finite loss.*last\.ckpt"):
        trainer.fit(module, datamodule=train_mod.setup_datamodule(cfg))
    assert calls["n"] == 5  # 2 good iterations, then 3 NaN ones, then the stop
    assert logged[2:4] == [1.0, 2.0]  # each skipped step is logged
    ckpt = _load(tmp_path / "checkpoints" / "last.ckpt")

    # G was never stepped on a NaN: the checkpoint holds G exactly as after the last finite update (iteration 2).
    def same(a: dict, b: dict) -> bool:
        return all(torch.equal(a[k], b[k]) for k in a)

    assert not same(g_before[1], g_before[2])  # the finite iteration 2 did update G
    assert same(g_before[2], g_before[3]) and same(g_before[3], g_before[4])  # the NaN ones did not
    assert same(
        g_before[2],
        {k.removeprefix("generator."): v for k, v in ckpt["state_dict"].items() if k.startswith("generator.")},
    )
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


@pytest.mark.parametrize(
    "override,needle",
    [
        ("data.image_size=96", "data.image_size=96; allowed: a positive multiple of 64"),
        ("loss.vgg_weight=-1", "loss.vgg_weight=-1"),
        ("loss.gan_type=wgan", "loss.gan_type='wgan'; allowed: ragan, vanilla, lsgan, hinge"),
        ("checkpoint.every_n_steps=0", "checkpoint.every_n_steps=0"),
        # Wrong types are config errors too, not a crash of the validator itself.
        ("data.batch_size=abc", "data.batch_size='abc'; allowed: an integer >= 1"),
        ("trainer.max_steps=abc", "trainer.max_steps='abc'; allowed: an integer"),
        ("loss.vgg_weight=abc", "loss.vgg_weight='abc'; allowed: a number >= 0"),
        ("checkpoint.every_n_steps=2.5", "checkpoint.every_n_steps=2.5"),
        # Checked before the model is built, not by the DataLoader inside fit.
        ("data.num_workers=-1", "data.num_workers=-1; allowed: an integer >= 0"),
        # The discriminator's BatchNorm would get one value per channel (64 px: 1x1 maps) inside fit.
        ("data.batch_size=1 data.image_size=64", "data.batch_size=1 at data.image_size=64"),
    ],
)
def test_bad_values_give_one_clear_line(override, needle, tmp_path):
    args = ["+experiment=demo", *override.split(), f"hydra.run.dir={tmp_path}"]
    proc = run_module("train", args, tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert len([ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]) == 1


@pytest.mark.parametrize(
    "override,options",
    [
        ("model/block=dmfb3", ["dmfb", "no_ki", "released"]),
        ("mask=stars", ["center", "free_form", "random_box"]),
        ("strategy=fsdp", ["ddp", "single"]),
        ("logger=mlflow", ["csv", "wandb", "none"]),
    ],
)
def test_unknown_group_options_list_the_valid_ones(override, options, tmp_path):
    proc = run_module("train", [override], tmp_path, timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert override.split("=")[1] in proc.stderr
    assert all(option in proc.stderr for option in options)


def test_resume_from_a_corrupt_or_foreign_checkpoint_is_refused_clearly(tmp_path):
    base = [*TINY, "trainer.max_steps=1"]
    train(compose_config(base, tmp_path / "a"))
    good = tmp_path / "a" / "checkpoints" / "last.ckpt"
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[:1000])
    proc = run_module("train", [*base, f"ckpt_path={truncated}", f"hydra.run.dir={tmp_path / 'b'}"], tmp_path)
    assert proc.returncode == 2 and "truncated or corrupted" in proc.stderr and "Traceback" not in proc.stderr
    # a checkpoint of another block variant: the mismatching keys are named
    proc = run_module(
        "train", [*base, "model/block=released", f"ckpt_path={good}", f"hydra.run.dir={tmp_path / 'c'}"], tmp_path
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "another model configuration" in proc.stderr and "generator.blocks.0." in proc.stderr
    with pytest.raises(CheckpointError, match="not a DMFN training checkpoint"):
        torch.save({"x": torch.zeros(1)}, tmp_path / "foreign.ckpt")
        train_mod.check_resume_checkpoint(str(tmp_path / "foreign.ckpt"), train_mod.build_module(compose_config(base)))


def test_seeded_deterministic_runs_give_identical_losses(tmp_path):
    def losses(run_dir: Path) -> list[float]:
        cfg = compose_config([*TINY, "trainer.max_steps=5", "seed=123", "trainer.deterministic=true"], run_dir)
        train_mod.pl.seed_everything(cfg.seed, workers=True)  # as train() does, before anything draws
        module = train_mod.build_module(cfg)
        seen: list[float] = []

        class Record(train_mod.pl.Callback):
            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                seen.append(float(trainer.callback_metrics["train/g_total"]))
                seen.append(float(trainer.callback_metrics["train/d_total"]))

        trainer = train_mod.build_trainer(cfg, run_dir, [Record()], [])
        trainer.fit(module, datamodule=train_mod.setup_datamodule(cfg))
        return seen

    first, second = losses(tmp_path / "1"), losses(tmp_path / "2")
    assert len(first) == 10 and first == second


def test_a_training_set_of_one_image_at_64_px_is_refused_before_fit():
    from dmfn_lightning.config_checks import validate_batch_statistics
    from dmfn_lightning.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"training set has 1 image\(s\) at data.image_size=64"):
        validate_batch_statistics(64, 4, {"train": {"samples": 1}})
    validate_batch_statistics(64, 4, {"train": {"samples": 2}})  # a batch of 2: two values per channel
    validate_batch_statistics(128, 1, {"train": {"samples": 1}})  # 2x2 maps: four values per channel


@pytest.mark.parametrize("where", ["file", "under_file", "read_only"])
def test_an_unusable_run_dir_is_one_line_before_any_work(where, tmp_path):
    occupied = tmp_path / "occupied"
    occupied.write_text("not a folder")
    # /proc takes no new folders even for root, unlike a chmod'ed folder.
    run_dir = {"file": occupied, "under_file": occupied / "run", "read_only": Path("/proc/dmfn_run")}[where]
    start = time.monotonic()
    proc = run_module("train", ["+experiment=demo", f"hydra.run.dir={run_dir}"], tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and f"hydra.run.dir='{run_dir}'" in errors[0], proc.stderr
    assert time.monotonic() - start < 60
