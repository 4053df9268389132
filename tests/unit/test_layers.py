"""The layers of DESIGN.md section 1, checked on the source: contracts <- components <- wiring
<- entry points, no import circles, and Settings turned into clients in one place only."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("churnops", "registry_ext", "serving", "monitoring")
ENTRY_POINTS = ("churnops.cli", "churnops.commands", "serving.service")
WIRING = "churnops.wiring"
CONFIG = "churnops.settings"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def source_files() -> Iterator[Path]:
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Project modules ``path`` imports at run time (module level or inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_lines(tree)
    me = module_name(path)
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        for target in targets:
            # the most specific project module the name refers to
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != me:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    files = list(source_files())
    known = {module_name(f) for f in files}
    edges = {module_name(f): imports_of(f, known) for f in files}
    # A package's __init__ re-exporting its own modules is not a dependency of those modules on
    # each other; drop edges from a module to its own package's __init__.
    for module, targets in edges.items():
        edges[module] = {t for t in targets if not module.startswith(t + ".")}
    return edges


def layer(module: str) -> str:
    if module.startswith("churnops.contracts"):
        return "contracts"
    if module == CONFIG:
        return "config"
    if module == WIRING:
        return "wiring"
    if module.startswith(ENTRY_POINTS) or module == "churnops":
        return "entry"
    return "component"


def test_contracts_import_no_component() -> None:
    bad = {
        (m, t)
        for m, targets in graph().items()
        if layer(m) == "contracts"
        for t in targets
        if layer(t) != "contracts"
    }
    assert not bad, f"contracts must import only contracts: {sorted(bad)}"


def test_components_take_built_objects_not_settings_wiring_or_commands() -> None:
    bad = {
        (m, t)
        for m, targets in graph().items()
        if layer(m) == "component"
        for t in targets
        if layer(t) in ("config", "wiring", "entry")
    }
    assert not bad, f"components must not import settings, wiring or entry points: {sorted(bad)}"


def test_no_import_circles() -> None:
    edges = graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("call", ["registry_engine(", "MlflowClient("])
def test_clients_are_built_only_by_the_wiring_module(call: str) -> None:
    pattern = re.compile(r"(?<![\w.])" + re.escape(call))
    places = sorted(
        str(path.relative_to(ROOT))
        for path in source_files()
        if pattern.search(path.read_text(encoding="utf-8"))
        and not str(path.relative_to(ROOT)).startswith("registry_ext/")
        and module_name(path) != WIRING
    )
    assert places == [], f"{call} outside churnops/wiring.py and registry_ext: {places}"


def test_the_checker_sees_module_level_and_lazy_imports() -> None:
    """The graph is not vacuous: it finds the imports the layers rely on."""
    edges = graph()
    assert "churnops.contracts.columns" in edges["churnops.sources"]
    assert "registry_ext" in edges["serving.model_source"]  # lazy, inside a method: still seen
    assert "churnops.wiring" in edges["serving.service"]


def test_every_directly_imported_package_is_declared() -> None:
    """A shipped module may import only the standard library, the project and declared packages."""
    import sys
    import tomllib
    from importlib.metadata import packages_distributions

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    def normal(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    declared = {normal(re.split(r"[\[<>=!~ ]", dep, maxsplit=1)[0]) for dep in project["dependencies"]}
    providers = packages_distributions()
    missing: dict[str, list[str]] = {}
    for path in [*source_files(), *sorted((ROOT / "feature_repo").glob("*.py"))]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module]
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
                else []
            )
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in (*PACKAGES, "feature_repo"):
                    continue
                dists = {normal(d) for d in providers.get(top, [top])}
                if not dists & declared:
                    missing.setdefault(top, []).append(str(path.relative_to(ROOT)))
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
