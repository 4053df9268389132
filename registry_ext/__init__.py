"""registry_ext: governs which MLflow model version is in Staging / Production, and why.

Public API (see docs/registry-api.md)::

    from registry_ext import ModelRegistry, ModelRecord, TransitionRecord, RegistryError, registry_engine

Importing this package does nothing but define names: no engine, no MLflow URI, no logging.
"""

from churnops.contracts.artifacts import ArtifactIntegrityError
from churnops.contracts.stages import Stage, Trigger
from registry_ext.artifacts import SignedVersion, load_signed_model
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
from registry_ext.records import (
    IntentRecord,
    ModelRecord,
    PromotionResult,
    ReconcileReport,
    TransitionRecord,
    UnregisteredVersion,
)
from registry_ext.registry import ModelRegistry, default_actor

__all__ = [
    "ArtifactIntegrityError",
    "IntentRecord",
    "InvalidInputError",
    "InvalidStageError",
    "InvalidTransitionError",
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
    "UnknownModelError",
    "UnknownVersionError",
    "UnregisteredVersion",
    "UnregisteredVersionError",
    "database_url",
    "default_actor",
    "load_signed_model",
    "registry_engine",
]
