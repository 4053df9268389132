"""Replay history month by month on generated data, once per policy, through the real loop.

For every policy the replay gets its own embedded home (Feast over parquet, MLflow SQLite,
registry_ext tables, a parquet prediction log) holding the same generated data. At the start
the model is trained on the labels known then (a forced ``manual`` retrain, so it is the first
retrain the cooldown and the cap see) and promoted. Then, for each replayed month ``t`` (the 1st
of the month), at ``now = t + 3 days``:

1. the Production version batch-scores every active customer as of ``t`` into the prediction log;
2. a drift report judges that month's scores (data and prediction drift) and the previous
   month's, whose labels have matured (concept drift, matured ROC-AUC), when the policy has a
   drift or performance trigger (a report cannot change a schedule-only decision);
3. the retraining check decides and records its decision;
4. when it fired: a challenger on the policy's window, gated against the champion on the same
   newest rows, promoted per the policy; it serves from the next month on.

At the end every month's scores are joined to their labels (all matured by then) and scored
by ROC-AUC per month. Nothing is shortcut: these are :mod:`churnops.jobs`' functions, the same
the CLI and the orchestrator call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from churnops.contracts.stages import Trigger
from churnops.retraining import RetrainPolicy
from churnops.settings import Settings
from churnops.simulation.policies import needs_monitoring

CHECK_DELAY = timedelta(days=3)  # the monthly check runs this long after the snapshot
FINAL_MATURITY = timedelta(days=62)  # every replayed month's labels are known this long after the last


class SimulationError(ValueError):
    """A backtest that cannot run as asked (the message names the option and the fix)."""


@dataclass(frozen=True)
class SimulationSpec:
    """The generated history: ``warmup_months`` to train the first model on, then ``months`` replayed."""

    months: int
    customers: int = 4000
    seed: int = 42
    start: date = date(2024, 1, 1)
    warmup_months: int = 6
    data_drift_from: date | None = None
    concept_drift_from: date | None = None

    def problems(self) -> list[str]:
        found = []
        if not 2 <= self.months <= 48:
            found.append(f"--months {self.months}: replay between 2 and 48 months")
        if not 3 <= self.warmup_months <= 36:
            found.append(f"--warmup-months {self.warmup_months}: between 3 and 36")
        if self.customers < 500:
            found.append(f"--customers {self.customers}: at least 500 (the gates need labelled rows)")
        first = _month_offset(self.start, self.warmup_months)
        last = _month_offset(self.start, self.warmup_months + self.months - 1)
        for option, day in (
            ("--data-drift-from", self.data_drift_from),
            ("--concept-drift-from", self.concept_drift_from),
        ):
            if day is not None and not first <= day <= last:
                found.append(f"{option} {day}: inside the replayed months, {first} .. {last}")
        return found


@dataclass(frozen=True)
class MonthResult:
    month: str  # YYYY-MM of the snapshot scored
    roc_auc: float | None  # of that month's scores on their labels (matured by the end)
    version: int  # the Production version that scored it
    scored: int
    drift_status: str | None  # the drift report's verdict, None when the policy needs none
    decision_id: int
    retrained: bool  # the check fired and a retrain ran
    trigger: str | None
    registered: int | None  # the version the retrain registered (None: its gates failed)
    promoted: bool  # Production changed
    note: str


@dataclass(frozen=True)
class PolicyRun:
    name: str
    label: str  # name@digest of the policy file's content
    initial_version: int
    initial_time: datetime
    months: tuple[MonthResult, ...]
    home: Path

    @property
    def retrains(self) -> int:
        return sum(m.retrained for m in self.months)

    @property
    def promotions(self) -> int:
        return sum(m.promoted for m in self.months)

    def mean_roc_auc(self, since: str | None = None) -> float | None:
        values = [
            m.roc_auc for m in self.months if m.roc_auc is not None and (since is None or m.month >= since)
        ]
        return sum(values) / len(values) if values else None

    def to_json(self, *, drift_month: str | None = None) -> dict[str, Any]:
        return {
            "name": self.name,
            "policy": self.label,
            "retrains": self.retrains,
            "promotions": self.promotions,
            "initial": {"time": self.initial_time.isoformat(), "version": self.initial_version},
            "mean_roc_auc": self.mean_roc_auc(),
            "mean_roc_auc_since_drift": None if drift_month is None else self.mean_roc_auc(since=drift_month),
            "months": [asdict(m) for m in self.months],
            "home": str(self.home),
        }


@dataclass(frozen=True)
class Simulation:
    spec: SimulationSpec
    policies: tuple[PolicyRun, ...]
    drift: tuple[str, ...]  # what the generator injected, in words
    seconds: float
    artifacts: dict[str, str] = field(default_factory=dict)

    def policy(self, name: str) -> PolicyRun:
        return next(p for p in self.policies if p.name == name)

    @property
    def drift_month(self) -> str | None:
        """The first month with injected drift (YYYY-MM), or None."""
        days = [d for d in (self.spec.data_drift_from, self.spec.concept_drift_from) if d is not None]
        return f"{min(days):%Y-%m}" if days else None

    def to_json(self) -> dict[str, Any]:
        spec = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in asdict(self.spec).items()}
        return {
            "spec": spec,
            "drift": list(self.drift),
            "seconds": round(self.seconds, 1),
            "drift_month": self.drift_month,
            "policies": [p.to_json(drift_month=self.drift_month) for p in self.policies],
            **({"artifacts": self.artifacts} if self.artifacts else {}),
        }


def _month_offset(start: date, months: int) -> date:
    index = start.year * 12 + start.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def embedded_settings(*, home: Path, gate_policy: Path | None, drift_policy: Path | None) -> Settings:
    """Settings for one replay: everything embedded under ``home``, whatever the environment says
    (a backtest must never write to a real tracking server, registry or online store)."""
    return Settings(
        home=home,
        redis_url=None,
        feast_registry_url=None,
        mlflow_tracking_uri=None,
        artifact_root=None,
        registry_database_url=None,
        serving_prediction_log_url=None,
        pushgateway_url=None,
        gate_policy=gate_policy,
        drift_policy=drift_policy,
        actor="churnops-simulate",
        _env_file=None,
    )


def simulate(
    *,
    spec: SimulationSpec,
    policies: Sequence[tuple[str, RetrainPolicy]],
    workdir: Path,
    gate_policy: Path | None = None,
    drift_policy: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> Simulation:
    """Replay ``spec``'s history once per named policy (see the module docstring)."""
    from churnops.data.generate import generate_churn_data

    problems = spec.problems()
    if problems:
        raise SimulationError("; ".join(problems))
    started = time.perf_counter()
    data = generate_churn_data(
        customers=spec.customers,
        months=spec.warmup_months + spec.months,
        seed=spec.seed,
        start=spec.start,
        data_drift_from=spec.data_drift_from,
        concept_drift_from=spec.concept_drift_from,
    )
    runs = []
    for name, policy in policies:
        runs.append(
            _replay(
                name=name,
                policy=policy,
                data=data,
                spec=spec,
                home=workdir / name,
                gate_policy=gate_policy,
                drift_policy=drift_policy,
                progress=progress or (lambda _message: None),
            )
        )
    return Simulation(
        spec=spec, policies=tuple(runs), drift=data.drift, seconds=time.perf_counter() - started
    )


