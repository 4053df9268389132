"""One home per fact: a shared literal appears in the source only where it is defined.

Each entry is a quoted literal and the one file allowed to spell it; every other module imports
the constant. A failure names the files that re-declare it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("churnops", "registry_ext", "serving", "monitoring", "feature_repo")

HOMES = {
    '"churn_v1"': "churnops/contracts/columns.py",  # the FeatureService name: FEATURE_SERVICE
}


def _sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


@pytest.mark.parametrize(("literal", "home"), sorted(HOMES.items()))
def test_a_shared_literal_appears_only_in_its_home(literal: str, home: str) -> None:
    spelled = [str(p.relative_to(ROOT)) for p in _sources() if literal in p.read_text(encoding="utf-8")]
    assert spelled == [home]


def test_the_policy_defaults_live_only_in_the_shipped_policy_files() -> None:
    """No ``default_*.yaml`` beside a component: the shipped files are all in churnops/policies/."""
    stray = [
        str(p.relative_to(ROOT)) for package in PACKAGES for p in (ROOT / package).rglob("default_*.yaml")
    ]
    assert stray == []
    assert sorted(p.name for p in (ROOT / "churnops" / "policies").glob("*.yaml")) == [
        "drift.yaml",
        "gates.yaml",
        "retrain.yaml",
    ]
