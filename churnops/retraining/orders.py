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
    decision_id: int | None = None,
) -> RetrainOrder:
    """The order for a retrain of ``registry.model_name``: the decision ``decision_id`` (else the
    latest one), which must have fired and produced no version yet; or, when ``forced``, a new
    fired decision recorded now."""
    from registry_ext.decisions import append_decision, get_decision, list_decisions

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
    if decision_id is not None:
        asked = get_decision(registry.engine, decision_id=decision_id)
        latest = [] if asked is None or asked.name != name else [asked]
        which = f"decision {decision_id}"
    else:
        latest = list_decisions(registry.engine, name=name, limit=1)
        which = "the latest retrain decision"
    trigger = latest[0].trigger if latest and latest[0].fired else None
    if trigger is None:
        raise NoDecisionError(
            f"{which} did not fire (or there is none for model {name!r}): run `churnops retrain check` "
            "first, or force one with --trigger manual"
        )
    decision = latest[0]
    done = acted_on(registry=registry, decision_id=decision.id)
    if done is not None:
        raise NoDecisionError(
            f"decision {decision.id} was already acted on ({done}); run `churnops retrain check` "
            "again, or force a retrain with --trigger manual"
        )
    return RetrainOrder(trigger=trigger, decision_id=decision.id, drift_report=decision.report)


def acted_on(*, registry: ModelRegistry, decision_id: int) -> str | None:
    """How decision ``decision_id`` was already acted on (a version, or a finished training run
    whose candidate failed its gates), or None: one verdict gets one retrain, whatever its
    outcome. A run that crashed (status FAILED) does not count: the decision can be retried."""
    for version in registry.all_versions():
        if version.tags.get(TAG_DECISION) == str(decision_id):
            return f"it produced version {version.version}"
    client = registry.client
    experiments = [e.experiment_id for e in client.search_experiments()]
    if experiments:
        runs = client.search_runs(
            experiments,
            filter_string=f"tags.`{TAG_DECISION}` = '{decision_id}' AND attributes.status = 'FINISHED'",
            max_results=1,
        )
        if runs:
            return f"training run {runs[0].info.run_id} registered no version"
    return None
