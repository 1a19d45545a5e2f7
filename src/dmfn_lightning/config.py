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


def _path_safe(text: str) -> str:
    """Group overrides such as ``model/block=rate2`` contain '/', which would nest sweep directories."""
    return str(text).replace("/", ".")


def register_resolvers() -> None:
    """OmegaConf resolvers used by conf/ (idempotent)."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("path_safe"):
        OmegaConf.register_new_resolver("path_safe", _path_safe)


register_resolvers()
