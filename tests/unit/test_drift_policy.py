"""The drift policy file: the packaged default loads, and bad files say what and how to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitoring.errors import DriftPolicyError
from monitoring.policy import DriftPolicy, default_policy_path, load_policy


def test_the_packaged_default_loads_with_its_calibrated_thresholds() -> None:
    policy = load_policy()
    assert policy.name == "default"  # the file names itself
    assert policy.reference_rows == 100_000
    assert policy.data_drift.threshold("monthly_charges") == policy.data_drift.default_threshold == 0.1
    assert policy.data_drift.threshold("tenure") == 0.3  # ageing allowance
    assert policy.concept_drift.min_statistic == 0.012
    assert default_policy_path().is_file()


def test_an_override_file_replaces_only_what_it_says(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("data_drift:\n  thresholds: {gender: 0.5}\nconcept_drift: {alpha: 0.05}\n")
    policy = load_policy(path)
    assert policy.name == "mine"
    assert policy.data_drift.threshold("gender") == 0.5
    assert policy.data_drift.threshold("tenure") == 0.1  # an override file starts from the model's defaults
    assert policy.concept_drift.alpha == 0.05
    assert policy.digest() != DriftPolicy().digest()


def test_every_problem_is_named_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "min_current_rows: 0\n"
        "data_drift:\n  thresholds: {tenur: 0.3}\n"
        "prediction_drift: {threshold: 2}\n"
        "concept_drift: {alpha: 1.5, typo: 1}\n"
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
