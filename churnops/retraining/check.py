"""One retraining check: the latest monitoring windows + past decisions -> ``decide`` -> a row in
``retrain_decisions``. Shared by ``churnops retrain check``, the orchestrator's sensor and the
policy backtest, so all three decide by the same rule on the same records."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from churnops.contracts.stages import Stage
from churnops.retraining.decide import PastDecision, decide
from churnops.retraining.observations import read_monitoring_windows
from churnops.retraining.policy import RetrainPolicy

if TYPE_CHECKING:
    from registry_ext import ModelRegistry
    from registry_ext.decisions import DecisionRecord


def production_since(registry: ModelRegistry) -> datetime | None:
    """When the current Production version got there (its latest transition to Production)."""
    production = registry.production()
    if production is None:
        return None
    times = [t.time for t in registry.audit(version=production.version) if t.to_stage == Stage.PRODUCTION]
    return max(times) if times else production.created


def check_and_record(
    *, registry: ModelRegistry, policy: RetrainPolicy, now: datetime, actor: str
) -> DecisionRecord:
    """Evaluate ``policy`` at ``now`` for the Production version and append the decision."""
    from registry_ext.decisions import append_decision, list_decisions

    production = registry.production()
    windows = []
    reference = None
    if production is not None:
        windows = read_monitoring_windows(
            client=registry.client, model_name=registry.model_name, model_version=str(production.version)
        )
        reference = production.metrics.get("test_roc_auc")
    past = [
        PastDecision(time=d.time, fired=d.fired, trigger=d.trigger)
        for d in list_decisions(registry.engine, name=registry.model_name)
    ]
    decision = decide(
        policy=policy,
        now=now,
        windows=windows,
        past=past,
        reference_roc_auc=reference,
        production_since=production_since(registry),
    )
    doc = decision.to_dict()
    return append_decision(
        registry.engine,
        name=registry.model_name,
        time=decision.time,
        fired=decision.fired,
        trigger=decision.trigger,
        suppressed_by=decision.suppressed_by,
        model_version=decision.model_version or (None if production is None else str(production.version)),
        report=decision.report,
        policy=policy.label(),
        actor=actor,
        reasons=doc["reasons"],
    )
