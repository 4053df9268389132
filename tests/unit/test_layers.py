"""What the import-linter contracts (pyproject.toml, run by `lint-imports` in ./dev test) cannot
state: every module sits in a layer, another component is imported by the names of its
``__all__`` only, the allowlist is the one docs/architecture.md shows, Settings become clients in
one place only, and every imported package is declared."""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("churnops", "registry_ext", "serving", "monitoring")
WIRING = "churnops.wiring"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def source_files() -> Iterator[Path]:
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def contract(contract_id: str) -> dict[str, Any]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    assert sorted(config["root_packages"]) == sorted(PACKAGES)
    (found,) = [c for c in config["contracts"] if c["id"] == contract_id]
    return dict(found)


def owner(module: str, packages: list[str]) -> str | None:
    """The listed package ``module`` belongs to (itself or an ancestor), if any."""
    matches = [p for p in packages if module == p or module.startswith(p + ".")]
    return max(matches, key=len) if matches else None


def components() -> list[str]:
    return list(contract("components")["modules"])


def test_every_module_is_in_a_layer() -> None:
    """A layers contract says nothing about a module it does not name: a new module outside
    every layer would be unchecked."""
    layers = [
        name.strip()
        for layer in contract("layers")["layers"]
        for name in re.split(r"[|:]", layer)
        if name.strip()
    ]
    outside = sorted(
        module
        for module in map(module_name, source_files())
        if module not in PACKAGES and owner(module, layers) is None
    )
    assert outside == [], f"modules in no layer of the layers contract (pyproject.toml): {outside}"


def _imports(path: Path) -> Iterator[tuple[int, str, list[str]]]:
    """(line, module, names) of every absolute import, module level, lazy or TYPE_CHECKING."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []


def _public_names(module: str) -> set[str] | None:
    """The static ``__all__`` of a project module (None when it has none)."""
    base = ROOT / module.replace(".", "/")
    path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return set(ast.literal_eval(node.value))
    return None


def cross_component_imports() -> Iterator[tuple[str, int, str, list[str]]]:
    packages = components()
    for path in source_files():
        me = module_name(path)
        mine = owner(me, packages)
        if mine is None or me == "serving.service":  # an entry point (the `layers` contract)
            continue
        for line, module, names in _imports(path):
            theirs = owner(module, packages)
            if theirs is not None and theirs != mine:
                yield f"{path.relative_to(ROOT)}:{line}", line, module, names


def test_components_import_each_other_by_public_names_only() -> None:
    """Another component is imported by name (`from m import x`) from a module that declares
    ``__all__``, and only names in it: its public surface, not whatever a module happens to hold."""
    bad = []
    for where, _, module, names in cross_component_imports():
        public = _public_names(module) if names else None
        if not names:
            bad.append(f"{where}: `import {module}` (import the public names instead)")
        elif public is None:
            bad.append(f"{where}: {module} has no __all__")
        elif hidden := sorted(set(names) - public):
            bad.append(f"{where}: {hidden} not in {module}.__all__")
    assert bad == [], "\n".join(bad)


def test_the_public_names_check_sees_the_allowlisted_imports() -> None:
    """Not vacuous: it finds the cross-component imports the allowlist names, lazy ones too."""
    seen = {(where.split(":")[0], module) for where, _, module, _ in cross_component_imports()}
    assert ("serving/model_source.py", "registry_ext") in seen  # lazy, inside a method
    assert ("churnops/retraining/orders.py", "registry_ext") in seen  # TYPE_CHECKING and lazy
    assert ("monitoring/performance.py", "churnops.training.metrics") in seen


def test_the_allowlist_is_the_documented_one() -> None:
    """The `components` contract's ignore_imports (``<component>.** -> <module>``) are exactly
    the rows of docs/architecture.md's allowlist table."""
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([\w.]+)` \| `([\w.]+)` \| [^|]+\|$", doc, flags=re.M))
    edges = [
        tuple(side.strip().removesuffix(".**") for side in edge.split("->"))
        for edge in contract("components")["ignore_imports"]
        if not edge.startswith("serving.service ")  # an entry point's imports (the `layers` contract)
    ]
    assert len(edges) == len(set(edges)), "an allowlist edge is listed twice"
    assert set(edges) == documented, (
        f"only in pyproject.toml: {sorted(set(edges) - documented)}; "
        f"only in docs/architecture.md: {sorted(documented - set(edges))}"
    )


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


def test_every_directly_imported_package_is_declared() -> None:
    """A shipped module may import only the standard library, the project and declared packages."""
    import sys
    from importlib.metadata import packages_distributions

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

    def normal(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    # the base dependencies and the optional extras (an extra's modules import its packages)
    extras = project["optional-dependencies"].values()
    deps = [*project["dependencies"], *(d for extra in extras for d in extra)]
    declared = {normal(re.split(r"[\[<>=!~ ]", dep, maxsplit=1)[0]) for dep in deps}
    providers = packages_distributions()
    missing: dict[str, list[str]] = {}
    for path in [*source_files(), *sorted((ROOT / "feature_repo").glob("*.py"))]:
        for _, name, _ in _imports(path):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in (*PACKAGES, "feature_repo"):
                continue
            dists = {normal(d) for d in providers.get(top, [top])}
            if not dists & declared:
                missing.setdefault(top, []).append(str(path.relative_to(ROOT)))
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
