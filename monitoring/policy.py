"""The declarative drift policy: thresholds and minimum sizes, read from a YAML file.

The packaged default is ``churnops/policies/drift.yaml`` (every number in it is
justified there and in ``docs/monitoring.md``); a user overrides it with their own file.
Validation errors name every offending field and the fix, all at once, like the gate policy.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from churnops.contracts.columns import feature_names
from churnops.contracts.policy_files import ShippedPolicy, read_policy, shipped_policy_path
from monitoring.errors import DriftPolicyError


class DataDriftRules(BaseModel):
    """Evidently ``kl_div`` per feature: KL(reference || current); drift when score >= threshold."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    default_threshold: float = Field(gt=0)
    thresholds: dict[str, float]

    @model_validator(mode="after")
    def _known_features(self) -> DataDriftRules:
        unknown = sorted(set(self.thresholds) - set(feature_names()))
        if unknown:
            raise ValueError(
                f"unknown feature(s) {unknown}; thresholds are keyed by the names in "
                f"churnops.contracts.columns.FEATURES: {', '.join(feature_names())}"
            )
        bad = {k: v for k, v in self.thresholds.items() if not (math.isfinite(v) and v > 0)}
        if bad:
            raise ValueError(f"thresholds must be finite numbers > 0: {bad}")
        return self

    def threshold(self, feature: str) -> float:
        return self.thresholds.get(feature, self.default_threshold)


class PredictionDriftRules(BaseModel):
    """Evidently ``jensenshannon`` (a distance, natural log, at most sqrt(ln 2) = 0.833) on the score."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    threshold: float = Field(gt=0, le=0.833)


class ConceptDriftRules(BaseModel):
    """Evidently ``ks`` on the randomized PIT of matured outcomes (see monitoring.concept)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    alpha: float = Field(gt=0, lt=1)
    min_statistic: float = Field(ge=0, lt=1)
    min_labelled_rows: int = Field(ge=1)
    min_holdout_rows: int = Field(ge=1)


class DriftPolicy(BaseModel):
    """A validated drift policy (see ``churnops/policies/drift.yaml`` for the meaning of each part)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    min_current_rows: int = Field(ge=1)
    min_reference_rows: int = Field(ge=1)
    reference_rows: int = Field(ge=1)
    current_rows: int = Field(ge=1)
    seed: int = Field(ge=0)
    data_drift: DataDriftRules
    prediction_drift: PredictionDriftRules
    concept_drift: ConceptDriftRules

    def digest(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


def default_policy_path() -> Path:
    return shipped_policy_path(ShippedPolicy.DRIFT)


def load_policy(path: Path | None = None) -> DriftPolicy:
    """Read and validate a drift policy file (the packaged default when ``path`` is None)."""
    source = path if path is not None else default_policy_path()
    return read_policy(
        source, kind=ShippedPolicy.DRIFT, model=DriftPolicy, what="drift policy", error=DriftPolicyError
    )
