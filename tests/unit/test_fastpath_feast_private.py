"""``churnops.features.fastpath.feast_private`` is the one list, and the one door, of the Feast
names outside Feast's documented API: every listed name exists in the installed Feast, the
guarding tests it names exist, and no other module of the project imports or calls one."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
from pathlib import Path

import pytest

from churnops.features.fastpath.feast_private import PRIVATE_API, VERIFIED_FEAST_VERSION

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("churnops", "serving", "monitoring", "registry_ext", "feature_repo")
DOOR = ROOT / "churnops" / "features" / "fastpath" / "feast_private.py"
# Feast's own read path (churnops.features.online, Feast's get_online_features answer turned into
# python values) is not the fast path; it converts values with the function the codec's decoder
# is held to, so both read the same python values.
OUTSIDE_FAST_PATH = {("churnops/features/online.py", "feast.type_map.feast_value_type_to_python_type")}


def resolve(name: str) -> object:
    """The object a dotted name denotes: the longest importable module, then attributes."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            found = getattr(found, attribute)
        return found
    raise ImportError(name)


@pytest.mark.parametrize("api", PRIVATE_API, ids=lambda api: api.name)
def test_every_listed_name_exists_in_the_installed_feast(api) -> None:  # type: ignore[no-untyped-def]
    assert importlib.metadata.version("feast") == VERIFIED_FEAST_VERSION
    assert callable(resolve(api.name)), api.name
    assert api.kind in ("private", "internal")
    assert (api.kind == "private") == any(p.startswith("_") for p in api.name.split(".")), api.name
    for test in api.guarded_by:
        assert (ROOT / test).is_file(), f"{api.name}: guarding test {test} does not exist"


def feast_uses(path: Path) -> list[tuple[int, str]]:
    """(line, dotted name) of every Feast import in a file, and of every attribute access whose
    name is the last part of a listed class attribute (``._parse_connection_string``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    owners = [api.name.split(".")[-2:] for api in PRIVATE_API]
    methods = {name for owner, name in owners if owner[:1].isupper() and not owner.endswith("_pb2")}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "feast":
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "feast"]
        elif isinstance(node, ast.Attribute) and node.attr in methods:
            found.append((node.lineno, f"<attribute>.{node.attr}"))
    return found


def offending(name: str) -> bool:
    """A Feast underscore name, a listed name, or an import from a module a listed name lives in."""
    listed = {api.name for api in PRIVATE_API}
    modules = {api.name.rsplit(".", 1)[0] for api in PRIVATE_API}
    if any(part.startswith("_") for part in name.split(".")) or name in listed:
        return True
    if name.startswith("<attribute>."):
        return True
    return name.rsplit(".", 1)[0] in modules or name in modules


def test_no_module_but_feast_private_touches_feasts_private_api() -> None:
    bad = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == DOOR:
                continue
            where = str(path.relative_to(ROOT))
            for line, name in feast_uses(path):
                if offending(name) and (where, name) not in OUTSIDE_FAST_PATH:
                    bad.append(f"{where}:{line}: {name}")
    assert bad == [], "use churnops.features.fastpath.feast_private instead:\n" + "\n".join(bad)


def test_the_scan_sees_what_it_must_refuse(tmp_path: Path) -> None:
    """Not vacuous: the scan flags each way a private name can be reached, and the door itself."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from feast.infra.online_stores.helpers import _mmh3\n"
        "from feast.infra.key_encoding_utils import deserialize_entity_key\n"
        "import feast.infra.online_stores.redis\n"
        "def f(store):\n"
        "    return store.registry.apply_materialization, Store._get_db_path\n",
        encoding="utf-8",
    )
    assert [offending(name) for _, name in feast_uses(sample)] == [True] * 5
    assert sum(offending(name) for _, name in feast_uses(DOOR)) >= len(PRIVATE_API) - 3
