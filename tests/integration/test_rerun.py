"""Resuming with other settings says what changed or refuses; rerunning a finished run changes nothing."""

from __future__ import annotations

import json
import logging

import pytest

from dmfn_lightning.core.errors import ConfigError
from dmfn_lightning.train import compose_config, train

RUN = ["+experiment=demo", "+debug=fast", "data.train_length=8", "checkpoint.every_n_steps=1"]


def _train(run_dir, *extra: str) -> dict:
    return train(compose_config([*RUN, *extra], run_dir))


def test_a_learning_rate_the_restored_optimizer_would_ignore_is_refused(tmp_path):
    _train(tmp_path, "trainer.max_steps=2")
    with pytest.raises(ConfigError) as info:
        _train(tmp_path, "trainer.max_steps=3", "optim.generator.lr=0.01")
    message = str(info.value)
    assert "optim.generator.lr=0.01 (the checkpoint has 0.0002)" in message and "\n" not in message
    assert json.loads((tmp_path / "results.json").read_text())["iteration"] == 2  # nothing ran


def test_other_changed_settings_are_listed_and_take_effect(tmp_path, caplog):
    _train(tmp_path, "trainer.max_steps=2")
    with caplog.at_level(logging.WARNING, logger="dmfn_lightning.train"):
        result = _train(tmp_path, "trainer.max_steps=3", "loss.dis_fm_weight=4.0")
    assert result["iteration"] == 3
    lines = [r.getMessage() for r in caplog.records if "changed setting" in r.getMessage()]
    assert len(lines) == 1 and "loss.dis_fm_weight: 5.0 -> 4.0" in lines[0]
    assert "trainer.max_steps" not in lines[0]  # growing max_steps is how a run continues


def test_rerunning_a_finished_run_keeps_its_results(tmp_path, caplog):
    first = _train(tmp_path, "trainer.max_steps=2")
    results = (tmp_path / "results.json").read_bytes()
    generator = (tmp_path / "generator.pt").read_bytes() if (tmp_path / "generator.pt").is_file() else None
    assert json.loads(results)["metrics"]
    with caplog.at_level(logging.INFO, logger="dmfn_lightning.train"):
        again = _train(tmp_path, "trainer.max_steps=2")
    assert (tmp_path / "results.json").read_bytes() == results
    if generator is not None:
        assert (tmp_path / "generator.pt").read_bytes() == generator
    assert again["metrics"] == first["metrics"] and again["iteration"] == 2
    assert any("already finished" in r.getMessage() and "nothing to do" in r.getMessage() for r in caplog.records)


def test_a_continued_run_keeps_the_earlier_results_in_its_history(tmp_path):
    first = _train(tmp_path, "trainer.max_steps=2")
    _train(tmp_path, "trainer.max_steps=4")
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["iteration"] == 4 and results["metrics"]
    assert results["history"] == [{"iteration": 2, "metrics": first["metrics"]}]
