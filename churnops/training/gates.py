"""Declarative quality gates: a policy file, and a pure function that judges a candidate.

The policy (YAML, see ``churnops/policies/gates.yaml``) has:

- ``floors``: ``metric: minimum`` on the candidate's test metrics (e.g. ``roc_auc: 0.70``);
- ``ceilings``: ``metric: maximum`` (the calibration guard, e.g. ``brier: 0.20``);
- ``relative``: versus the current Production version scored on the **same** test rows:
  the gain in ``metric`` (candidate over Production) with its paired-bootstrap interval
  (``interval_level``, ``resamples``, ``seed``; computed by :func:`churnops.training.gain.gain_interval`
  and passed in): the candidate is better only when the interval's **lower bound** is at least
  ``min_improvement`` (rule ``min_improvement:<metric>``). With ``non_inferiority`` (``margin``,
  ``triggers``), a candidate trained for one of those triggers (e.g. ``scheduled``: a fresher
  model) passes when the lower bound is at least ``-margin`` instead (rule
  ``non_inferiority:<metric>``). ``max_slice_regression``, ``slice: maximum drop`` of
  ``metric`` on named slices;
- ``slices``: the named slices (``column`` == ``equals``), also reported as metrics.

Any non-finite metric fails its rule and the ``finite_metrics`` rule. A relative rule passes
as *skipped* when there is no Production version, and fails when a value it needs is missing.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from churnops.contracts.bootstrap import HEADLINE_METRICS
from churnops.contracts.metric_directions import improvement
from churnops.contracts.policy_files import ShippedPolicy, read_policy, shipped_policy_path
from churnops.contracts.stages import Trigger, choices
from churnops.training.errors import GatePolicyError
from churnops.training.gain import GainInterval, level_label, signed
from churnops.training.metrics import METRICS, SliceSpec

Comparator = Literal[">=", "<="]
MIN_IMPROVEMENT = "min_improvement"
NON_INFERIORITY = "non_inferiority"
GAIN_RULES = (MIN_IMPROVEMENT, NON_INFERIORITY)
"""The rules judged on the gain's interval: a candidate failing only these is sound, not better."""


class SliceDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    column: str
    equals: str | int | float


