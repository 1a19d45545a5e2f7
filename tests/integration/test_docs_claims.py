"""Claims of README.md and docs/design.md checked against the code: module names, switches, counts and snippets.

Each test reads the sentence or table the documentation states and asks the code whether it is still true, so a
renamed module, a removed switch or a changed count fails here instead of misleading a reader.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import warnings
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from dmfn_lightning import evaluate as evaluate_mod
from dmfn_lightning import manifest as manifest_mod
from dmfn_lightning import train as train_mod
from dmfn_lightning.config_checks import validate_train_config
from dmfn_lightning.core.config import config_dir
from dmfn_lightning.evaluation.buckets import BUCKETS, bucket_label

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DESIGN = REPO / "docs" / "design.md"
PACKAGE = REPO / "src" / "dmfn_lightning"
TINY_TRAIN = ["+experiment=demo", "+debug=fast"]


def _flat(text: str) -> str:
    """Whitespace collapsed: sentences wrap at any word."""
    return " ".join(text.split())


def _section(text: str, heading: str) -> str:
    """The text of one ``## heading`` / ``### heading`` section, up to the next heading of any level."""
    start = text.index(heading)
    rest = text[start + len(heading) :]
    end = re.search(r"^#{1,3} ", rest, flags=re.MULTILINE)
    return rest[: end.start()] if end else rest


# ------------------------------------------------------------------------------------------------ module names
# Backticked dotted names that start with a part of the package name a module of the new tree; config keys
# (``data.image_size``, ``metrics.fid``) share some first words, so ``data.`` and ``metrics.`` names are checked only
# when their second word is a module of that subpackage.
_MODULE_ROOTS = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"} | {
    p.parent.name for p in PACKAGE.glob("*/__init__.py")
}
_AMBIGUOUS_ROOTS = {"data", "metrics"}  # also config groups


def _package_names(text: str) -> list[str]:
    names = []
    for name in re.findall(r"`((?:dmfn_lightning\.)?[a-z_]+(?:\.[A-Za-z_][\w]*)+)`", text):
        parts = name.removeprefix("dmfn_lightning.").split(".")
        if parts[0] not in _MODULE_ROOTS or parts[-1] in ("py", "md", "yaml", "json"):  # a file name
            continue
        if parts[0] in _AMBIGUOUS_ROOTS:
            sub = PACKAGE / parts[0] / parts[1]
            if not (sub.with_suffix(".py").is_file() or (sub / "__init__.py").is_file()):
                continue
        names.append(name)
    return names


