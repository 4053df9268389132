"""What a retrain acts on: a named decision, the newest pending one, or a forced one recorded now.

Called under the retrain lease (``run_retrain`` takes it first), so two runs cannot both take
the same decision on, and a forced run records its decision only once it holds the lease: a run
refused as busy leaves no fired decision behind. Decisions are picked by id, never by time.
Every refusal here (nothing fired, already acted on, a pending decision blocks a forced one) is
a :class:`DecisionRefusedError` (the CLI's exit 3); an unknown id is bad input (exit 2).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from churnops.contracts.decisions import DecisionState, claimable
from churnops.contracts.mlflow_keys import DECISION_TAG
from churnops.contracts.stages import Trigger

if TYPE_CHECKING:
    from registry_ext import DecisionRecord, LeaseState, ModelRegistry

log = logging.getLogger(__name__)


class DecisionRefusedError(RuntimeError):
    """The decision cannot be acted on now: it did not fire, it is finished, or another one is
    pending (the message names the command that acts on the right one)."""


NoDecisionError = DecisionRefusedError  # the name earlier releases used


def lease_holder() -> str:
    """Who holds a lease: host, process and a random suffix (unique per acquisition)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_is_dead(state: LeaseState) -> bool:
    """Whether a lease's holder (see :func:`lease_holder`) is a process of this host that no
    longer exists (killed): its lease is taken over at once instead of after its expiry."""
    host, _, rest = state.holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def resume_command(decision_id: int) -> str:
    return f"churnops retrain run --decision {decision_id}"


@dataclass(frozen=True)
class RetrainOrder:
    """Why a retrain runs: its trigger, the decision row that says so, and the report it used."""

    trigger: Trigger
    decision_id: int | None
    drift_report: str | None = None
    decision: DecisionRecord | None = None


def order_from_decisions(
    *,
    registry: ModelRegistry,
    policy_label: str,
    forced: Trigger | None,
    now: datetime,
    actor: str,
    decision_id: int | None = None,
) -> RetrainOrder:
    """The order for a retrain of ``registry.model_name``: decision ``decision_id`` (which must
    have fired and not be finished; a failed one may be retried), else the newest pending one;
    or, when ``forced``, a new fired decision recorded now (refused while one is pending)."""
    from registry_ext import (
        UnknownDecisionError,
        append_decision,
        get_decision,
        pending_decision,
    )

    name = registry.model_name
    if forced is not None:
        waiting = pending_decision(registry.engine, name=name)
        if waiting is not None:
            raise DecisionRefusedError(
                f"decision {waiting.id} fired and is {waiting.state.value}, not finished: finish it "
                f"first with `{resume_command(waiting.id)}`"
            )
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
        return _order(record)
    if decision_id is not None:
        asked = get_decision(registry.engine, decision_id=decision_id)
        if asked is None or asked.name != name:
            raise UnknownDecisionError(
                f"--decision: there is no retrain decision {decision_id} for model {name!r} "
                "(`churnops retrain check` prints the id of the decision it records)"
            )
        if not asked.fired:
            raise DecisionRefusedError(
                f"decision {decision_id} did not fire: nothing to retrain; run `churnops retrain check` "
                "again, or force one with --trigger manual"
            )
        if not claimable(asked.state, named=True):
            raise DecisionRefusedError(
                f"decision {decision_id} was already acted on (it is {asked.state.value}"
                f"{_outcome(asked)}); run `churnops retrain check` again, or force a retrain with "
                "--trigger manual"
            )
        return _order(asked)
    waiting = pending_decision(registry.engine, name=name)
    if waiting is None:
        raise DecisionRefusedError(
            f"no fired retrain decision of model {name!r} is waiting: run `churnops retrain check` "
            "first, or force one with --trigger manual"
        )
    return _order(waiting)


def _order(record: DecisionRecord) -> RetrainOrder:
    trigger = record.trigger or Trigger.MANUAL
    return RetrainOrder(trigger=trigger, decision_id=record.id, drift_report=record.report, decision=record)


def _outcome(record: DecisionRecord) -> str:
    version = record.last_detail(DecisionState.REGISTERED).get("version")
    return "" if version is None else f": version {version}"


def acted_on(*, registry: ModelRegistry, decision_id: int) -> str | None:
    """How decision ``decision_id`` was acted on (its state, when not waiting for a retrain), or
    None while it is pending (fired, or a crashed retrain to resume)."""
    from registry_ext import get_decision

    record = get_decision(registry.engine, decision_id=decision_id)
    if record is None or claimable(record.state, named=False):
        return None
    return f"it is {record.state.value}{_outcome(record)}"


def fail_killed_runs(*, registry: ModelRegistry) -> list[str]:
    """Mark FAILED every MLflow run of a retrain of this model (tagged with one of its decision
    ids) that is still RUNNING.

    Call it only while holding the model's retrain lease: then none of its retrains is running,
    and a RUNNING retrain run is one whose process was killed. Returns the run ids it marked."""
    from registry_ext import get_decision

    client = registry.client
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    marked = []
    for run in client.search_runs(
        experiments, filter_string="attributes.status = 'RUNNING'", max_results=1000
    ):
        tag = run.data.tags.get(DECISION_TAG, "")  # only a retrain's runs carry one
        if not tag.isdigit():
            continue
        decision = get_decision(registry.engine, decision_id=int(tag))
        if decision is None or decision.name != registry.model_name:
            continue
        client.set_terminated(run.info.run_id, status="FAILED")
        log.warning("marked MLflow run %s FAILED: its retrain (decision %s) was killed", run.info.run_id, tag)
        marked.append(run.info.run_id)
    return marked
