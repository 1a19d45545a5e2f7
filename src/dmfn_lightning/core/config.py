"""Where the Hydra config tree lives, the targets it names, and the checks on output folders it configures.

The tree is kept at the top of the checkout (``conf/``) and shipped inside the wheel as ``dmfn_lightning/conf``.
An editable install has no packaged copy, so the checkout's tree is used; an installed wheel uses its own copy.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from dmfn_lightning.core.errors import ConfigError, full_error_requested
from dmfn_lightning.core.files import probe_writable

_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # dmfn_lightning/


def config_dir() -> Path:
    """Absolute path of the Hydra config directory (``$DMFN_CONFIG_DIR`` overrides the search)."""
    override = os.environ.get("DMFN_CONFIG_DIR")
    candidates = [Path(override)] if override else []
    candidates += [_PACKAGE_DIR / "conf", _PACKAGE_DIR.parents[1] / "conf"]
    for candidate in candidates:
        if (candidate / "train.yaml").is_file():
            return candidate
    searched = ", ".join(str(c) for c in candidates)
    raise ConfigError(
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


def check_writable_dir(path: str | os.PathLike, key: str) -> Path:
    """Create ``path`` (a folder) if needed and prove it takes files, or raise :class:`ConfigError` naming ``key``.

    Called before any work starts, so that an occupied or read-only output location costs a second, not a run.
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{key}={str(path)!r} is an existing file, not a folder; choose another {key}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"cannot create {key}={str(path)!r} ({reason}); choose another {key}") from None
    try:
        probe_writable(path)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"{key}={str(path)!r} is not writable ({reason}); choose a writable {key}") from None
    return path


def config_targets(node: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """Every ``_target_`` in a (plain or OmegaConf) config tree, as ``(dotted key, value)`` pairs."""
    if isinstance(node, Mapping) or OmegaConf.is_dict(node):
        for name in node:
            child = node[name]
            where = f"{key}.{name}" if key else str(name)
            if name == "_target_":
                yield where, child
            else:
                yield from config_targets(child, where)
    elif isinstance(node, list | tuple) or OmegaConf.is_list(node):
        for index, child in enumerate(node):
            yield from config_targets(child, f"{key}[{index}]")


def shipped_targets(*groups: str) -> frozenset[str]:
    """The ``_target_`` values that the shipped ``conf/`` tree names (in the given config groups, or anywhere)."""
    roots = [config_dir() / group for group in groups] if groups else [config_dir()]
    found = set()
    for root in roots:
        for path in root.rglob("*.yaml"):
            tree = yaml.safe_load(path.read_text()) or {}
            found.update(value for _, value in config_targets(tree) if isinstance(value, str))
    return frozenset(found)


def _hydra_callback_base() -> type:
    from hydra.experimental.callback import Callback

    return Callback


class OutputDirCheck(_hydra_callback_base()):
    """Hydra callback: check ``hydra.run.dir`` (``hydra.sweep.dir`` for ``-m``) before Hydra creates it.

    Hydra makes the run folder before the task starts and reports a failure there as a traceback; this prints one
    line and exits with status 2 instead, like every other user error (``HYDRA_FULL_ERROR=1`` keeps the traceback).
    """

    def _check(self, path: Any, key: str) -> None:
        try:
            check_writable_dir(str(path), key)
        except ConfigError as exc:
            if full_error_requested():
                raise
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        self._check(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        self._check(config.hydra.sweep.dir, "hydra.sweep.dir")


# A sweep job's folder is named by its overrides; file systems refuse names over 255 bytes, and long names are
# unreadable anyway. The full overrides are always in the job's .hydra/overrides.yaml.
MAX_JOB_DIR_NAME = 96


def _path_safe(text: str) -> str:
    """A folder name from a job's overrides: '/' (group overrides such as ``model/block=rate2``) would nest folders,
    and a name longer than :data:`MAX_JOB_DIR_NAME` is cut and ends in a short hash of the whole text, so two jobs
    never share a folder."""
    name = str(text).replace("/", ".")
    if len(name.encode()) <= MAX_JOB_DIR_NAME:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    cut = name.encode()[: MAX_JOB_DIR_NAME - len(digest) - 2].decode(errors="ignore").rstrip(",.=_-")
    return f"{cut}..{digest}"


def register_resolvers() -> None:
    """OmegaConf resolvers used by conf/ (idempotent)."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("path_safe"):
        OmegaConf.register_new_resolver("path_safe", _path_safe)


register_resolvers()
