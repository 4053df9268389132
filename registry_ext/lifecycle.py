"""The stage lifecycle as pure functions: which changes are allowed, and what a request implies.

::

    None ──> Staging ──> Production ──> Archived
      │         │                          ^
      └─────────┴──────────────────────────┘

- Staging and Production hold at most one version each (each is mirrored by one MLflow alias):
  promoting a version there archives the version that held it.
- An Archived version cannot be promoted; only a rollback returns the previous Production
  version from Archived to Production.
- Reconciliation adopts whatever the MLflow aliases say (an alias moved in MLflow is a real
  change, recorded with actor ``mlflow``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from churnops.contracts.stages import ALIAS_OF_STAGE, Stage
from registry_ext.errors import InvalidTransitionError, NoRollbackTargetError

ALLOWED: dict[Stage, frozenset[Stage]] = {
    Stage.NONE: frozenset({Stage.STAGING, Stage.ARCHIVED}),
    Stage.STAGING: frozenset({Stage.PRODUCTION, Stage.ARCHIVED}),
    Stage.PRODUCTION: frozenset({Stage.ARCHIVED}),
    Stage.ARCHIVED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class Change:
    """One version moving from one stage to another, with the reason to record."""

    version: int
    from_stage: Stage
    to_stage: Stage
    reason: str


def check_transition(*, version: int, current: Stage, target: Stage) -> None:
    """Raise :class:`InvalidTransitionError` with a message that says what is allowed instead."""
    if current == target:
        raise InvalidTransitionError(f"version {version} is already in {target.value}")
    if target in ALLOWED[current]:
        return
    if current == Stage.ARCHIVED:
        raise InvalidTransitionError(
            f"version {version} is Archived and cannot be promoted; register a new version, or use "
            "rollback to return Production to the previous Production version"
        )
    if target == Stage.NONE:
        raise InvalidTransitionError(f"version {version} cannot go back to stage None")
    if current == Stage.NONE and target == Stage.PRODUCTION:
        raise InvalidTransitionError(
            f"version {version} is in stage None; promote it to Staging before Production"
        )
    allowed = ", ".join(sorted(s.value for s in ALLOWED[current])) or "nothing"
    raise InvalidTransitionError(
        f"version {version} is in {current.value}; it can move to {allowed}, not {target.value}"
    )


def plan_promotion(
    *, version: int, current: Stage, target: Stage, holders: Mapping[Stage, int], reason: str
) -> list[Change]:
    """The requested change first, then the version it displaces from Staging/Production."""
    check_transition(version=version, current=current, target=target)
    changes = [Change(version, current, target, reason)]
    displaced = holders.get(target)
    if target in ALIAS_OF_STAGE and displaced is not None and displaced != version:
        changes.append(
            Change(
                displaced,
                target,
                Stage.ARCHIVED,
                f"superseded by version {version} in {target.value}: {reason}",
            )
        )
    return changes


def rollback_target(*, history: list[int], current: int) -> int:
    """The version that was Production before ``current``, from the order versions entered Production.

    The history is replayed as a stack: a version entering Production for the first time is
    pushed; one that returns (a rollback, or an alias moved back in MLflow) pops everything
    above it. Rolling back twice therefore walks back two releases (v1, v2, v3 -> v2 -> v1)
    instead of toggling between the last two.
    """
    stack: list[int] = []
    for version in history:
        if version in stack:
            del stack[stack.index(version) + 1 :]
        else:
            stack.append(version)
    if not stack or stack[-1] != current:
        # The current Production version did not get there through a recorded transition.
        stack = [v for v in stack if v != current] + [current]
    if len(stack) < 2:
        raise NoRollbackTargetError(
            f"there is no earlier Production version to roll back to (current: version {current})"
        )
    return stack[-2]


def plan_rollback(*, current: int, target: int, target_stage: Stage, reason: str) -> list[Change]:
    """Target back to Production first, then the current Production version to Archived."""
    if target_stage != Stage.ARCHIVED:
        raise InvalidTransitionError(
            f"cannot roll back to version {target}: it is in {target_stage.value}, not Archived"
        )
    return [
        Change(target, Stage.ARCHIVED, Stage.PRODUCTION, f"rollback from version {current}: {reason}"),
        Change(current, Stage.PRODUCTION, Stage.ARCHIVED, f"rolled back to version {target}: {reason}"),
    ]


@dataclass(frozen=True, slots=True)
class ReconcilePlan:
    changes: list[Change]
    warnings: list[str]
    stale_aliases: list[str]


def plan_reconcile(
    *,
    aliases: Mapping[str, int | None],
    holders: Mapping[Stage, int],
    stages: Mapping[int, Stage],
) -> ReconcilePlan:
    """Changes that make the table agree with MLflow's aliases, and warnings for what can't.

    ``stages`` must hold the current stage of every version an alias points to (a version
    missing from it is unknown to registry_ext and is not adopted). When both aliases point to
    one version, ``production`` wins and the ``staging`` alias is reported as stale (to delete).
    """
    changes: list[Change] = []
    warnings: list[str] = []
    stale: list[str] = []
    stage_now = dict(stages)
    holder_now = dict(holders)
    for stage in (Stage.PRODUCTION, Stage.STAGING):
        alias = ALIAS_OF_STAGE[stage]
        pointed = aliases.get(alias)
        held = holder_now.get(stage)
        if pointed == held:
            continue
        if pointed is not None and pointed not in stage_now:
            warnings.append(
                f"alias {alias!r} points to version {pointed}, which registry_ext did not register; "
                "left as is"
            )
            continue
        if stage == Stage.STAGING and pointed is not None and stage_now[pointed] == Stage.PRODUCTION:
            stale.append(alias)
            pointed = None
            if held is None:
                continue
        if held is not None:
            changes.append(
                Change(
                    held,
                    stage,
                    Stage.ARCHIVED,
                    f"alias {alias!r} "
                    + (f"moved to version {pointed}" if pointed is not None else "removed")
                    + " in MLflow, outside registry_ext",
                )
            )
            stage_now[held] = Stage.ARCHIVED
            del holder_now[stage]
        if pointed is not None:
            before = stage_now[pointed]
            if before in holder_now and holder_now.get(before) == pointed:
                del holder_now[before]
            changes.append(
                Change(
                    pointed,
                    before,
                    stage,
                    f"alias {alias!r} set to version {pointed} in MLflow, outside registry_ext",
                )
            )
            stage_now[pointed] = stage
            holder_now[stage] = pointed
    return ReconcilePlan(changes=changes, warnings=warnings, stale_aliases=stale)


def aliases_for(holders: Mapping[Stage, int]) -> dict[str, int | None]:
    """What the MLflow aliases must say for these stage holders."""
    return {alias: holders.get(stage) for stage, alias in ALIAS_OF_STAGE.items()}


def write_order(changes: list[Change]) -> list[Change]:
    """Vacating changes (to Archived) first, so the one-per-stage unique indexes hold per statement."""
    return sorted(changes, key=lambda change: change.to_stage != Stage.ARCHIVED)


def apply_changes(holders: Mapping[Stage, int], changes: list[Change]) -> dict[Stage, int]:
    """Stage holders after ``changes``."""
    result = dict(holders)
    for change in changes:
        if result.get(change.from_stage) == change.version:
            del result[change.from_stage]
    for change in changes:
        if change.to_stage in ALIAS_OF_STAGE:
            result[change.to_stage] = change.version
    return result
