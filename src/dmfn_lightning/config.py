"""Where the Hydra config tree lives.

The tree is kept at the top of the checkout (``conf/``) and shipped inside the wheel as ``dmfn_lightning/conf``.
An editable install has no packaged copy, so the checkout's tree is used; an installed wheel uses its own copy.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def config_dir() -> Path:
    """Absolute path of the Hydra config directory (``$DMFN_CONFIG_DIR`` overrides the search)."""
    override = os.environ.get("DMFN_CONFIG_DIR")
    candidates = [Path(override)] if override else []
    candidates += [_PACKAGE_DIR / "conf", _PACKAGE_DIR.parents[1] / "conf"]
    for candidate in candidates:
        if (candidate / "train.yaml").is_file():
            return candidate
    searched = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"dmfn_lightning cannot find its Hydra configs (looked for train.yaml in: {searched}). "
        "Reinstall the package, or set DMFN_CONFIG_DIR to a copy of the repository's conf/ directory."
    )


def compose(config_name: str, overrides=None, run_dir=None, job_name: str | None = None):
    """Compose ``config_name`` in Python (tests, notebooks) exactly as the command line would.

    ``run_dir`` plays the role of ``hydra.run.dir``; Hydra's runtime fields are filled so ``${hydra:...}``
    interpolations resolve and the entry point's function can be called directly.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    overrides = list(overrides or [])
    if run_dir is not None:
        overrides.append(f"hydra.run.dir={Path(run_dir).resolve()}")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = hydra_compose(config_name, overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # first, so that ${hydra:runtime.choices...} in run.dir resolves
    resolved_run_dir = str(Path(cfg.hydra.run.dir).resolve())
    OmegaConf.set_readonly(cfg.hydra, False)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = resolved_run_dir
        cfg.hydra.job.name = job_name or config_name
    HydraConfig.instance().set_config(cfg)
    return cfg


def _path_safe(text: str) -> str:
    """Group overrides such as ``model/block=rate2`` contain '/', which would nest sweep directories."""
    return str(text).replace("/", ".")


def register_resolvers() -> None:
    """OmegaConf resolvers used by conf/ (idempotent)."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("path_safe"):
        OmegaConf.register_new_resolver("path_safe", _path_safe)


register_resolvers()