class NonInferiority(BaseModel):
    """Promote a fresher model trained for one of ``triggers`` when it is not worse than
    Production by more than ``margin`` (the lower bound of the gain's interval >= -margin)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    margin: float = Field(gt=0, allow_inf_nan=False)
    triggers: tuple[Trigger, ...]

    @field_validator("triggers")
    @classmethod
    def _at_least_one(cls, triggers: tuple[Trigger, ...]) -> tuple[Trigger, ...]:
        if not triggers:
            raise ValueError(f"name at least one trigger ({choices(Trigger)})")
        return triggers


class RelativeRules(BaseModel):
    """Versus Production on the same rows (every setting required: the shipped
    ``churnops/policies/gates.yaml`` is the one home of the defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    metric: str
    min_improvement: float = Field(allow_inf_nan=False)
    interval_level: float = Field(gt=0, lt=1)
    resamples: int = Field(ge=100, le=100_000)
    seed: int = Field(ge=0)
    non_inferiority: NonInferiority | None
    max_slice_regression: dict[str, float]

    def rule_for(self, trigger: Trigger | str) -> tuple[str, float]:
        """The relative rule a candidate trained for ``trigger`` is judged by, and the bound its
        gain's lower bound must reach: ``min_improvement`` or (non-inferiority) ``-margin``."""
        ni = self.non_inferiority
        if ni is not None and Trigger.parse(trigger) in ni.triggers:
            return f"{NON_INFERIORITY}:{self.metric}", -ni.margin
        return f"{MIN_IMPROVEMENT}:{self.metric}", self.min_improvement


class GatePolicy(BaseModel):
    """A validated gate policy (see the module docstring for the meaning of each part)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    floors: dict[str, float]
    ceilings: dict[str, float]
    relative: RelativeRules
    slices: dict[str, SliceDefinition]
    min_slice_rows: int = Field(ge=1)

    @model_validator(mode="after")
    def _known_names(self) -> GatePolicy:
        for part, names in (("floors", self.floors), ("ceilings", self.ceilings)):
            unknown = sorted(set(names) - set(METRICS))
            if unknown:
                raise ValueError(f"{part}: unknown metric(s) {unknown}; known: {', '.join(METRICS)}")
        if self.relative.metric not in HEADLINE_METRICS:
            raise ValueError(
                f"relative.metric: {self.relative.metric!r} has no paired bootstrap; "
                f"use one of {', '.join(HEADLINE_METRICS)}"
            )
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
    return shipped_policy_path(ShippedPolicy.GATES)


def load_policy(path: Path | None = None) -> GatePolicy:
    """Read and validate a policy file (the packaged default when ``path`` is None)."""
    source = path if path is not None else default_policy_path()
    return read_policy(
        source, kind=ShippedPolicy.GATES, model=GatePolicy, what="gate policy", error=GatePolicyError
    )


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
    gain: GainInterval | None = None
    """The gain's paired-bootstrap interval the rule judged (the relative gain rules only)."""
    verdict: str | None = None
    """The gain rules' one-line verdict: ``gain +0.0022 [95% CI -0.0041, +0.0087] does not
    clear min_improvement 0.0010``."""


@dataclass(frozen=True)
class GateReport:
    policy: str
    policy_digest: str
    passed: bool
    results: tuple[GateResult, ...]
    production_version: int | None
    trigger: str | None = None
    """Why the candidate was trained: it picks the relative rule (non-inferiority or not)."""

    @property
    def failures(self) -> list[GateResult]:
        return [r for r in self.results if not r.passed]

    @property
    def not_better(self) -> bool:
        """Failed only because the gain's interval does not clear the bar (a sound model, e.g.
        the same data trained again, or better by noise only): not an alarm, no new version."""
        failures = self.failures
        return bool(failures) and all(r.rule.split(":", 1)[0] in GAIN_RULES for r in failures)

    def summary(self) -> str:
        """One line a person reads: why there is no new version (or that every gate passed)."""
        if self.passed:
            return "every gate passed"
        if self.not_better:
            (rule,) = self.failures
            verdict = rule.verdict or rule.detail
            if rule.rule.startswith(NON_INFERIORITY):
                return f"the candidate may be worse than Production by more than the margin: {verdict}"
            return f"the candidate is not better than Production: {verdict}"
        return "gate(s) failed: " + ", ".join(r.rule for r in self.failures)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (non-finite values become ``None`` with the detail saying so)."""

        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and not math.isfinite(v) else v

        def result(r: GateResult) -> dict[str, Any]:
            out = {**asdict(r), "value": clean(r.value), "threshold": clean(r.threshold)}
            if r.gain is not None:
                out["gain"] = {k: clean(v) for k, v in asdict(r.gain).items()}
            return out

        return {
            "policy": self.policy,
            "policy_digest": self.policy_digest,
            "passed": self.passed,
            "production_version": self.production_version,
            "trigger": self.trigger,
            "results": [result(r) for r in self.results],
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
    trigger: Trigger | str,
    gain: GainInterval | None = None,
    production_version: int | None = None,
) -> GateReport:
    """Judge a candidate against the policy (and the Production version on the same rows).

    ``gain`` is the paired-bootstrap interval of the candidate's gain over Production on those
    rows, computed with the policy's ``relative`` settings (:func:`churnops.training.gain.gain_interval`);
    a Production version without it fails the relative rule. ``trigger`` (why the candidate was
    trained) picks that rule: non-inferiority for the policy's ``non_inferiority.triggers``, else
    ``min_improvement``.
    """
    trigger = Trigger.parse(trigger)
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
    improvement_rule, bound = rel.rule_for(trigger)
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
            _gain_rule(
                improvement_rule, gain, bound, rules=rel, trigger=trigger, candidate=cand, production=prod
            )
        )
        for rule, name, limit in slice_rules:
            c = candidate.slices.get(name, {}).get(metric)
            p = production.slices.get(name, {}).get(metric)
            drop = None if c is None or p is None else -improvement(metric, c - p)  # how much worse
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
        trigger=trigger.value,
    )


def _gain_rule(
    rule: str,
    gain: GainInterval | None,
    bound: float,
    *,
    rules: RelativeRules,
    trigger: Trigger,
    candidate: float | None,
    production: float | None,
) -> GateResult:
    """Pass when the lower bound of the gain's interval reaches ``bound`` (inclusive)."""
    metric = rules.metric
    if gain is None:
        missing = f"test {metric}: the paired-bootstrap interval of the gain is missing"
        return GateResult(rule, False, missing, None, bound, ">=")
    if gain.metric != metric or gain.level != rules.interval_level:
        raise ValueError(
            f"the gain interval is for {gain.metric} at {level_label(gain.level)}; the policy asks for "
            f"{metric} at {level_label(rules.interval_level)}"
        )
    values = ", ".join(
        f"{who} {v:.4f}" for who, v in (("candidate", candidate), ("production", production)) if v is not None
    )
    context = f" [{values}; {gain.used:,} paired resamples of {gain.rows:,} rows]"
    if not (math.isfinite(gain.low) and math.isfinite(gain.estimate)):
        return GateResult(
            rule,
            False,
            f"test {metric} gain is non-finite (no resample had both classes?){context}",
            gain.low,
            bound,
            ">=",
            gain=gain,
        )
    ok = gain.low >= bound
    decimals = _decimals(gain.low, bound)
    clears = "clears" if ok else "does not clear"
    if rule.startswith(NON_INFERIORITY):
        margin = f"{-bound:.{decimals}f}"
        requirement = (
            f"the non-inferiority margin {margin} (trigger {trigger.value}: lower bound "
            f"{'>=' if ok else '<'} {signed(bound, decimals)})"
        )
    else:
        shown = f"{bound:.{decimals}f}"
        requirement = f"min_improvement {shown.removeprefix('-') if float(shown) == 0 else shown}"
    verdict = f"{metric} gain {gain.shown(decimals=decimals)} {clears} {requirement}"
    return GateResult(
        rule,
        ok,
        f"test {verdict}{context}",
        gain.low,
        bound,
        ">=",
        gain=gain,
        verdict=verdict,
    )


def _decimals(value: float, threshold: float) -> int:
    """4, or as many more decimals as it takes for unequal numbers to differ when shown."""
    for decimals in range(4, 10):
        a, b = (f"{x:.{decimals}f}" for x in (value, threshold))
        if a != b or value == threshold:
            return decimals
    return 10
