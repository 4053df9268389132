"""The stage lifecycle as pure functions: which changes are allowed, and what a request implies.

::

    None ──> Staging ──> Production ──> Archived
      │         │            ^             │
      └─────────┴────────────┼─────────────┘
                             └── rollback ─┘  (only a version that was in Production before)

- ``RULES`` is the whole policy, one row per action: ``promote`` moves a version forward;
  ``rollback`` returns an Archived version that was in Production before (the previous one, or
  one named with ``rollback --to N``: back or forward) and archives the current one.
- Staging and Production hold at most one version each (each is mirrored by one MLflow alias):
  moving a version there archives the version that held it.
- Reconciliation adopts whatever the MLflow aliases say (an alias moved in MLflow is a real
  change, recorded with actor ``mlflow``).
- ``RECOVERY`` says what the next write does with a write-ahead intent whose process died.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from churnops.contracts.stages import ALIAS_OF_STAGE, Stage
from registry_ext.errors import InvalidTransitionError, NoRollbackTargetError


class Action(StrEnum):
    """What kind of request a stage change comes from (one row of ``RULES`` each)."""

    PROMOTE = "promote"
    ROLLBACK = "rollback"


RULES: dict[Action, dict[Stage, frozenset[Stage]]] = {
    Action.PROMOTE: {
        Stage.NONE: frozenset({Stage.STAGING, Stage.ARCHIVED}),
        Stage.STAGING: frozenset({Stage.PRODUCTION, Stage.ARCHIVED}),
        Stage.PRODUCTION: frozenset({Stage.ARCHIVED}),
        Stage.ARCHIVED: frozenset(),
    },
    Action.ROLLBACK: {
        Stage.NONE: frozenset(),
        Stage.STAGING: frozenset(),
        Stage.PRODUCTION: frozenset({Stage.ARCHIVED}),
        Stage.ARCHIVED: frozenset({Stage.PRODUCTION}),  # only a version that was in Production
    },
}
"""Which stage each action may move a version from and to; everything else is refused."""

ALLOWED = RULES[Action.PROMOTE]
"""The ``promote`` row of :data:`RULES` (what ``registry promote`` allows)."""


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
            f"version {version} is Archived and cannot be promoted; `churnops registry rollback "
            f"--to {version} --reason ...` returns it to Production if it was there before, or "
            "register a new version"
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


def check_rollback_to(*, target: int, target_stage: Stage, history: list[int], current: int | None) -> None:
    """Refuse a ``rollback --to`` whose target is not an Archived version that was in Production."""
    if target == current:
        raise InvalidTransitionError(f"version {target} is already in Production")
    if Stage.PRODUCTION not in RULES[Action.ROLLBACK][target_stage]:
        raise InvalidTransitionError(
            f"cannot roll back to version {target}: it is in {target_stage.value}, not Archived"
            + ("; use `churnops registry promote`" if target_stage in (Stage.NONE, Stage.STAGING) else "")
        )
    if target not in history:
        raise InvalidTransitionError(
            f"cannot roll back to version {target}: it was never in Production (only a version that "
            "served before can return without a new promotion)"
        )


def plan_rollback(*, current: int | None, target: int, target_stage: Stage, reason: str) -> list[Change]:
    """Target back to Production first, then the current Production version (if any) to Archived."""
    if Stage.PRODUCTION not in RULES[Action.ROLLBACK][target_stage]:
        raise InvalidTransitionError(
            f"cannot roll back to version {target}: it is in {target_stage.value}, not Archived"
        )
    if current is None:
        return [Change(target, Stage.ARCHIVED, Stage.PRODUCTION, f"rollback to version {target}: {reason}")]
    return [
        Change(target, Stage.ARCHIVED, Stage.PRODUCTION, f"rollback from version {current}: {reason}"),
        Change(current, Stage.PRODUCTION, Stage.ARCHIVED, f"rolled back to version {target}: {reason}"),
    ]


class Recovery(StrEnum):
    """What the next write does with an intent left ``pending`` by a process that died."""

    FINISH = "finish"  # MLflow already moved (some aliases): complete it, with the intent's actor
    REVERT = "revert"  # nothing reached MLflow, or the state moved on: abandon it


RECOVERY: dict[tuple[bool, bool, bool], Recovery] = {
    # (table still as the intent found it, MLflow started to move, an alias is foreign) -> action
    (True, False, False): Recovery.REVERT,  # died before moving any alias: nothing happened
    (True, True, False): Recovery.FINISH,  # died between alias moves and the table write
    (True, False, True): Recovery.REVERT,  # an alias was moved by someone else: reconcile adopts it
    (True, True, True): Recovery.REVERT,
    (False, False, False): Recovery.REVERT,  # the table moved on: the intent is obsolete
    (False, True, False): Recovery.REVERT,
    (False, False, True): Recovery.REVERT,
    (False, True, True): Recovery.REVERT,
}
"""The recovery rule, spelled out for every case."""


def plan_recovery(
    *,
    changes: list[Change],
    stages: Mapping[int, Stage],
    before: Mapping[str, int | None],
    after: Mapping[str, int | None],
    aliases: Mapping[str, int | None],
) -> Recovery:
    """Finish or revert an interrupted intent: finish only when MLflow had started to move and
    nothing else changed since (the table still holds every ``from_stage``, every alias is
    either as before or as intended)."""
    table_unchanged = all(stages.get(change.version) == change.from_stage for change in changes)
    moved = any(
        aliases.get(alias) != before.get(alias) and aliases.get(alias) == after.get(alias) for alias in after
    )
    foreign = any(aliases.get(alias) not in (before.get(alias), after.get(alias)) for alias in after)
    return RECOVERY[(table_unchanged, moved, foreign)]


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
