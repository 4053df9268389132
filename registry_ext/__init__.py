"""registry_ext: governs which MLflow model version is in Staging / Production, and why.

Public API (see docs/registry-api.md)::

    from registry_ext import ModelRegistry, ModelRecord, TransitionRecord, RegistryError, registry_engine

Importing this package does nothing but define names: no engine, no MLflow URI, no logging.
"""

from churnops.artifacts import ArtifactIntegrityError
from registry_ext.engine import database_url, registry_engine
from registry_ext.errors import (
    InvalidInputError,
    InvalidStageError,
    InvalidTransitionError,
    NoRollbackTargetError,
    RegistrationError,
    RegistryBusyError,
    RegistryError,
    UnknownModelError,
    UnknownVersionError,
)
from registry_ext.records import (
    ModelRecord,
    PromotionResult,
    ReconcileReport,
    Stage,
    TransitionRecord,
    Trigger,
)
from registry_ext.registry import ModelRegistry, default_actor

__all__ = [
    "ArtifactIntegrityError",
    "InvalidInputError",
    "InvalidStageError",
    "InvalidTransitionError",
    "ModelRecord",
    "ModelRegistry",
    "NoRollbackTargetError",
    "PromotionResult",
    "ReconcileReport",
    "RegistrationError",
    "RegistryBusyError",
    "RegistryError",
    "Stage",
    "TransitionRecord",
    "Trigger",
    "UnknownModelError",
    "UnknownVersionError",
    "database_url",
    "default_actor",
    "registry_engine",
]
