"""One retraining check: the latest monitoring windows + past decisions -> ``decide`` -> a row in
``retrain_decisions``. Shared by ``churnops retrain check``, the orchestrator's sensor and the
policy backtest, so all three decide by the same rule on the same records.

The cooldown and the cap count only retrains that finished (registered, promoted, refused). A
check never cancels a fired decision nobody finished: while one is pending, a check that would
fire is recorded as not fired, suppressed by ``pending``, with a reason naming the pending
decision and the command that finishes it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from churnops.contracts.decisions import FINISHED
from churnops.contracts.mlflow_keys import TEST_ROC_AUC
from churnops.contracts.stages import Stage, Trigger
from churnops.retraining.decide import PastDecision, decide
from churnops.retraining.observations import read_monitoring_windows
from churnops.retraining.policy import RetrainPolicy

if TYPE_CHECKING:
    from registry_ext import DecisionRecord, ModelRegistry


def production_since(registry: ModelRegistry) -> datetime | None:
    """When the current Production version got there (its latest transition to Production)."""
    production = registry.production()
    if production is None:
        return None
    times = [t.time for t in registry.audit(version=production.version) if t.to_stage == Stage.PRODUCTION]
    return max(times) if times else production.created


def past_retrains(records: Sequence[DecisionRecord]) -> list[PastDecision]:
    """What the cooldown and the cap count: each decision, ``fired`` only when its retrain
    finished (registered, promoted, refused), not a fire nobody acted on, nor a crash."""
    return [PastDecision(time=d.time, fired=d.state in FINISHED, trigger=d.trigger) for d in records]


def check_and_record(
    *, registry: ModelRegistry, policy: RetrainPolicy, now: datetime, actor: str
) -> DecisionRecord:
    """Evaluate ``policy`` at ``now`` for the Production version and append the decision."""
    from churnops.retraining.orders import resume_command
    from registry_ext import append_decision, list_decisions, pending_decision

    production = registry.production()
    windows = []
    reference = None
    if production is not None:
        windows = read_monitoring_windows(
            client=registry.client, model_name=registry.model_name, model_version=str(production.version)
        )
        # absent on a version adopted from a run without it: decide() then judges no drop
        reference = production.metrics.get(TEST_ROC_AUC)
    past = past_retrains(list_decisions(registry.engine, name=registry.model_name))
    decision = decide(
        policy=policy,
        now=now,
        windows=windows,
        past=past,
        reference_roc_auc=reference,
        production_since=production_since(registry),
    )
    doc = decision.to_dict()
    fired, suppressed, reasons = decision.fired, decision.suppressed_by, list(doc["reasons"])
    pending = pending_decision(registry.engine, name=registry.model_name)
    if pending is not None:
        if fired:
            fired, suppressed = False, "pending"
        reasons.append(
            {
                "trigger": (pending.trigger or Trigger.MANUAL).value,
                "check": "pending",
                "met": True,
                "detail": f"decision {pending.id} fired and is {pending.state.value}: "
                f"`{resume_command(pending.id)}` finishes it",
                "value": float(pending.id),
                "threshold": None,
            }
        )
    return append_decision(
        registry.engine,
        name=registry.model_name,
        time=decision.time,
        fired=fired,
        trigger=decision.trigger,
        suppressed_by=suppressed,
        model_version=decision.model_version or (None if production is None else str(production.version)),
        report=decision.report,
        policy=policy.label(),
        actor=actor,
        reasons=reasons,
    )


def fail_killed_runs_if_idle(*, registry: ModelRegistry, holder: str) -> list[str]:
    """Mark FAILED the MLflow runs of killed retrains, when no retrain of the model is running
    (the retrain lease is free: taken for the sweep, then released); [] when one is running."""
    from churnops.retraining.orders import fail_killed_runs, holder_is_dead
    from registry_ext import Lease, try_acquire

    got = try_acquire(
        registry.engine,
        key=f"retrain:{registry.model_name}",
        holder=holder,
        ttl_s=60.0,
        take_over=holder_is_dead,
    )
    if not isinstance(got, Lease):
        return []
    try:
        return fail_killed_runs(registry=registry)
    finally:
        got.release()
