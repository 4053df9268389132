"""The model-directory digest encodes the tree unambiguously (issue 12.5)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from churnops.contracts.artifacts import ArtifactIntegrityError, legacy_sha256_of_path, sha256_of_path
from registry_ext.artifacts import verify

names = st.text(alphabet="abcdefgh.", min_size=1, max_size=6).filter(lambda n: n not in (".", ".."))
trees = st.dictionaries(names, st.binary(max_size=40), min_size=2, max_size=5)


def _write(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir()
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


def _fold(files: dict[str, bytes]) -> dict[str, bytes]:
    """The attack: delete the last file and append ``name NUL bytes`` to the one before it."""
    order = sorted(files)
    victim, host = order[-1], order[-2]
    folded = {name: data for name, data in files.items() if name != victim}
    folded[host] = files[host] + b"\0" + victim.encode() + b"\0" + files[victim]
    return folded


def test_the_fold_attack_fooled_the_legacy_encoding(tmp_path: Path) -> None:
    original = _write(tmp_path / "a", {"MLmodel": b"flavors", "model.skops": b"weights"})
    folded = _write(tmp_path / "b", _fold({"MLmodel": b"flavors", "model.skops": b"weights"}))
    assert legacy_sha256_of_path(original) == legacy_sha256_of_path(folded)
    assert sha256_of_path(original) != sha256_of_path(folded)


@settings(max_examples=60, deadline=None)
@given(files=trees, data=st.data())
def test_any_change_to_a_tree_changes_the_digest(
    tmp_path_factory: pytest.TempPathFactory, files: dict[str, bytes], data: st.DataObject
) -> None:
    base = tmp_path_factory.mktemp("tree")
    original = _write(base / "original", files)
    digest = sha256_of_path(original)
    assert sha256_of_path(_write(base / "folded", _fold(files))) != digest
    # Any other different tree (oracle: the file maps differ) hashes differently too.
    other = data.draw(trees.filter(lambda t: t != files), label="other")
    assert sha256_of_path(_write(base / "other", other)) != digest
    # And the same tree always hashes the same.
    assert sha256_of_path(_write(base / "copy", dict(files))) == digest


def test_a_version_with_a_legacy_digest_is_refused_with_the_reason(tmp_path: Path) -> None:
    model = _write(tmp_path / "model", {"MLmodel": b"flavors", "model.skops": b"weights"})
    with pytest.raises(ArtifactIntegrityError, match="old, ambiguous tree encoding"):
        verify(path=model, expected=legacy_sha256_of_path(model), label="churn v1")
    assert verify(path=model, expected=sha256_of_path(model), label="churn v1") == sha256_of_path(model)
    with pytest.raises(ArtifactIntegrityError, match="mismatch"):
        verify(path=model, expected="0" * 64, label="churn v1")
