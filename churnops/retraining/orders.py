"""What a retrain acts on: the latest fired decision, or a forced one recorded for it.

Called under the retrain lock (``run_retrain`` takes it first), so two runs cannot both act on
the same decision, and a forced run records its decision only once it holds the lock: a run
refused as busy leaves no fired decision behind to count against the cooldown and the cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from churnops.contracts.stages import Trigger

if TYPE_CHECKING:
    from registry_ext import ModelRegistry

TAG_DECISION = "churnops.decision_id"


class NoDecisionError(ValueError):
    """Nothing to act on: the latest decision did not fire, or it already produced a version."""


@dataclass(frozen=True)
class RetrainOrder:
    """Why a retrain runs: its trigger, the decision row that says so, and the report it used."""

    trigger: Trigger
    decision_id: int | None
    drift_report: str | None = None


def order_from_decisions(
    *,
    registry: ModelRegistry,
    policy_label: str,
    forced: Trigger | None,
    now: datetime,
    actor: str,
) -> RetrainOrder:
    """The order for a retrain of ``registry.model_name`` (records the decision when forced)."""
    from registry_ext.decisions import append_decision, list_decisions

    name = registry.model_name
    if forced is not None:
        record = append_decision(
            registry.engine,
            name=name,
            time=now,
            fired=True,
            trigger=forced,
            suppressed_by=None,
            model_version=None,
            report=None,
            policy=policy_label,
            actor=actor,
            reasons=[
                {
                    "trigger": forced.value,
                    "check": "requested",
                    "met": True,
                    "detail": "retrain requested with churnops retrain run --trigger",
                }
            ],
        )
        return RetrainOrder(trigger=forced, decision_id=record.id)
    latest = list_decisions(registry.engine, name=name, limit=1)
    trigger = latest[0].trigger if latest and latest[0].fired else None
    if trigger is None:
        raise NoDecisionError(
            "the latest retrain decision did not fire (or there is none): run `churnops retrain check` "
            "first, or force one with --trigger manual"
        )
    decision = latest[0]
    for version in registry.all_versions():
        if version.tags.get(TAG_DECISION) == str(decision.id):
            raise NoDecisionError(
                f"decision {decision.id} already produced version {version.version}; run "
                "`churnops retrain check` again, or force a retrain with --trigger manual"
            )
    return RetrainOrder(trigger=trigger, decision_id=decision.id, drift_report=decision.report)