def _replay(
    *,
    name: str,
    policy: RetrainPolicy,
    data: Any,
    spec: SimulationSpec,
    home: Path,
    gate_policy: Path | None,
    drift_policy: Path | None,
    progress: Callable[[str], None],
) -> PolicyRun:
    from churnops import jobs
    from churnops.data.generate import snapshot_times, write_generated
    from churnops.features.store import apply
    from churnops.wiring import feast_definitions, feature_store, model_source

    settings = embedded_settings(home=home, gate_policy=gate_policy, drift_policy=drift_policy)
    write_generated(data=data, sources_dir=settings.sources_dir)
    apply(store=feature_store(settings), defs=feast_definitions(settings))
    replay = snapshot_times(start=spec.start, months=spec.warmup_months + spec.months)[spec.warmup_months :]

    first = replay[0] + CHECK_DELAY
    progress(f"{name}: training the first model on the labels known at {first:%Y-%m-%d}")
    initial = jobs.retrain(
        settings=settings, policy=policy, gate_policy=gate_policy, forced=Trigger.MANUAL, now=first
    )
    if initial.version is None or initial.production_after != initial.version:
        raise SimulationError(
            f"the first model did not pass its gates ({initial.message}): use more --customers or "
            "--warmup-months, or a gate policy the first model can pass"
        )
    source = model_source(settings)
    months: list[dict[str, Any]] = []
    for t in replay:
        now = t + CHECK_DELAY
        ref = source.production()
        assert ref is not None
        progress(f"{name}: {t:%Y-%m} scored by v{ref.version}")
        scores = jobs.score_production(settings=settings, as_of=t)
        status = None
        if needs_monitoring(policy):
            result, _ = jobs.drift_report(
                settings=settings, version=ref.version, start=t, end=t + timedelta(days=1), as_of=now
            )
            status = result.status
        record = jobs.check_retrain(settings=settings, policy=policy, now=now)
        month: dict[str, Any] = {
            "month": f"{t:%Y-%m}",
            "version": int(ref.version),
            "scored": scores.scored,
            "drift_status": status,
            "decision_id": record.id,
            "retrained": False,
            "trigger": None if record.trigger is None else record.trigger.value,
            "registered": None,
            "promoted": False,
            "note": _not_fired(record),
        }
        if record.fired:
            progress(f"{name}: {t:%Y-%m} retraining ({month['trigger']})")
            retrained = jobs.retrain(
                settings=settings,
                policy=policy,
                gate_policy=gate_policy,
                forced=None,
                decision_id=record.id,
                now=now,
            )
            month.update(
                retrained=True,
                registered=retrained.version,
                promoted=retrained.production_after != retrained.production_before,
                note=retrained.message,
            )
        months.append(month)
    aucs = monthly_roc_auc(settings=settings, as_of=replay[-1] + FINAL_MATURITY)
    return PolicyRun(
        name=name,
        label=policy.label(),
        initial_version=initial.version,
        initial_time=first,
        months=tuple(MonthResult(roc_auc=aucs.get(m["month"]), **m) for m in months),
        home=home,
    )


def _not_fired(record: Any) -> str:
    if record.fired:
        return ""
    if record.suppressed_by:
        due = record.trigger.value if record.trigger else "a trigger"
        return f"{due} due, suppressed by {record.suppressed_by}"
    return "no trigger due"


def monthly_roc_auc(*, settings: Settings, as_of: datetime) -> dict[str, float]:
    """ROC-AUC of each month's logged scores on their labels known at ``as_of`` (by score month)."""
    from sklearn.metrics import roc_auc_score

    from churnops.contracts.columns import LABEL, SCORE
    from churnops.wiring import read_prediction_window
    from monitoring.baseline import read_labels
    from monitoring.performance import matured_outcomes

    log = read_prediction_window(settings, model_name=settings.model_name).to_pandas()
    outcomes = matured_outcomes(
        predictions=log, labels=read_labels(settings.sources_dir), as_of=as_of.astimezone(UTC)
    ).frame
    result: dict[str, float] = {}
    for month, rows in outcomes.groupby(outcomes["ts"].dt.strftime("%Y-%m")):
        if rows[LABEL].nunique() == 2:
            result[str(month)] = float(roc_auc_score(rows[LABEL], rows[SCORE]))
    return result
