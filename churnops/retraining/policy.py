"""The declarative retraining policy: when a check fires, and what a retrain does afterwards.

YAML (see ``default_retrain.yaml`` next to this module), validated like the gate policy: an
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
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from churnops.contracts.policy_files import describe, read_policy
from churnops.retraining.cron import Cron, CronError

DEFAULT_POLICY = "default_retrain.yaml"


class RetrainPolicyError(ValueError):
    """A retraining policy file that cannot be read or is invalid (every problem named)."""


class PerformanceTrigger(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True
    min_roc_auc: float = Field(default=0.70, ge=0.0, le=1.0)
    max_drop: float = Field(default=0.05, ge=0.0, le=1.0)
    min_labelled_rows: int = Field(default=200, ge=1)


class DriftTrigger(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True
    max_drifted_share: float = Field(default=0.30, gt=0.0, le=1.0)
    max_prediction_js: float = Field(default=0.10, gt=0.0, le=1.0)
    concept: bool = True
    consecutive_windows: int = Field(default=2, ge=1, le=100)


class RetrainPolicy(BaseModel):
    """A validated retraining policy (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = "default"
    schedule: str | None = None
    performance: PerformanceTrigger = Field(default_factory=PerformanceTrigger)
    drift: DriftTrigger = Field(default_factory=DriftTrigger)
    cooldown_hours: float = Field(default=24.0, ge=0.0)
    max_retrains: int = Field(default=4, ge=1)
    period_days: float = Field(default=30.0, gt=0.0)
    window_days: int = Field(default=365, ge=1)
    label_maturity_days: int = Field(default=31, ge=0, le=366)
    promote_to: Literal["Staging", "Production"] = "Production"

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
    return Path(str(resources.files("churnops.retraining").joinpath(DEFAULT_POLICY)))


def parse_policy(data: object, *, source: str = "retrain policy") -> RetrainPolicy:
    """Validate a mapping; :class:`RetrainPolicyError` lists every bad field and what is expected."""
    if not isinstance(data, dict):
        raise RetrainPolicyError(f"{source}: expected a mapping at the top level")
    try:
        return RetrainPolicy.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(describe(e) for e in error.errors())
        raise RetrainPolicyError(f"{source}: {problems}") from None


def load_policy(path: Path | None = None) -> RetrainPolicy:
    """Read and validate a policy file (the packaged default when ``path`` is None)."""
    source = path if path is not None else default_policy_path()
    return read_policy(source, model=RetrainPolicy, what="retrain policy", error=RetrainPolicyError)
