"""One retrain: lock -> (materialize) -> point-in-time training set on the window -> challenger
-> gates against the champion on the same newest rows -> register -> Staging -> Production.

At most one retrain per model runs at a time across processes: ``retrain:<model>`` is taken with
``registry_ext.locking.database_lock`` on the registry database (PostgreSQL advisory lock, or a
``flock`` sidecar on SQLite) for the whole run; a second run waits up to ``lock_timeout_s`` and is
then refused with :class:`RetrainBusyError`. The version carries its provenance as tags
(``churnops.trigger``, ``churnops.decision_id``, ``churnops.drift_report``,
``churnops.window_start/end``) and every audit row it gets names the trigger.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from churnops.contracts.stages import Stage, Trigger
from churnops.retraining.orders import TAG_DECISION, RetrainOrder
from churnops.retraining.policy import RetrainPolicy
from churnops.training import TrainOptions, TrainResult, train
from churnops.training.gates import GatePolicy

if TYPE_CHECKING:
    from feast import FeatureStore

    from registry_ext import ModelRegistry

TAG_TRIGGER = "churnops.trigger"
TAG_DRIFT_REPORT = "churnops.drift_report"
TAG_WINDOW_START = "churnops.window_start"
TAG_WINDOW_END = "churnops.window_end"


__all__ = [
    "TAG_DECISION",
    "TAG_DRIFT_REPORT",
    "TAG_TRIGGER",
    "TAG_WINDOW_END",
    "TAG_WINDOW_START",
    "RetrainBusyError",
    "RetrainResult",
    "TrainingWindow",
    "policy_window",
    "promote_challenger",
    "promote_staged",
    "retrain_lock",
    "run_retrain",
]


class RetrainBusyError(RuntimeError):
    """Another retrain of the same model holds the lock."""


@dataclass(frozen=True)
class TrainingWindow:
    """The labels a retrain learns from: event times in [start, end]."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window: start and end must be timezone-aware (UTC)")
        if self.start >= self.end:
            raise ValueError(
                f"window: start {self.start.isoformat()} must be before end {self.end.isoformat()}"
            )


def policy_window(*, policy: RetrainPolicy, now: datetime) -> TrainingWindow:
    """The policy's sliding window at ``now``: ``window_days`` of labels ending at the newest
    matured one (``label_maturity_days`` before now)."""
    end = now - timedelta(days=policy.label_maturity_days)
    return TrainingWindow(start=end - timedelta(days=policy.window_days), end=end)


@dataclass(frozen=True)
class RetrainResult:
    trigger: Trigger
    decision_id: int | None
    window: TrainingWindow
    train: TrainResult
    version: int | None
    stage: Stage | None
    production_before: int | None
    production_after: int | None
    lock_wait_s: float
    message: str

    @property
    def registered(self) -> bool:
        return self.version is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger.value,
            "decision_id": self.decision_id,
            "window": {"start": self.window.start.isoformat(), "end": self.window.end.isoformat()},
            "version": self.version,
            "stage": None if self.stage is None else self.stage.value,
            "production_before": self.production_before,
            "production_after": self.production_after,
            "lock_wait_s": round(self.lock_wait_s, 3),
            "message": self.message,
            "train": self.train.to_dict(),
        }


def provenance_tags(
    *, trigger: Trigger, decision_id: int | None, drift_report: str | None, window: TrainingWindow
) -> dict[str, str]:
    return {
        TAG_TRIGGER: trigger.value,
        TAG_DECISION: "none" if decision_id is None else str(decision_id),
        TAG_DRIFT_REPORT: drift_report or "none",
        TAG_WINDOW_START: window.start.isoformat(),
        TAG_WINDOW_END: window.end.isoformat(),
    }


