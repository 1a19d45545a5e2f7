"""The Hydra tree ships inside the wheel: entry points find their configs from any directory, installed or editable."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(cmd: list[str], cwd: Path, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )


def test_editable_install_finds_the_checkout_conf_from_elsewhere(tmp_path):
    proc = _run([sys.executable, "-m", "dmfn_lightning.train", "+experiment=paris", "--cfg", "job"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "_target_: dmfn_lightning.module.DMFNModule" in proc.stdout
    assert "batch_size: 16" in proc.stdout
    from dmfn_lightning.core.config import config_dir

    assert config_dir() == REPO / "conf"


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_runs_from_tmp(tmp_path):
    dist = tmp_path / "dist"
    build = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dist), str(REPO)], cwd=tmp_path, timeout=600
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = dist.glob("dmfn_lightning-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "dmfn_lightning/conf/train.yaml" in names
    assert "dmfn_lightning/conf/experiment/paris.yaml" in names
    assert "dmfn_lightning/data/lists/paris_eval.txt" in names

    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path).returncode == 0
    py = venv / "bin" / "python"
    install = _run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)], cwd=tmp_path)
    assert install.returncode == 0, install.stderr[-2000:]
    # Dependencies (torch, lightning, hydra, ...) come from this venv; the package itself only from the wheel.
    fresh_site = next((venv / "lib").glob("python3*/site-packages"))
    deps = [p for p in site.getsitepackages() if "site-packages" in p]
    (fresh_site / "zz_deps.pth").write_text("\n".join(deps) + "\n")
    env = {"PYTHONPATH": "", "DMFN_CONFIG_DIR": ""}
    where = _run(
        [
            str(py),
            "-c",
            "import dmfn_lightning, dmfn_lightning.core.config as c; "
            "print(dmfn_lightning.__file__); print(c.config_dir())",
        ],
        cwd=Path("/tmp"),
        env=env,
    )
    assert where.returncode == 0, where.stderr
    module_file, conf = where.stdout.split()
    assert str(fresh_site) in module_file and conf.startswith(str(fresh_site))
    for args in (["--help"], ["+experiment=paris", "--cfg", "job"]):
        proc = _run([str(py), "-m", "dmfn_lightning.train", *args], cwd=Path("/tmp"), env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert "experiment" in _run([str(py), "-m", "dmfn_lightning.train", "--help"], cwd=Path("/tmp"), env=env).stdout
