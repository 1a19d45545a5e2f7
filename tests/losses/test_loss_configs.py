"""The loss configs (conf/loss/*.yaml): each composes and instantiates DMFNLoss with the paper's values or its one
ablation, every key is overridable, and the group is selectable from a primary config and from train.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from dmfn_lightning.losses import DMFNLoss

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
LOSS_CONFIGS = ("paper", "no_self_guided", "no_align", "no_dis_fm", "released")
PAPER = {
    "reconstruction_weight": 1.0,
    "vgg_weight": 25.0,
    "self_guided": True,
    "self_guided_normalization": "minmax",
    "alignment_weight": 1.0,
    "alignment_mode": "paper",
    "dis_fm_weight": 5.0,
    "adversarial_weight": 0.003,
    "gan_type": "ragan",
    "vgg_layer_weights": None,
    "dis_layer_weights": None,
}


@pytest.fixture
def loss_conf(compose_conf):
    """The ``loss`` node composed from the real conf/ tree with no primary config (``"+loss=<name>", ...``)."""
    return lambda *overrides: compose_conf(None, *overrides).loss


EXPECTED = {
    "paper": {},
    "no_self_guided": {"self_guided": False},
    "no_align": {"alignment_weight": 0.0},
    "no_dis_fm": {"dis_fm_weight": 0.0},
    "released": {"self_guided_normalization": "max", "alignment_mode": "released"},
}


@pytest.mark.parametrize("name", LOSS_CONFIGS)
def test_loss_configs_compose_and_instantiate(loss_conf, name):
    cfg = loss_conf(f"+loss={name}")
    assert cfg._target_ == "dmfn_lightning.losses.DMFNLoss"
    expected = {**PAPER, **EXPECTED[name]}
    assert {k: v for k, v in cfg.items() if k != "_target_"} == expected
    loss = instantiate(cfg)
    assert isinstance(loss, DMFNLoss)
    for key, value in expected.items():
        assert getattr(loss, key) == value, key


def test_ablation_files_only_override_what_differs():
    for name in LOSS_CONFIGS[1:]:
        text = (CONF_DIR / "loss" / f"{name}.yaml").read_text()
        assert "- paper" in text and "- _self_" in text and "_target_" not in text, name
        keys = [line.split(":")[0] for line in text.splitlines() if line and line[0].isalpha()]
        assert keys[0] == "defaults" and set(keys[1:]) == set(EXPECTED[name]), (name, keys)


@pytest.mark.parametrize(
    "override,key,value",
    [
        ("loss.reconstruction_weight=2", "reconstruction_weight", 2.0),
        ("loss.vgg_weight=10", "vgg_weight", 10.0),
        ("loss.self_guided=false", "self_guided", False),
        ("loss.self_guided_normalization=max", "self_guided_normalization", "max"),
        ("loss.alignment_weight=0.5", "alignment_weight", 0.5),
        ("loss.alignment_mode=released", "alignment_mode", "released"),
        ("loss.dis_fm_weight=1.5", "dis_fm_weight", 1.5),
        ("loss.adversarial_weight=0.01", "adversarial_weight", 0.01),
        ("loss.gan_type=lsgan", "gan_type", "lsgan"),
        ("loss.vgg_layer_weights=[1,2,3,4,5]", "vgg_layer_weights", (1.0, 2.0, 3.0, 4.0, 5.0)),
        ("loss.dis_layer_weights=[0,0,1,1,1]", "dis_layer_weights", (0.0, 0.0, 1.0, 1.0, 1.0)),
    ],
)
def test_every_loss_key_is_overridable_from_the_command_line(loss_conf, override, key, value):
    loss = instantiate(loss_conf("+loss=no_align", override))
    assert getattr(loss, key) == value
    assert loss.alignment_weight == (0.5 if key == "alignment_weight" else 0.0)


def test_bad_override_raises_naming_the_key(loss_conf):
    with pytest.raises(Exception, match=r"loss\.vgg_weight=-1\.0"):
        instantiate(loss_conf("+loss=paper", "loss.vgg_weight=-1.0"))


def test_group_selected_from_a_primary_config(tmp_path):
    """`loss=no_align` from a primary config whose defaults pick `loss: paper` (as train.yaml does)."""
    (tmp_path / "primary.yaml").write_text(
        f"defaults:\n  - loss: paper\n  - _self_\nhydra:\n  searchpath:\n    - file://{CONF_DIR}\n"
    )
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(tmp_path), version_base="1.3"):
            for name in LOSS_CONFIGS:
                cfg = compose("primary", overrides=[f"loss={name}", "loss.adversarial_weight=0.1"])
                assert {k: v for k, v in cfg.loss.items() if k != "_target_"} == {
                    **PAPER,
                    **EXPECTED[name],
                    "adversarial_weight": 0.1,
                }
                assert set(cfg) == {"loss"}  # nothing leaked outside the group's package
    finally:
        GlobalHydra.instance().clear()


def test_group_selected_from_train_yaml(compose_conf):
    """The real primary config: `loss: paper` in train.yaml's defaults, replaced by `loss=<name>` on the CLI."""
    assert compose_conf("train").loss == compose_conf(None, "+loss=paper").loss
    for name in LOSS_CONFIGS:
        cfg = compose_conf("train", f"loss={name}", "loss.vgg_weight=7")
        assert {k: v for k, v in cfg.loss.items() if k != "_target_"} == {**PAPER, **EXPECTED[name], "vgg_weight": 7}
        assert isinstance(instantiate(cfg.loss), DMFNLoss)
