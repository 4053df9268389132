"""The lifecycle stages of a model version and the triggers of a change: one enum each.

Used by registry_ext's tables (CHECK constraints), its lifecycle, the CLI's help and choices,
training (the trigger a version is registered with) and retraining.
"""

from __future__ import annotations

from enum import StrEnum


class UnknownValueError(ValueError):
    """A stage or trigger that is not one of the declared values (the message lists them)."""


class Stage(StrEnum):
    """Lifecycle stage of a version. ``NONE`` is the stage of a freshly registered version."""

    NONE = "None"
    STAGING = "Staging"
    PRODUCTION = "Production"
    ARCHIVED = "Archived"

    @classmethod
    def parse(cls, value: str | Stage) -> Stage:
        """Case-insensitive parse; raises :class:`UnknownValueError` naming the valid stages."""
        if isinstance(value, Stage):
            return value
        for stage in cls:
            if str(value).strip().lower() == stage.value.lower():
                return stage
        raise UnknownValueError(f"invalid stage {value!r}: expected one of {choices(cls)}")


class Trigger(StrEnum):
    """Why a version was trained or a transition happened."""

    MANUAL = "manual"
    SCHEDULED = "scheduled"
    PERFORMANCE = "performance"
    DRIFT = "drift"

    @classmethod
    def parse(cls, value: str | Trigger) -> Trigger:
        """Case-insensitive parse; raises :class:`UnknownValueError` naming the valid triggers."""
        if isinstance(value, Trigger):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise UnknownValueError(f"invalid trigger {value!r}: expected one of {choices(cls)}") from None


ALIAS_OF_STAGE: dict[Stage, str] = {Stage.STAGING: "staging", Stage.PRODUCTION: "production"}
"""The MLflow alias that mirrors each aliased stage (one version per alias, so one per stage)."""


def choices(enum: type[StrEnum]) -> str:
    """``"a, b or c"``-style list of an enum's values, for messages and CLI help."""
    values = [member.value for member in enum]
    return ", ".join(values[:-1]) + f" or {values[-1]}" if len(values) > 1 else values[0]
