"""The package's shape: layers as folders, imports pointing down only, no cycle, every module says what it is for."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "src" / "dmfn_lightning"


def _module_name(path: Path) -> str:
    name = "dmfn_lightning." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    return name.removesuffix(".__init__")


def _import_graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for node in ast.parse(path.read_text()).body:  # module level only: what runs at import time
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for target in targets:
                found = owner(target) if target.startswith("dmfn_lightning") else None
                if found and found != name and not name.startswith(found + "."):
                    graph[name].add(found)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


# The layers of docs/architecture.md, bottom up: each part of the package and the parts it may import (besides
# itself). The top-level commands (train, evaluate, inpaint, export, app, manifest) may import anything below them;
# nothing imports a command.
COMMANDS = {"train", "evaluate", "inpaint", "export", "app", "manifest"}
ALLOWED = {
    "core": set(),
    "models": {"core"},
    "losses": {"core"},
    "metrics": {"core"},
    "masks": {"core"},
    "data": {"core", "masks"},
    "training": {"core", "models"},
    "cli_options": {"core"},
    "config_checks": {"core", "models", "losses", "metrics"},
    "module": {"core", "models", "losses", "metrics", "masks", "data", "training"},
    "inpainting": {"core", "models", "masks"},
    "evaluation": {"core", "models", "masks", "data", "metrics"},
    "webapp": {"core", "models", "masks", "inpainting"},
}
TOP_LEVEL = COMMANDS | {"cli_options", "config_checks", "module", "__init__"}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layering_violations(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for module, targets in sorted(graph.items()):
        source = _part(module)
        for target in sorted(targets):
            dest = _part(target)
            if dest == source or dest == "__init__":
                continue
            if dest in COMMANDS:
                found.append(f"{module} -> {target}: nothing imports a command")
            elif source not in COMMANDS and dest not in ALLOWED.get(source, set()):
                found.append(f"{module} -> {target}: {source} may import only {sorted(ALLOWED.get(source, set()))}")
    return found


def test_the_import_graph_has_no_cycle():
    graph = _import_graph()
    assert len(graph) > 30 and graph["dmfn_lightning.train"]  # the graph was really read
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_imports_point_down_the_layers():
    graph = _import_graph()
    assert {_part(m) for m in graph} - {"__init__"} <= set(ALLOWED) | COMMANDS
    assert _layering_violations(graph) == []


def test_an_upward_import_would_be_found():
    graph = _import_graph()
    graph["dmfn_lightning.core.pixels"] = graph["dmfn_lightning.core.pixels"] | {"dmfn_lightning.models.inference"}
    graph["dmfn_lightning.data.datasets"] = graph["dmfn_lightning.data.datasets"] | {"dmfn_lightning.inpainting.api"}
    graph["dmfn_lightning.models.ema"] = graph["dmfn_lightning.models.ema"] | {"dmfn_lightning.train"}
    assert _layering_violations(graph) == [
        "dmfn_lightning.core.pixels -> dmfn_lightning.models.inference: core may import only []",
        "dmfn_lightning.data.datasets -> dmfn_lightning.inpainting.api: data may import only ['core', 'masks']",
        "dmfn_lightning.models.ema -> dmfn_lightning.train: nothing imports a command",
    ]


def test_the_top_of_the_package_holds_only_commands_and_subpackages():
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top == TOP_LEVEL, top ^ TOP_LEVEL
    subpackages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert subpackages == set(ALLOWED) - TOP_LEVEL


def test_a_cycle_would_be_found():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_every_module_says_what_it_is_for():
    missing = [
        str(p.relative_to(REPO))
        for p in PACKAGE.rglob("*.py")
        if not (ast.get_docstring(ast.parse(p.read_text())) or "").strip()
    ]
    assert not missing, missing


def test_no_file_points_outside_the_repository():
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO, capture_output=True, text=True
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    pattern = re.compile(r"DESIGN\.md|\.\./shared")
    suffixes = {".py", ".md", ".yaml", ".toml", ".ipynb", ".txt", ".cfg", ""}
    offenders = []
    for name in listed.stdout.splitlines():
        path = REPO / name
        readable = path.suffix in suffixes and path.is_file() and path != Path(__file__).resolve()
        if readable and pattern.search(path.read_text(errors="ignore")):
            offenders.append(name)
    assert not offenders, offenders


def test_every_error_class_lives_in_errors_py():
    # One error module: a class deriving from an exception anywhere else would be a second, uncatchable copy.
    defined_elsewhere = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "core" / "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                (getattr(base, "id", None) or getattr(base, "attr", "")).endswith(("Error", "Exception"))
                for base in node.bases
            ):
                defined_elsewhere.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}")
    assert defined_elsewhere == []


def test_inpainting_raises_the_errors_of_errors_py():
    from dmfn_lightning import inpainting
    from dmfn_lightning.core import errors

    for name in ("InpaintError", "InpaintMemoryError", "NonFiniteOutputError", "OutputPathError"):
        assert getattr(inpainting, name) is getattr(errors, name)


def _local_package_imports(source: str) -> list[int]:
    """Lines of imports of ``dmfn_lightning`` inside functions: they hide a dependency from the import graph."""
    lines = []
    for func in ast.walk(ast.parse(source)):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(func):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if any(n == "dmfn_lightning" or n.startswith("dmfn_lightning.") for n in names):
                lines.append(node.lineno)
    return lines


def test_the_package_imports_its_own_modules_at_the_top():
    # Optional third-party packages (gradio, onnx, lpips, wandb) may be imported late; the package's own modules
    # may not, so the graph checked above is the whole graph.
    late = {
        f"{path.relative_to(PACKAGE)}:{line}"
        for path in PACKAGE.rglob("*.py")
        for line in _local_package_imports(path.read_text())
    }
    assert late == set()


def test_a_late_import_would_be_found():
    source = "import os\n\ndef f():\n    from dmfn_lightning.core.errors import DMFNError\n    import dmfn_lightning\n"
    assert _local_package_imports(source) == [4, 5]


def test_generator_entry_points_share_their_model_options():
    from dmfn_lightning import app, export, inpaint
    from dmfn_lightning.cli_options import CHECKPOINT_KINDS

    helps: dict[str, set[str]] = {}
    for cli in (app, export, inpaint):
        for action in cli.build_parser()._actions:
            for flag in set(action.option_strings) & {"--checkpoint", "--precision", "--no-ema"}:
                helps.setdefault(flag, set()).add(action.help.split(";")[0])
    assert helps["--checkpoint"] == {CHECKPOINT_KINDS}
    assert len(helps["--precision"]) == 1 and len(helps["--no-ema"]) == 1


# A dotted name in backticks (``dmfn_lightning.x.y`` or :func:`~dmfn_lightning.x.y`) in the docs, configs or a
# docstring: it must exist, and a function or class must be named where it is defined (or where a package's face
# exports it), so a reader who follows the name lands on the code.
_DOTTED_REFERENCE = re.compile(r"`~?(dmfn_lightning(?:\.[A-Za-z_]\w*)+)")


def _reference_problem(dotted: str) -> str | None:
    import importlib
    import inspect

    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            module = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        obj = module
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return "does not exist"
            obj = getattr(obj, attr)
        defined = inspect.isfunction(obj) or inspect.isclass(obj)
        face = (
            module.__file__.endswith("__init__.py") and parts[i : i + 1] and parts[i] in getattr(module, "__all__", ())
        )
        if i < len(parts) and defined and obj.__module__ != module.__name__ and not face:
            return f"lives in {obj.__module__}"
        return None
    return "does not exist"


def test_names_in_docs_and_docstrings_point_at_the_code():
    files = [
        *PACKAGE.rglob("*.py"),
        *(REPO / "docs").glob("*.md"),
        REPO / "README.md",
        *(REPO / "conf").rglob("*.yaml"),
    ]
    files += [*(REPO / "benchmarks").glob("*.py"), *(REPO / "experiments").glob("*.*")]
    stale = [
        f"{path.relative_to(REPO)}:{number}: {match.group(1)} {problem}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), 1)
        for match in _DOTTED_REFERENCE.finditer(line)
        if (problem := _reference_problem(match.group(1).rstrip(".")))
    ]
    assert stale == []


def test_a_stale_name_would_be_found():
    assert _reference_problem("dmfn_lightning.inpainting.api.run_generator") == (
        "lives in dmfn_lightning.models.inference"
    )
    assert _reference_problem("dmfn_lightning.engine.run_generator") == "does not exist"
    assert _reference_problem("dmfn_lightning.inpainting.inpaint") is None  # the package's face
    assert _reference_problem("dmfn_lightning.models.inference.run_generator") is None
