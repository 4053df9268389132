"""Every error the registry raises on bad input or a refused operation.

All of them derive from :class:`RegistryError`, so callers (the CLI, training, serving) can
catch one class and show its message. Artifact tampering raises
:class:`churnops.contracts.artifacts.ArtifactIntegrityError`, which is deliberately *not* a
``RegistryError``: it signals a security problem, not a user mistake.
"""

from __future__ import annotations


class RegistryError(Exception):
    """Base class: a registry operation was refused; nothing was written."""


class RefusedError(RegistryError):
    """The request is well formed but the registry's state forbids it (the CLI exits 3)."""


class UnknownModelError(RegistryError):
    """The registered model does not exist."""


class UnknownVersionError(RegistryError):
    """The model version does not exist (in MLflow or in the ``models`` table)."""


class InvalidStageError(RegistryError):
    """A stage name that is not one of None, Staging, Production, Archived."""


class InvalidTransitionError(RefusedError):
    """The lifecycle does not allow this change (e.g. promoting an Archived version)."""


class InvalidInputError(RegistryError):
    """A malformed argument: empty reason, bad SHA-256, non-finite metric, unknown trigger..."""


class RegistrationError(RegistryError):
    """Registering a version failed; any MLflow version created on the way was deleted again."""


class NoRollbackTargetError(RefusedError):
    """There is no earlier Production version to return to."""


class RegistryBusyError(RegistryError):
    """The per-model promotion lock could not be taken in time."""


class UnregisteredVersionError(RefusedError):
    """MLflow holds the version but the ``models`` table does not: adopt it or delete it first."""


class ConcurrentChangeError(RefusedError):
    """The state changed between planning and acting (e.g. Production moved during a rollback)."""