def run_retrain(
    *,
    store: FeatureStore,
    registry: ModelRegistry,
    sources_dir: Path,
    policy: RetrainPolicy,
    gate_policy: GatePolicy,
    order: Callable[[ModelRegistry], RetrainOrder],
    window: TrainingWindow,
    now: datetime,
    actor: str | None = None,
    materialize_online: bool = False,
    lock_timeout_s: float = 0.0,
    artifact_location: str | None = None,
    promote: bool = True,
) -> RetrainResult:
    """Retrain ``registry.model_name`` on ``window`` and promote per ``policy.promote_to``.

    A candidate that fails its gates registers nothing and leaves every stage as it was
    (``RetrainResult.version`` is None and ``message`` names the failed rules). ``order`` is
    called once the lock is held (see :mod:`churnops.retraining.orders`): it says why this
    retrain runs, and may record the decision. With ``promote=False`` a version that passed
    stops at Staging and :func:`promote_challenger` takes it on (the orchestrator's own step).
    """
    with retrain_lock(registry=registry, timeout_s=lock_timeout_s) as waited:
        why_run = order(registry)
        if materialize_online:
            from churnops.features.materialize import materialize

            materialize(store=store, end=now)  # serving's store as of now, not the window's end
        before = registry.production()
        production_before = None if before is None else int(before.version)
        result = train(
            store=store,
            client=registry.client,
            registry=registry,
            sources_dir=sources_dir,
            policy=gate_policy,
            options=TrainOptions(
                trigger=why_run.trigger.value,
                actor=actor,
                labels_start=window.start,
                labels_end=window.end,
                version_tags=provenance_tags(
                    trigger=why_run.trigger,
                    decision_id=why_run.decision_id,
                    drift_report=why_run.drift_report,
                    window=window,
                ),
            ),
            artifact_location=artifact_location,
        )
        staged = RetrainResult(
            trigger=why_run.trigger,
            decision_id=why_run.decision_id,
            window=window,
            train=result,
            version=result.version,
            stage=None if result.version is None else Stage.STAGING,
            production_before=production_before,
            production_after=production_before,
            lock_wait_s=waited,
            message=(
                f"{result.registration}; Production unchanged "
                f"({'none' if production_before is None else f'version {production_before}'})"
                if result.version is None
                else f"registered version {result.version} and promoted it to Staging"
            ),
        )
        if result.version is not None:
            registry.promote(
                version=result.version,
                stage=Stage.STAGING,
                reason=_why(trigger=why_run.trigger, decision_id=why_run.decision_id),
                actor=actor,
                trigger=why_run.trigger.value,
            )
        if not promote:
            return staged
        return promote_challenger(registry=registry, staged=staged, policy=policy, actor=actor)


def _why(*, trigger: Trigger, decision_id: int | None) -> str:
    return f"retrain ({trigger.value}, decision {decision_id if decision_id is not None else 'none'})"


def promote_staged(
    *,
    registry: ModelRegistry,
    version: int,
    trigger: Trigger,
    decision_id: int | None,
    policy: RetrainPolicy,
    actor: str | None = None,
) -> bool:
    """Staging -> Production for a retrained ``version`` when the policy says so (True if moved)."""
    if policy.promote_to != Stage.PRODUCTION.value:
        return False
    registry.promote(
        version=version,
        stage=Stage.PRODUCTION,
        reason=_why(trigger=trigger, decision_id=decision_id),
        actor=actor,
        trigger=trigger.value,
    )
    return True


def promote_challenger(
    *, registry: ModelRegistry, staged: RetrainResult, policy: RetrainPolicy, actor: str | None = None
) -> RetrainResult:
    """:func:`promote_staged` for a result (one with no version is returned as it is)."""
    if staged.version is None or not promote_staged(
        registry=registry,
        version=staged.version,
        trigger=staged.trigger,
        decision_id=staged.decision_id,
        policy=policy,
        actor=actor,
    ):
        return staged
    after = registry.production()
    return replace(
        staged,
        stage=Stage.PRODUCTION,
        production_after=None if after is None else int(after.version),
        message=f"registered version {staged.version} and promoted it to Production",
    )


@contextmanager
def retrain_lock(*, registry: ModelRegistry, timeout_s: float) -> Iterator[float]:
    """Hold ``retrain:<model>`` (one retrain per model across processes); yields the seconds waited."""
    from registry_ext.errors import RegistryBusyError
    from registry_ext.locking import database_lock

    key = f"retrain:{registry.model_name}"
    asked = time.monotonic()
    lock = database_lock(registry.engine, key=key, timeout_s=timeout_s)
    try:
        lock.__enter__()
    except RegistryBusyError:
        raise RetrainBusyError(
            f"another retrain of model {registry.model_name!r} is running (lock {key!r} busy for "
            f"{timeout_s:.0f}s); wait for it or retry later"
        ) from None
    try:
        yield time.monotonic() - asked
    finally:
        lock.__exit__(None, None, None)
