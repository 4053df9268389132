"""Property tests of the pure lifecycle rules (registry_ext.lifecycle): no database, no MLflow.

A random sequence of requests (promote to any stage, rollback, rollback --to) is applied to a
model state through the rules alone; whatever is accepted must keep the invariants: at most one
Staging and one Production version, nothing ever returns to None, an Archived version returns
only to Production and only if it was there before, and a refused request changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from churnops.contracts.stages import Stage
from registry_ext.errors import InvalidTransitionError, NoRollbackTargetError, RefusedError
from registry_ext.lifecycle import (
    ALLOWED,
    RECOVERY,
    RULES,
    Action,
    Change,
    Recovery,
    apply_changes,
    check_rollback_to,
    check_transition,
    plan_promotion,
    plan_recovery,
    plan_rollback,
    rollback_target,
)

VERSIONS = 4


@dataclass
class Model:
    stages: dict[int, Stage] = field(
        default_factory=lambda: dict.fromkeys(range(1, VERSIONS + 1), Stage.NONE)
    )
    history: list[int] = field(default_factory=list)  # versions in the order they entered Production

    def holders(self) -> dict[Stage, int]:
        return {s: v for v, s in self.stages.items() if s in (Stage.STAGING, Stage.PRODUCTION)}

    def apply(self, changes: list[Change]) -> None:
        for change in changes:
            assert self.stages[change.version] == change.from_stage
        for change in changes:
            self.stages[change.version] = change.to_stage
            if change.to_stage == Stage.PRODUCTION:
                self.history.append(change.version)


requests = st.lists(
    st.one_of(
        st.tuples(st.just("promote"), st.integers(1, VERSIONS), st.sampled_from(list(Stage))),
        st.tuples(st.just("rollback"), st.just(0), st.just(Stage.PRODUCTION)),
        st.tuples(st.just("rollback_to"), st.integers(1, VERSIONS), st.just(Stage.PRODUCTION)),
    ),
    max_size=25,
)


def plan(model: Model, kind: str, version: int, target: Stage) -> list[Change]:
    holders = model.holders()
    if kind == "promote":
        return plan_promotion(
            version=version, current=model.stages[version], target=target, holders=holders, reason="r"
        )
    current = holders.get(Stage.PRODUCTION)
    if kind == "rollback":
        if current is None:
            raise NoRollbackTargetError("no Production version")
        back = rollback_target(history=model.history, current=current)
        return plan_rollback(current=current, target=back, target_stage=model.stages[back], reason="r")
    check_rollback_to(
        target=version, target_stage=model.stages[version], history=model.history, current=current
    )
    return plan_rollback(current=current, target=version, target_stage=model.stages[version], reason="r")


@settings(max_examples=300, deadline=None)
@given(steps=requests)
def test_any_accepted_sequence_keeps_the_invariants(steps: list[tuple[str, int, Stage]]) -> None:
    model = Model()
    for kind, version, target in steps:
        before = (dict(model.stages), list(model.history))
        was_production = set(model.history)
        try:
            changes = plan(model, kind, version, target)
        except RefusedError:
            assert (model.stages, model.history) == before  # a refusal changes nothing
            continue
        expected = apply_changes(model.holders(), changes)
        model.apply(changes)
        assert model.holders() == expected
        production = [v for v, s in model.stages.items() if s == Stage.PRODUCTION]
        staging = [v for v, s in model.stages.items() if s == Stage.STAGING]
        assert len(production) <= 1 and len(staging) <= 1
        for change in changes:
            assert (
                change.to_stage
                in RULES[Action.PROMOTE][change.from_stage] | RULES[Action.ROLLBACK][change.from_stage]
            )
            assert change.to_stage != Stage.NONE
            if change.from_stage == Stage.ARCHIVED:
                assert change.to_stage == Stage.PRODUCTION and change.version in was_production


@settings(max_examples=200, deadline=None)
@given(steps=requests, data=st.data())
def test_an_archived_former_production_version_can_always_return(
    steps: list[tuple[str, int, Stage]], data: st.DataObject
) -> None:
    model = Model()
    for kind, version, target in steps:
        try:
            model.apply(plan(model, kind, version, target))
        except RefusedError:
            continue
    returnable = [v for v, s in model.stages.items() if s == Stage.ARCHIVED and v in model.history]
    if not returnable:
        return
    version = data.draw(st.sampled_from(returnable))
    model.apply(plan(model, "rollback_to", version, Stage.PRODUCTION))
    assert model.holders()[Stage.PRODUCTION] == version


def test_the_promote_row_is_the_historic_table_and_archived_is_final_for_promote() -> None:
    assert ALLOWED is RULES[Action.PROMOTE]
    assert ALLOWED[Stage.ARCHIVED] == frozenset()
    with pytest.raises(InvalidTransitionError, match="rollback --to 3"):
        check_transition(version=3, current=Stage.ARCHIVED, target=Stage.PRODUCTION)


def test_rollback_to_refuses_what_never_served_and_names_why() -> None:
    with pytest.raises(InvalidTransitionError, match="never in Production"):
        check_rollback_to(target=2, target_stage=Stage.ARCHIVED, history=[1], current=1)
    with pytest.raises(InvalidTransitionError, match="already in Production"):
        check_rollback_to(target=1, target_stage=Stage.PRODUCTION, history=[1], current=1)
    with pytest.raises(InvalidTransitionError, match="not Archived; use `churnops registry promote`"):
        check_rollback_to(target=2, target_stage=Stage.STAGING, history=[2, 1], current=1)
    assert plan_rollback(current=None, target=2, target_stage=Stage.ARCHIVED, reason="x") == [
        Change(2, Stage.ARCHIVED, Stage.PRODUCTION, "rollback to version 2: x")
    ]


aliases = st.fixed_dictionaries(
    {
        "staging": st.one_of(st.none(), st.integers(1, 4)),
        "production": st.one_of(st.none(), st.integers(1, 4)),
    }
)


@settings(max_examples=300, deadline=None)
@given(before=aliases, after=aliases, now=aliases, table_unchanged=st.booleans())
def test_recovery_finishes_only_what_mlflow_started_and_nothing_else_touched(
    before: dict[str, int | None],
    after: dict[str, int | None],
    now: dict[str, int | None],
    table_unchanged: bool,
) -> None:
    changes = [Change(1, Stage.STAGING, Stage.PRODUCTION, "r")]
    stages = {1: Stage.STAGING if table_unchanged else Stage.ARCHIVED}
    decision = plan_recovery(changes=changes, stages=stages, before=before, after=after, aliases=now)
    started = any(now[a] != before[a] and now[a] == after[a] for a in after)
    foreign = any(now[a] not in (before[a], after[a]) for a in after)
    assert (decision is Recovery.FINISH) == (table_unchanged and started and not foreign)
    if now == before:
        assert decision is Recovery.REVERT  # nothing reached MLflow: never invent a change


def test_the_recovery_table_covers_every_case() -> None:
    assert len(RECOVERY) == 8
    assert [key for key, value in RECOVERY.items() if value is Recovery.FINISH] == [(True, True, False)]
