"""The drift policy file: the packaged default loads, and bad files say what and how to fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from churnops.contracts.policy_files import ShippedPolicy, shipped_with
from monitoring.errors import DriftPolicyError
from monitoring.policy import DriftPolicy, default_policy_path, load_policy
from tests.support.policies import write_over_shipped


def test_the_packaged_default_loads_with_its_calibrated_thresholds() -> None:
    policy = load_policy()
    assert policy.name == "default"  # the file names itself
    assert policy.reference_rows == 100_000
    assert policy.data_drift.threshold("monthly_charges") == policy.data_drift.default_threshold == 0.1
    assert policy.data_drift.threshold("tenure") == 0.3  # ageing allowance
    assert policy.concept_drift.min_statistic == 0.012
    assert default_policy_path().is_file()


def test_a_partial_policy_file_is_laid_over_the_shipped_one(tmp_path: Path) -> None:
    """The shipped file is the one home of the defaults: a team's file holds only what it changes;
    a named map (``thresholds``) is replaced whole, a section merged setting by setting."""
    path = tmp_path / "mine.yaml"
    path.write_text("data_drift:\n  thresholds: {gender: 0.5}\nconcept_drift: {alpha: 0.05}\n")
    policy, shipped = load_policy(path), load_policy()
    assert policy.data_drift.threshold("gender") == 0.5
    assert policy.data_drift.threshold("tenure") == shipped.data_drift.default_threshold  # map replaced
    assert policy.concept_drift.alpha == 0.05
    assert policy.concept_drift.min_statistic == shipped.concept_drift.min_statistic == 0.012
    assert policy.min_current_rows == shipped.min_current_rows


def test_an_edited_copy_of_the_shipped_file_changes_what_it_says(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    data = shipped_with(
        ShippedPolicy.DRIFT, {"data_drift": {"thresholds": {"gender": 0.5}}}, model=DriftPolicy
    )
    path.write_text(yaml.safe_dump({**data, "name": "mine"}))
    policy = load_policy(path)
    assert policy.name == "mine"
    assert policy.data_drift.threshold("gender") == 0.5
    assert policy.data_drift.threshold("tenure") == 0.1  # the thresholds map replaced the shipped one
    assert policy.concept_drift == load_policy().concept_drift  # untouched sections are the shipped ones
    assert policy.digest() != load_policy().digest()


def test_every_problem_is_named_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    write_over_shipped(
        path,
        ShippedPolicy.DRIFT,
        "min_current_rows: 0\n"
        "data_drift:\n  thresholds: {tenur: 0.3}\n"
        "prediction_drift: {threshold: 2}\n"
        "concept_drift: {alpha: 1.5, typo: 1}\n",
    )
    with pytest.raises(DriftPolicyError) as caught:
        load_policy(path)
    message = str(caught.value)
    for expected in (
        "min_current_rows",
        "tenur",
        "churnops.contracts.columns.FEATURES",
        "prediction_drift.threshold",
        "concept_drift.alpha",
        "concept_drift.typo",
    ):
        assert expected in message, expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("- a\n- b\n", "mapping"), ("a: [\n", "not valid YAML")],
)
def test_unusable_files_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(DriftPolicyError, match=expected):
        load_policy(path)
    with pytest.raises(DriftPolicyError, match="cannot be read"):
        load_policy(tmp_path / "missing.yaml")
