"""One retrain, as steps of its decision's state machine (:mod:`churnops.contracts.decisions`):

    lease -> pick the decision -> claimed -> (materialize) -> point-in-time training set on the
    window -> challenger -> gates against the champion on the same newest rows -> trained ->
    register -> registered -> Staging -> Production -> promoted   (or refused / failed)

At most one retrain per model runs at a time across processes: it holds the lease
``retrain:<model>`` (``registry_ext.leases``: a row with a fencing token, renewed by a heartbeat)
for the whole run; a second run waits up to ``lock_timeout_s`` and is then refused with
:class:`RetrainBusyError`. Every write it makes (each decision transition, the registration, each
promotion) checks the lease's token in its own transaction, so a run that lost its lease (paused
past the expiry, and another run took over) writes nothing: :class:`LeaseLostError`.

Each step is recorded before the next starts, so a retrain killed anywhere resumes from its last
step on the next ``churnops retrain run`` (``--decision N`` names it): claimed -> train again;
trained -> register what the gates passed (or adopt the version already registered for the
decision); registered -> promote. The version carries its provenance as tags
(``churnops.trigger``, ``churnops.decision_id``, ``churnops.drift_report``,
``churnops.window_start/end``) and every audit row it gets names the trigger.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from churnops.contracts.decisions import DecisionState, crash_point
from churnops.contracts.mlflow_keys import (
    DECISION_TAG,
    DRIFT_REPORT_TAG,
    RETRAIN_TRIGGER_TAG,
    TRAINING_LABELS_END_TAG,
    TRAINING_LABELS_START_TAG,
)
from churnops.contracts.stages import Stage, Trigger
from churnops.retraining.orders import (
    RetrainOrder,
    fail_killed_runs,
    holder_is_dead,
    lease_holder,
    resume_command,
)
from churnops.retraining.policy import RetrainPolicy
from churnops.training import GatePolicy, TrainOptions, TrainResult, train

if TYPE_CHECKING:
    from feast import FeatureStore

    from registry_ext import DecisionRecord, Lease, ModelRegistry

log = logging.getLogger(__name__)

__all__ = [
    "LEASE_TTL_S",
    "RetrainBusyError",
    "RetrainLeaseLostError",
    "RetrainResult",
    "TrainingWindow",
    "finish_promotion",
    "policy_window",
    "retrain_lease",
    "retrain_lock",
    "run_retrain",
]

LEASE_TTL_S = 60.0
"""How long the retrain lease lasts without a renewal (its heartbeat renews it every third)."""


class RetrainBusyError(RuntimeError):
    """Another retrain of the same model holds the lease."""


class RetrainLeaseLostError(RuntimeError):
    """This retrain lost its lease (another one took over): it wrote nothing after losing it."""


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
    training: TrainResult | None
    """The training run of this invocation (None when it resumed a decision trained earlier)."""
    version: int | None
    stage: Stage | None
    production_before: int | None
    production_after: int | None
    lock_wait_s: float
    message: str
    state: DecisionState = DecisionState.CLAIMED
    resumed_from: DecisionState | None = None
    lease_token: int | None = None
    failed_runs: tuple[str, ...] = field(default=())

    @property
    def registered(self) -> bool:
        return self.version is not None

    @property
    def train(self) -> TrainResult:
        """The training result; ValueError when this run resumed after training."""
        if self.training is None:
            raise ValueError(
                f"decision {self.decision_id} was trained by an earlier run; this one resumed it "
                f"from {self.resumed_from and self.resumed_from.value}"
            )
        return self.training

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
            "state": self.state.value,
            "resumed_from": None if self.resumed_from is None else self.resumed_from.value,
            "lease_token": self.lease_token,
            "failed_runs": list(self.failed_runs),
            "train": None if self.training is None else self.training.to_dict(),
        }


def provenance_tags(
    *, trigger: Trigger, decision_id: int | None, drift_report: str | None, window: TrainingWindow
) -> dict[str, str]:
    return {
        RETRAIN_TRIGGER_TAG: trigger.value,
        DECISION_TAG: "none" if decision_id is None else str(decision_id),
        DRIFT_REPORT_TAG: drift_report or "none",
        TRAINING_LABELS_START_TAG: window.start.isoformat(),
        TRAINING_LABELS_END_TAG: window.end.isoformat(),
    }


def _why(*, trigger: Trigger, decision_id: int | None) -> str:
    return f"retrain ({trigger.value}, decision {decision_id if decision_id is not None else 'none'})"


class _DecisionSteps:
    """The writes of one retrain under its lease: each checks the lease in its transaction."""

    def __init__(self, *, registry: ModelRegistry, lease: Lease, actor: str, now: datetime) -> None:
        self.registry = registry
        self.lease = lease
        self.actor = actor
        self.now = now

    def move(self, decision: DecisionRecord, state: DecisionState, **detail: Any) -> DecisionRecord:
        from registry_ext import append_transition

        return append_transition(
            self.registry.engine,
            decision_id=decision.id,
            to_state=state,
            time=self.now,
            actor=self.actor,
            detail=detail,
            fence=self.lease.check,
            lease_token=self.lease.token,
        )

    def fail(self, decision: DecisionRecord, error: BaseException) -> str:
        """Record how ``error`` ended the step (best effort; returns what to tell the operator).

        Before registration: ``failed`` (retry with ``--decision N``). Once registered: the
        registry refusing the promotion (a RegistryError, a changed artifact) is ``refused``;
        anything else (an outage) leaves it ``registered``, and the next run promotes it."""
        from churnops.contracts.artifacts import ArtifactIntegrityError
        from churnops.contracts.decisions import DecisionTransitionError
        from registry_ext import RegistryError, get_decision

        current = get_decision(self.registry.engine, decision_id=decision.id)
        if current is None:
            return ""
        retry = f"retry it with `{resume_command(decision.id)}`"
        if current.state in (DecisionState.CLAIMED, DecisionState.TRAINED):
            target, note = DecisionState.FAILED, f"decision {decision.id} is failed: {retry}"
        elif current.state == DecisionState.REGISTERED and isinstance(
            error, RegistryError | ArtifactIntegrityError
        ):
            target, note = (
                DecisionState.REFUSED,
                f"decision {decision.id} is refused: its promotion was refused",
            )
        elif current.state == DecisionState.REGISTERED:
            return f"decision {decision.id} stays registered: {retry} to promote it"
        else:
            return ""
        try:
            self.move(current, target, error=f"{type(error).__name__}: {error}"[:2000])
        except (RegistryError, DecisionTransitionError) as not_recorded:
            return f"recording decision {decision.id} as {target.value} was refused too: {not_recorded}"
        return note


class _FencedRegistry:
    """What ``train`` sees of the registry during a retrain: registration is a recorded step.

    When the gates pass, ``register`` first records the decision as ``trained`` with everything
    registration needs (so a crash right after resumes by registering), then registers with the
    lease as the fence."""

    def __init__(self, *, registry: ModelRegistry, steps: _DecisionSteps, decision: DecisionRecord) -> None:
        self.registry = registry
        self.steps = steps
        self.decision = decision

    def production(self) -> Any:
        return self.registry.production()

    def load_model(self, version: int) -> Any:
        return self.registry.load_model(version)

    def register(self, **arguments: Any) -> Any:
        self.decision = self.steps.move(self.decision, DecisionState.TRAINED, register=arguments)
        crash_point("trained")
        record = self.registry.register(**arguments, fence=self.steps.lease.check)
        crash_point("registered")
        return record


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
    lease_ttl_s: float = LEASE_TTL_S,
) -> RetrainResult:
    """Retrain ``registry.model_name`` on ``window`` and promote per ``policy.promote_to``, or
    resume the decision ``order`` picks from the step a crashed run reached.

    A candidate that fails its gates registers nothing and leaves every stage as it was
    (``RetrainResult.version`` is None, the decision is ``refused``, ``message`` names the failed
    rules). ``order`` is called once the lease is held (see :mod:`churnops.retraining.orders`).
    With ``promote=False`` a version that passed stops at Staging (the decision stays
    ``registered``) and :func:`finish_promotion` takes it on (the orchestrator's own step).
    An error records the decision ``failed`` (retried with ``retrain run --decision N``).
    """
    who = actor or "churnops-retrain"
    with retrain_lease(registry=registry, timeout_s=lock_timeout_s, ttl_s=lease_ttl_s) as (lease, waited):
        killed = tuple(fail_killed_runs(registry=registry))
        why_run = order(registry)
        decision = why_run.decision
        if decision is None:
            raise ValueError("a retrain order must carry its decision")
        steps = _DecisionSteps(registry=registry, lease=lease, actor=who, now=now)
        before = registry.production()
        production_before = None if before is None else int(before.version)
        start, decision_id = decision.state, decision.id
        resumed = (
            start
            if start in (DecisionState.CLAIMED, DecisionState.TRAINED, DecisionState.REGISTERED)
            else None
        )

        def outcome(**rest: Any) -> RetrainResult:
            return RetrainResult(
                trigger=why_run.trigger,
                decision_id=decision_id,
                window=window,
                production_before=production_before,
                lock_wait_s=waited,
                resumed_from=resumed,
                lease_token=lease.token,
                failed_runs=killed,
                **rest,
            )

        try:
            if decision.state in (DecisionState.FIRED, DecisionState.FAILED):
                decision = steps.move(
                    decision,
                    DecisionState.CLAIMED,
                    holder=lease.holder,
                    window={"start": window.start.isoformat(), "end": window.end.isoformat()},
                )
                crash_point("claimed")
            training: TrainResult | None = None
            if decision.state == DecisionState.CLAIMED:
                fenced = _FencedRegistry(registry=registry, steps=steps, decision=decision)
                if materialize_online:
                    from churnops.features.materialize import materialize

                    materialize(store=store, end=now)  # serving's store as of now, not the window's end
                training = train(
                    store=store,
                    client=registry.client,
                    registry=fenced,
                    sources_dir=sources_dir,
                    policy=gate_policy,
                    options=TrainOptions(
                        trigger=why_run.trigger.value,
                        actor=actor,
                        labels_start=window.start,
                        labels_end=window.end,
                        version_tags=provenance_tags(
                            trigger=why_run.trigger,
                            decision_id=decision.id,
                            drift_report=why_run.drift_report,
                            window=window,
                        ),
                    ),
                    artifact_location=artifact_location,
                )
                decision = fenced.decision
                if training.version is None:
                    decision = steps.move(
                        decision,
                        DecisionState.REFUSED,
                        run_id=training.run_id,
                        registration=training.registration,
                    )
                    return outcome(
                        training=training,
                        version=None,
                        stage=None,
                        production_after=production_before,
                        message=(
                            f"{training.registration}; Production unchanged "
                            f"({'none' if production_before is None else f'version {production_before}'})"
                        ),
                        state=decision.state,
                    )
                decision = steps.move(decision, DecisionState.REGISTERED, version=int(training.version))
            elif decision.state == DecisionState.TRAINED:
                decision = _register_trained(registry=registry, steps=steps, decision=decision)
            version = int(decision.last_detail(DecisionState.REGISTERED)["version"])
            decision = _promote_registered(
                registry=registry,
                steps=steps,
                decision=decision,
                version=version,
                policy=policy,
                promote=promote,
                trigger=why_run.trigger,
            )
        except BaseException as error:
            from registry_ext import LeaseLostError

            if isinstance(error, LeaseLostError):
                raise RetrainLeaseLostError(
                    f"decision {decision.id}: {error}; the retrain that holds the lease now finishes it"
                ) from error
            if isinstance(error, Exception):
                note = steps.fail(decision, error)
                if note:
                    error.add_note(note)
            raise
        after = registry.production()
        stage = registry.get(version).stage
        verb = "resumed decision" if resumed is not None else "retrain of decision"
        return outcome(
            training=training,
            version=version,
            stage=stage,
            production_after=None if after is None else int(after.version),
            message=(
                f"{verb} {decision.id}: version {version} is in {stage.value} "
                f"(decision {decision.state.value})"
            ),
            state=decision.state,
        )


def _register_trained(
    *, registry: ModelRegistry, steps: _DecisionSteps, decision: DecisionRecord
) -> DecisionRecord:
    """Resume a ``trained`` decision: adopt the version registered for it (the run died before
    recording it), or register what the gates passed, fenced by the lease."""
    for record in registry.all_versions():
        if record.tags.get(DECISION_TAG) == str(decision.id):
            return steps.move(decision, DecisionState.REGISTERED, version=int(record.version), adopted=True)
    arguments: Mapping[str, Any] = decision.last_detail(DecisionState.TRAINED).get("register", {})
    if not arguments.get("run_id"):
        raise ValueError(f"decision {decision.id} is trained but its record names no run to register")
    record = registry.register(**dict(arguments), fence=steps.lease.check)
    crash_point("registered")
    return steps.move(decision, DecisionState.REGISTERED, version=int(record.version))


def _promote_registered(
    *,
    registry: ModelRegistry,
    steps: _DecisionSteps,
    decision: DecisionRecord,
    version: int,
    policy: RetrainPolicy,
    promote: bool,
    trigger: Trigger,
) -> DecisionRecord:
    """Registered -> Staging -> (policy) Production -> ``promoted``; each move only when the
    version is not there yet, so a resumed run repeats nothing."""
    why = _why(trigger=trigger, decision_id=decision.id)
    stage = registry.get(version).stage
    if stage == Stage.NONE:
        registry.promote(
            version=version,
            stage=Stage.STAGING,
            reason=why,
            actor=steps.actor,
            trigger=trigger.value,
            fence=steps.lease.check,
        )
        stage = Stage.STAGING
    if not promote:
        return decision
    if policy.promote_to == Stage.PRODUCTION.value and stage != Stage.PRODUCTION:
        registry.promote(
            version=version,
            stage=Stage.PRODUCTION,
            reason=why,
            actor=steps.actor,
            trigger=trigger.value,
            fence=steps.lease.check,
        )
        crash_point("promoted")
        stage = Stage.PRODUCTION
    return steps.move(decision, DecisionState.PROMOTED, version=version, stage=stage.value)


def finish_promotion(
    *,
    registry: ModelRegistry,
    decision_id: int,
    policy: RetrainPolicy,
    now: datetime,
    actor: str | None = None,
    lock_timeout_s: float = 0.0,
) -> DecisionRecord:
    """The promotion step of a retrain that stopped at Staging (``registered`` -> ``promoted``),
    under the retrain lease. Returns the decision as it is afterwards."""
    from registry_ext import get_decision

    with retrain_lease(registry=registry, timeout_s=lock_timeout_s) as (lease, _):
        decision = get_decision(registry.engine, decision_id=decision_id)
        if decision is None or decision.state != DecisionState.REGISTERED:
            state = "missing" if decision is None else decision.state.value
            raise ValueError(f"decision {decision_id} is {state}, not registered: nothing to promote")
        steps = _DecisionSteps(registry=registry, lease=lease, actor=actor or "churnops-retrain", now=now)
        version = int(decision.last_detail(DecisionState.REGISTERED)["version"])
        try:
            return _promote_registered(
                registry=registry,
                steps=steps,
                decision=decision,
                version=version,
                policy=policy,
                promote=True,
                trigger=decision.trigger or Trigger.MANUAL,
            )
        except Exception as error:
            note = steps.fail(decision, error)
            if note:
                error.add_note(note)
            raise


@contextmanager
def retrain_lease(
    *, registry: ModelRegistry, timeout_s: float, ttl_s: float = LEASE_TTL_S
) -> Iterator[tuple[Lease, float]]:
    """Hold ``retrain:<model>`` (one retrain per model across processes), renewed by a heartbeat;
    yields the lease and the seconds waited for it."""
    from registry_ext import Heartbeat, LeaseBusyError, acquire_lease

    key = f"retrain:{registry.model_name}"
    asked = time.monotonic()
    try:
        lease = acquire_lease(
            registry.engine,
            key=key,
            holder=lease_holder(),
            ttl_s=ttl_s,
            wait_s=timeout_s,
            take_over=holder_is_dead,
        )
    except LeaseBusyError as error:
        raise RetrainBusyError(
            f"another retrain of model {registry.model_name!r} is running ({error}; waited "
            f"{timeout_s:.0f}s); wait for it or retry later"
        ) from None
    beat = Heartbeat(lease).start()
    try:
        yield lease, time.monotonic() - asked
    finally:
        beat.stop()
        try:
            lease.release()
        except Exception:
            log.warning("releasing lease %s failed; it expires on its own", key, exc_info=True)


@contextmanager
def retrain_lock(*, registry: ModelRegistry, timeout_s: float) -> Iterator[float]:
    """The retrain lease as a plain lock (yields the seconds waited); see :func:`retrain_lease`."""
    with retrain_lease(registry=registry, timeout_s=timeout_s) as (_, waited):
        yield waited
