"""The declarative retraining policy: when a check fires, and what a retrain does afterwards.

YAML (see ``churnops/policies/retrain.yaml``), validated like the gate policy: an
invalid file is refused with every bad field named at once, with the fix. Parts:

- ``schedule``: a 5-field cron line (UTC) or null;
- ``performance``: matured-label ROC-AUC below ``min_roc_auc`` or more than ``max_drop`` below
  the version's own test ROC-AUC, given at least ``min_labelled_rows`` matured labels;
- ``drift``: drifted share / prediction drift over threshold (or concept drift) in
  ``consecutive_windows`` consecutive monitoring windows;
- ``cooldown_hours``, and at most ``max_retrains`` retrains in any ``period_days``;
- ``window_days``: the sliding training window of labels, ending ``label_maturity_days`` before
  now (a label is known only once its churn month is over: a window up to now would train on
  labels the monitoring does not have yet); ``promote_to``: Staging or Production.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from churnops.contracts.policy_files import (
    ShippedPolicy,
    explain,
    read_policy,
    shipped_policy_path,
    shipped_with,
)
from churnops.retraining.cron import Cron, CronError


class RetrainPolicyError(ValueError):
    """A retraining policy file that cannot be read or is invalid (every problem named)."""


class PerformanceTrigger(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool
    min_roc_auc: float = Field(ge=0.0, le=1.0)
    max_drop: float = Field(ge=0.0, le=1.0)
    min_labelled_rows: int = Field(ge=1)


class DriftTrigger(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool
    max_drifted_share: float = Field(gt=0.0, le=1.0)
    max_prediction_js: float = Field(gt=0.0, le=1.0)
    concept: bool
    consecutive_windows: int = Field(ge=1, le=100)


class RetrainPolicy(BaseModel):
    """A validated retraining policy (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    schedule: str | None
    performance: PerformanceTrigger
    drift: DriftTrigger
    cooldown_hours: float = Field(ge=0.0)
    max_retrains: int = Field(ge=1)
    period_days: float = Field(gt=0.0)
    window_days: int = Field(ge=1)
    label_maturity_days: int = Field(ge=0, le=366)
    promote_to: Literal["Staging", "Production"]

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            return Cron.parse(value).expression
        except CronError as error:
            raise ValueError(f"invalid cron: {error}") from None

    def cron(self) -> Cron | None:
        return None if self.schedule is None else Cron.parse(self.schedule)

    def digest(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]

    def label(self) -> str:
        return f"{self.name}@{self.digest()}"


def default_policy_path() -> Path:
    return shipped_policy_path(ShippedPolicy.RETRAIN)


def parse_policy(data: object, *, source: str = "retrain policy") -> RetrainPolicy:
    """The shipped policy overlaid with the settings in ``data`` (nested mappings merged), validated;
    :class:`RetrainPolicyError` lists every bad field and what is expected."""
    if not isinstance(data, dict):
        raise RetrainPolicyError(f"{source}: expected a mapping at the top level")
    try:
        return RetrainPolicy.model_validate(shipped_with(ShippedPolicy.RETRAIN, data, model=RetrainPolicy))
    except ValidationError as error:
        raise RetrainPolicyError(f"{source}: {explain(error)}") from None


def load_policy(path: Path | None = None) -> RetrainPolicy:
    """Read and validate a policy file (the packaged default when ``path`` is None)."""
    source = path if path is not None else default_policy_path()
    return read_policy(
        source,
        kind=ShippedPolicy.RETRAIN,
        model=RetrainPolicy,
        what="retrain policy",
        error=RetrainPolicyError,
    )
