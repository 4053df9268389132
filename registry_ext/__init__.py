"""registry_ext: governs which MLflow model version is in Staging / Production, and why.

Public API (see docs/registry-api.md)::

    from registry_ext import ModelRegistry, ModelRecord, TransitionRecord, RegistryError, registry_engine

The other components import registry_ext through this ``__all__`` only (the retraining decision
store and its leases, serving's signature ``Verifier``); ``lint-imports`` checks it.

Importing this package does nothing but define names: no engine, no MLflow URI, no logging.
"""

from churnops.contracts.artifacts import ArtifactIntegrityError
from churnops.contracts.stages import Stage, Trigger
from registry_ext.artifacts import SignedVersion, load_signed_model
from registry_ext.decisions import (
    DecisionRecord,
    DecisionTransition,
    UnknownDecisionError,
    append_decision,
    append_transition,
    get_decision,
    list_decisions,
    pending_decision,
)
from registry_ext.engine import database_url, registry_engine
from registry_ext.errors import (
    InvalidInputError,
    InvalidStageError,
    InvalidTransitionError,
    NoRollbackTargetError,
    RefusedError,
    RegistrationError,
    RegistryBusyError,
    RegistryError,
    UnknownModelError,
    UnknownVersionError,
    UnregisteredVersionError,
)
from registry_ext.leases import (
    Heartbeat,
    Lease,
    LeaseBusyError,
    LeaseLostError,
    LeaseState,
    acquire_lease,
    try_acquire,
)
from registry_ext.loop_days import LoopStepRecord, LoopStepRecorded, loop_day_steps, record_loop_step
from registry_ext.records import (
    IntentRecord,
    ModelRecord,
    PromotionResult,
    ReconcileReport,
    TransitionRecord,
    UnregisteredVersion,
)
from registry_ext.registry import ModelRegistry, default_actor
from registry_ext.signing import Verifier

__all__ = [
    "ArtifactIntegrityError",
    "DecisionRecord",
    "DecisionTransition",
    "Heartbeat",
    "IntentRecord",
    "InvalidInputError",
    "InvalidStageError",
    "InvalidTransitionError",
    "Lease",
    "LeaseBusyError",
    "LeaseLostError",
    "LeaseState",
    "LoopStepRecord",
    "LoopStepRecorded",
    "ModelRecord",
    "ModelRegistry",
    "NoRollbackTargetError",
    "PromotionResult",
    "ReconcileReport",
    "RefusedError",
    "RegistrationError",
    "RegistryBusyError",
    "RegistryError",
    "SignedVersion",
    "Stage",
    "TransitionRecord",
    "Trigger",
    "UnknownDecisionError",
    "UnknownModelError",
    "UnknownVersionError",
    "UnregisteredVersion",
    "UnregisteredVersionError",
    "Verifier",
    "acquire_lease",
    "append_decision",
    "append_transition",
    "database_url",
    "default_actor",
    "get_decision",
    "list_decisions",
    "load_signed_model",
    "loop_day_steps",
    "pending_decision",
    "record_loop_step",
    "registry_engine",
    "try_acquire",
]