def _resolves(name: str) -> bool:
    parts = name.removeprefix("dmfn_lightning.").split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module("dmfn_lightning." + ".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


@pytest.mark.parametrize("doc", [README, DESIGN], ids=lambda p: p.name)
def test_every_module_name_in_the_docs_exists(doc):
    names = _package_names(doc.read_text())
    assert len(names) >= 5, names  # the pattern really found the names
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        missing = sorted({n for n in names if not _resolves(n)})
    assert not missing, f"{doc.name} names modules or objects that do not exist: {missing}"


def test_old_flat_module_names_are_gone_from_the_docs():
    old = r"`(?:validation|engine|models\.io|hole_buckets|pixel_metrics|distribution_metrics|callbacks\.[A-Z]\w*)\b"
    for doc in (README, DESIGN):
        assert not re.findall(old, doc.read_text()), doc.name


@pytest.mark.parametrize("doc", [README, DESIGN], ids=lambda p: p.name)
def test_every_repository_file_named_in_the_docs_exists(doc):
    """Test, config and benchmark files the docs send a reader to (tests move when their modules do)."""
    named = set(re.findall(r"`((?:tests|conf|benchmarks|docs)/[\w./-]+\.(?:py|yaml|md))`", doc.read_text()))
    assert named, doc.name
    missing = sorted(n for n in named if not (REPO / n).is_file())
    assert not missing, f"{doc.name} names files that do not exist: {missing}"


# ------------------------------------------------------------------------------------- the training LPIPS warning
def _assignments(message: str) -> list[tuple[str, str]]:
    """``key=value`` overrides named in a message (dotted keys only)."""
    return re.findall(r"\b([a-z_]+(?:\.[a-z_0-9]+)+)=([\w/.-]+?)[,;.)]?(?=\s|$)", message)


def test_training_lpips_warning_names_keys_that_training_accepts(empty_torch_home, tmp_path):
    cfg = train_mod.compose_config([*TINY_TRAIN, "model.val_lpips=auto"], tmp_path / "run")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*RANDOM weights")
        module = train_mod.build_module(cfg)
    with pytest.warns(UserWarning, match="LPIPS disabled") as record:
        module.setup("fit")  # what Lightning calls before training: builds the validation metrics
    message = next(str(w.message) for w in record if "LPIPS disabled" in str(w.message))
    assert "alexnet-owt-7be5be79.pth" in message  # still says which file is missing
    assert "lpips.backbone_weights" not in message  # an evaluate key: training rejects it
    named = _assignments(message)
    assert ("model.val_lpips", "false") in named, message
    for key, value in named:
        accepted = train_mod.compose_config([*TINY_TRAIN, f"{key}={value}"], tmp_path / "check")
        validate_train_config(accepted)
        assert str(OmegaConf.select(accepted, key)).lower() == value.lower(), (key, value)


def test_an_evaluate_key_is_rejected_by_training(tmp_path):
    """The premise of the test above: the evaluate key the warning used to name does not compose for training."""
    with pytest.raises(Exception, match="backbone_weights"):
        train_mod.compose_config([*TINY_TRAIN, "lpips.backbone_weights=random"], tmp_path / "run")


# ---------------------------------------------------------------------------------------------- offline switches
def _offline_rows() -> list[tuple[str, list[str]]]:
    section = _section(README.read_text(), "## Working offline")
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("command", "---"):
            continue
        switches = [t for t in re.findall(r"`([^`]+)`", cells[1] + " " + cells[2]) if "=" in t or t.startswith("--")]
        rows.append((cells[0], switches))
    return rows


def test_readme_offline_table_lists_the_switches_of_each_command():
    switches = {s for _, row in _offline_rows() for s in row}
    for expected in ("model.vgg.weights=random", "model.val_lpips=false", "lpips.enabled=false", "--no-lpips"):
        assert expected in switches, expected
    assert "DMFN_OFFLINE=1" in switches


def test_every_readme_offline_switch_is_accepted_by_its_command(tmp_path, empty_torch_home, monkeypatch):
    from dmfn_lightning.core.errors import WeightsUnavailableError
    from dmfn_lightning.core.weights import resolve_pretrained

    checked = 0
    for command, switches in _offline_rows():
        for switch in switches:
            if switch.startswith("DMFN_OFFLINE="):
                monkeypatch.setenv("DMFN_OFFLINE", switch.split("=", 1)[1])
                with pytest.raises(WeightsUnavailableError, match="DMFN_OFFLINE is set"):
                    resolve_pretrained("test", "https://example.invalid/none.pth", "x.weights")
            elif "dmfn_lightning.train" in command:
                key, value = switch.split("=", 1)
                cfg = train_mod.compose_config([*TINY_TRAIN, switch], tmp_path / "train")
                validate_train_config(cfg)
                if "." in key:  # a value, not a config group choice such as logger=none
                    assert str(OmegaConf.select(cfg, key)).lower() == value.lower(), switch
            elif "dmfn_lightning.evaluate" in command:
                key, value = switch.split("=", 1)
                cfg = evaluate_mod.compose_config([switch], tmp_path / "eval")
                assert str(OmegaConf.select(cfg, key)).lower() == value.lower(), switch
            elif "dmfn_lightning.manifest score" in command:
                flag = switch.split()[0]
                args = ["score", "m.csv", "outputs/", "--data-root", "data/", flag]
                args += ["random"] if flag == "--lpips-weights" else []
                manifest_mod._parser().parse_args(args)
            else:
                pytest.fail(f"README offline table: no check for {command!r} {switch!r}")
            checked += 1
    assert checked >= 8


# ------------------------------------------------------------------------------------------------- stated numbers
def _pinned_host_syncs() -> dict:
    path = REPO / "tests" / "integration" / "test_host_syncs.py"
    spec = importlib.util.spec_from_file_location("_pinned_host_syncs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.EXPECTED


def test_readme_host_sync_counts_are_the_pinned_ones():
    expected = _pinned_host_syncs()
    text = _flat(README.read_text())
    assert f"{expected['not_logged']['syncs']} on an iteration that writes no logs" in text
    logged, in_step = expected["logged"]["syncs"], expected["logged"]["in_training_step"]
    assert f"and {logged} on the iterations that do" in text
    assert f"{logged - in_step} when Lightning writes the logged metrics and {in_step} in `training_step`" in text


def test_readme_names_every_hole_ratio_bucket_of_the_reports():
    text = _flat(_section(README.read_text(), "## Evaluating (Table 1 protocol)"))
    words = {7: "seven"}
    assert f"by hole ratio with {words[len(BUCKETS)]} buckets" in text
    for low, high in (BUCKETS[0], BUCKETS[5], BUCKETS[-1]):
        assert bucket_label(low, high) in text


def test_readme_ddp_device_counts_are_the_configs(tmp_path):
    text = _flat(README.read_text())
    ddp = train_mod.compose_config(["strategy=ddp"], tmp_path / "a").strategy
    multi = train_mod.compose_config(["strategy=ddp_multinode"], tmp_path / "b").strategy
    assert f"`strategy=ddp` runs data-parallel on one machine with {ddp.devices} devices" in text
    assert f"by default {multi.num_nodes} nodes of {multi.devices} devices" in text


def test_strategy_names_in_docs_and_config_comments_exist():
    shipped = {p.stem for p in (config_dir() / "strategy").glob("*.yaml")}
    texts = [README.read_text(), DESIGN.read_text()] + [p.read_text() for p in (config_dir() / "strategy").glob("*")]
    named = {n for t in texts for n in re.findall(r"\bstrategy=(\w+)", t)}
    assert named and named <= shipped, named - shipped
    ddp_comment = (config_dir() / "strategy" / "ddp.yaml").read_text()
    assert "ddp_spawn for" not in ddp_comment  # there is no such config in the group


def test_alignment_loss_is_the_pixel_index_loss_times_2_over_w_squared():
    """docs/design.md, section 5, row 22: the normalised grid scales the loss by (2/W)^2 against pixel indices."""
    from dmfn_lightning.losses.alignment import feature_centres, geometrical_alignment_loss

    torch.manual_seed(0)
    size = 32  # relu4_1 of a 256 x 256 image
    out, target = torch.rand(2, 8, size, size), torch.rand(2, 8, size, size)

    def pixel_centres(feat):
        p = (feat + 1e-7) / (feat + 1e-7).sum(dim=(2, 3), keepdim=True)
        index = torch.arange(size, dtype=feat.dtype)
        return torch.stack(((p.sum(2) * index).sum(-1), (p.sum(3) * index).sum(-1)), dim=-1)

    pixel_loss = torch.nn.functional.mse_loss(pixel_centres(out), pixel_centres(target))
    ours = geometrical_alignment_loss(out, target)
    torch.testing.assert_close(ours, pixel_loss / 256)
    torch.testing.assert_close(feature_centres(out), pixel_centres(out) * 2 / size - 1)
    assert "1/256" in _flat(DESIGN.read_text()) and "| 22 | alignment coordinates (eq. 6)" in DESIGN.read_text()


def test_export_report_says_which_formats_take_any_size(tmp_path):
    from dmfn_lightning.export import export
    from dmfn_lightning.models import DMFNGenerator
    from dmfn_lightning.models.export_formats import EXPORT_FORMATS

    torch.manual_seed(0)
    generator = DMFNGenerator(num_blocks=1, base_channels=8)
    report = export(generator, tmp_path / "out", ["generator"], verify_sizes=[(16, 16)], log=lambda _: None)
    stated = report["input"]
    any_size, multiple_of_4 = stated.split("; ")[1], stated.split("; ")[2]
    assert "any H, W" in any_size and "divisible by 4" in multiple_of_4
    library = stated.split("; ")[3:]  # generator.pt, bundle: the eager model's rule, any size through the library
    for name, spec in EXPORT_FORMATS.items():
        if spec.any_size:
            assert name in any_size, (name, stated)
        elif spec.library_pads:
            assert any(p.startswith(f"{name}:") and p.endswith("any size") for p in library), (name, stated)
        else:
            assert name in multiple_of_4, (name, stated)


# --------------------------------------------------------------------------------------------------- snippets
@pytest.mark.slow
def test_readme_trainer_test_snippet_runs(tmp_path, monkeypatch):
    """The README's ``Trainer.test`` snippet, on a checkpoint of a 2-iteration demo run."""
    from tests.cli import run_module

    run = tmp_path / "outputs" / "demo"
    proc = run_module("train", [*TINY_TRAIN, f"hydra.run.dir={run}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    (snippet,) = [b for b in blocks if "Trainer(logger=False).test(" in b]
    snippet = snippet.replace(
        "pl.Trainer(logger=False).test(", "results = pl.Trainer(logger=False, enable_progress_bar=False).test("
    )
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    (results,) = namespace["results"]
    assert {"test/psnr", "test/ssim", "test/l1", "test/l1_hole"} <= set(results)
