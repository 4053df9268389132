"""Declarative quality gates: a policy file, and a pure function that judges a candidate.

The policy (YAML, see ``default_gates.yaml`` next to this module) has:

- ``floors``: ``metric: minimum`` on the candidate's test metrics (e.g. ``roc_auc: 0.70``);
- ``ceilings``: ``metric: maximum`` (the calibration guard, e.g. ``brier: 0.20``);
- ``relative``: versus the current Production version scored on the **same** test rows:
  ``min_improvement`` of ``metric`` (candidate - production >= value; 0 means "no worse") and
  ``max_slice_regression``, ``slice: maximum drop`` of ``metric`` on named slices;
- ``slices``: the named slices (``column`` == ``equals``), also reported as metrics.

Any non-finite metric fails its rule and the ``finite_metrics`` rule. A relative rule passes
as *skipped* when there is no Production version, and fails when a value it needs is missing.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from churnops.contracts.policy_files import read_policy
from churnops.training.errors import GatePolicyError
from churnops.training.metrics import METRICS, SliceSpec

DEFAULT_POLICY = "default_gates.yaml"
Comparator = Literal[">=", "<="]


class SliceDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    column: str
    equals: str | int | float


class RelativeRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    metric: str = "roc_auc"
    min_improvement: float = 0.0
    max_slice_regression: dict[str, float] = Field(default_factory=dict)


class GatePolicy(BaseModel):
    """A validated gate policy (see the module docstring for the meaning of each part)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = "default"
    floors: dict[str, float] = Field(default_factory=dict)
    ceilings: dict[str, float] = Field(default_factory=dict)
    relative: RelativeRules = Field(default_factory=RelativeRules)
    slices: dict[str, SliceDefinition] = Field(default_factory=dict)
    min_slice_rows: int = Field(default=50, ge=1)

    @model_validator(mode="after")
    def _known_names(self) -> GatePolicy:
        for part, names in (("floors", self.floors), ("ceilings", self.ceilings)):
            unknown = sorted(set(names) - set(METRICS))
            if unknown:
                raise ValueError(f"{part}: unknown metric(s) {unknown}; known: {', '.join(METRICS)}")
        if self.relative.metric not in METRICS:
            raise ValueError(f"relative.metric: unknown metric {self.relative.metric!r}")
        undefined = sorted(set(self.relative.max_slice_regression) - set(self.slices))
        if undefined:
            raise ValueError(f"relative.max_slice_regression names undefined slice(s) {undefined}")
        for values in (self.floors, self.ceilings, self.relative.max_slice_regression):
            bad = {k: v for k, v in values.items() if not math.isfinite(v)}
            if bad:
                raise ValueError(f"thresholds must be finite numbers: {bad}")
        return self

    def slice_specs(self) -> list[SliceSpec]:
        return [SliceSpec(name=k, column=v.column, equals=v.equals) for k, v in self.slices.items()]

    def digest(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


def default_policy_path() -> Path:
    return Path(str(resources.files("churnops.training").joinpath(DEFAULT_POLICY)))


def load_policy(path: Path | None = None) -> GatePolicy:
    """Read and validate a policy file (the packaged default when ``path`` is None)."""
    source = path if path is not None else default_policy_path()
    return read_policy(source, model=GatePolicy, what="gate policy", error=GatePolicyError)


@dataclass(frozen=True)
class MetricsSnapshot:
    """The test metrics a gate reads: overall, and per slice (a slice may be absent)."""

    overall: Mapping[str, float]
    slices: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class GateResult:
    rule: str
    passed: bool
    detail: str
    value: float | None = None
    threshold: float | None = None
    comparator: Comparator | None = None
    skipped: bool = False


@dataclass(frozen=True)
class GateReport:
    policy: str
    policy_digest: str
    passed: bool
    results: tuple[GateResult, ...]
    production_version: int | None

    @property
    def failures(self) -> list[GateResult]:
        return [r for r in self.results if not r.passed]

    @property
    def not_better(self) -> bool:
        """Failed only because the candidate does not beat Production by the required margin
        (a sound model, e.g. the same data trained again): not an alarm, just no new version."""
        failures = self.failures
        return bool(failures) and all(r.rule.startswith("min_improvement:") for r in failures)

    def summary(self) -> str:
        """One line a person reads: why there is no new version (or that every gate passed)."""
        if self.passed:
            return "every gate passed"
        if self.not_better:
            (rule,) = self.failures
            if rule.value is not None and rule.threshold is not None:
                value, threshold = _shown(rule.value, rule.threshold)
                return f"the candidate is not better than Production ({value} < {threshold} required)"
            return f"the candidate is not better than Production ({rule.detail})"
        return "gate(s) failed: " + ", ".join(r.rule for r in self.failures)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (non-finite values become ``None`` with the detail saying so)."""

        def clean(v: float | None) -> float | None:
            return v if v is None or math.isfinite(v) else None

        return {
            "policy": self.policy,
            "policy_digest": self.policy_digest,
            "passed": self.passed,
            "production_version": self.production_version,
            "results": [
                {**asdict(r), "value": clean(r.value), "threshold": clean(r.threshold)} for r in self.results
            ],
        }


def _shown(value: float, threshold: float) -> tuple[str, str]:
    """Both numbers with 4 decimals, or as many more as it takes for unequal ones to differ."""
    for decimals in range(4, 10):
        a, b = (
            f"{x:.{decimals}f}".replace("-0." + "0" * decimals, "0." + "0" * decimals)
            for x in (value, threshold)
        )
        if a != b or value == threshold:
            return a, b
    return f"{value:.4g}", f"{threshold:.4g}"


_NEGATED: dict[str, str] = {">=": "<", "<=": ">"}


def _compare(value: float, threshold: float, comparator: Comparator) -> bool:
    return value >= threshold if comparator == ">=" else value <= threshold


def _bound_rule(
    rule: str, value: float | None, threshold: float, comparator: Comparator, what: str
) -> GateResult:
    if value is None:
        return GateResult(rule, False, f"{what} is missing", None, threshold, comparator)
    if not math.isfinite(value):
        return GateResult(rule, False, f"{what} is {value} (non-finite)", value, threshold, comparator)
    ok = _compare(value, threshold, comparator)
    shown, bound = _shown(value, threshold)
    # A failing check states what is true, then what was required: "0.0000 < 0.0010 required".
    text = (
        f"{shown} {comparator} {bound}: ok"
        if ok
        else f"{shown} {_NEGATED[comparator]} {bound} required: fails"
    )
    return GateResult(
        rule,
        ok,
        f"{what} = {text}",
        value,
        threshold,
        comparator,
    )


def _non_finite(snapshot: MetricsSnapshot) -> list[str]:
    bad = [k for k, v in snapshot.overall.items() if not math.isfinite(v)]
    for name, values in snapshot.slices.items():
        bad.extend(f"{name}.{k}" for k, v in values.items() if not math.isfinite(v))
    return bad


def evaluate_gates(
    *,
    candidate: MetricsSnapshot,
    production: MetricsSnapshot | None,
    policy: GatePolicy,
    production_version: int | None = None,
) -> GateReport:
    """Judge a candidate against the policy (and the Production version on the same rows)."""
    results: list[GateResult] = []
    bad = _non_finite(candidate)
    results.append(
        GateResult(
            "finite_metrics",
            not bad,
            f"non-finite candidate metric(s): {', '.join(bad)}"
            if bad
            else "every candidate metric is finite",
        )
    )
    for metric, floor in policy.floors.items():
        results.append(
            _bound_rule(f"floor:{metric}", candidate.overall.get(metric), floor, ">=", f"test {metric}")
        )
    for metric, ceiling in policy.ceilings.items():
        results.append(
            _bound_rule(f"ceiling:{metric}", candidate.overall.get(metric), ceiling, "<=", f"test {metric}")
        )
    rel = policy.relative
    metric = rel.metric
    improvement_rule = f"min_improvement:{metric}"
    slice_rules = [
        (f"max_slice_regression:{name}:{metric}", name, limit)
        for name, limit in rel.max_slice_regression.items()
    ]
    if production is None:
        note = "no Production version to compare with: skipped"
        results.append(GateResult(improvement_rule, True, note, skipped=True))
        results.extend(GateResult(rule, True, note, skipped=True) for rule, _, _ in slice_rules)
    else:
        cand, prod = candidate.overall.get(metric), production.overall.get(metric)
        results.append(
            _relative_rule(improvement_rule, cand, prod, rel.min_improvement, what=f"test {metric}")
        )
        for rule, name, limit in slice_rules:
            c = candidate.slices.get(name, {}).get(metric)
            p = production.slices.get(name, {}).get(metric)
            drop = None if c is None or p is None else p - c
            if c is None or p is None:
                missing = "candidate" if c is None else "production"
                results.append(GateResult(rule, False, f"slice {name}: {missing} {metric} is missing"))
            else:
                result = _bound_rule(
                    rule, drop, limit, "<=", f"slice {name} {metric} drop (production - candidate)"
                )
                results.append(result)
    return GateReport(
        policy=policy.name,
        policy_digest=policy.digest(),
        passed=all(r.passed for r in results),
        results=tuple(results),
        production_version=production_version,
    )


def _relative_rule(
    rule: str, candidate: float | None, production: float | None, minimum: float, *, what: str
) -> GateResult:
    if candidate is None or production is None:
        missing = "candidate" if candidate is None else "production"
        return GateResult(rule, False, f"{what}: {missing} value is missing", None, minimum, ">=")
    delta = candidate - production
    result = _bound_rule(rule, delta, minimum, ">=", f"{what} improvement (candidate - production)")
    return GateResult(
        result.rule,
        result.passed,
        f"{result.detail} [candidate {candidate:.4f}, production {production:.4f}]",
        result.value,
        result.threshold,
        result.comparator,
    )
