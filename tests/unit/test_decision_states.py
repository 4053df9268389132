"""The retraining decision's lifecycle (churnops.contracts.decisions) against a brute-force oracle:
the allowed moves written out by hand as the issue states them, and every path replayed."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from churnops.contracts.decisions import (
    ALLOWED,
    FINISHED,
    PENDING,
    TERMINAL,
    DecisionState,
    DecisionTransitionError,
    check_decision_transition,
    claimable,
    replay,
)

S = DecisionState
# The oracle, independent of ALLOWED: fired -> claimed -> trained -> registered -> promoted, with
# refused by the gates or (once registered) by the registry, failed before anything was
# registered, and a failed one re-claimable.
ORACLE_EDGES = {
    ("fired", "claimed"),
    ("claimed", "trained"),
    ("claimed", "refused"),
    ("claimed", "failed"),
    ("trained", "registered"),
    ("trained", "failed"),
    ("registered", "promoted"),
    ("registered", "refused"),
    ("failed", "claimed"),
}


def oracle_accepts(fired: bool, path: list[str]) -> bool:
    state = "fired" if fired else "not_fired"
    for target in path:
        if (state, target) not in ORACLE_EDGES:
            return False
        state = target
    return True


@given(fired=st.booleans(), path=st.lists(st.sampled_from([s.value for s in S]), max_size=10))
def test_replay_accepts_exactly_the_paths_the_oracle_accepts(fired: bool, path: list[str]) -> None:
    targets = [S(p) for p in path]
    if oracle_accepts(fired, path):
        start = S.FIRED if fired else S.NOT_FIRED
        assert replay(fired=fired, targets=targets) == (targets[-1] if targets else start)
    else:
        with pytest.raises(DecisionTransitionError, match=r"decision \d+ is \w+; it can move to"):
            replay(fired=fired, targets=targets)


def test_the_table_is_the_oracle_pair_by_pair() -> None:
    for current, target in itertools.product(S, S):
        allowed = (current.value, target.value) in ORACLE_EDGES
        assert (target in ALLOWED[current]) is allowed, (current, target)
        if not allowed:
            with pytest.raises(DecisionTransitionError, match=f"not {target.value}"):
                check_decision_transition(decision_id=7, current=current, target=target)


def _reachable(start: S, depth: int) -> set[tuple[S, ...]]:
    """Every path of up to ``depth`` moves from ``start``: brute force over every target at each
    step, a prefix the oracle refuses is not extended (no accepted path has one)."""
    paths: set[tuple[S, ...]] = {()}
    frontier: list[tuple[S, ...]] = [()]
    for _ in range(depth):
        frontier = [
            (*path, target)
            for path in frontier
            for target in S
            if oracle_accepts(start == S.FIRED, [p.value for p in (*path, target)])
        ]
        paths.update(frontier)
    return paths


def test_invariants_over_every_path() -> None:
    paths = _reachable(S.FIRED, 12)  # retries included (failed -> claimed -> ...)
    assert max(len(p) for p in paths) == 12
    assert not [p for p in _reachable(S.NOT_FIRED, 3) if p]  # an unfired check is never acted on
    for path in paths:
        seen = list(path)
        # nothing is registered or promoted without a training that passed, under a claim
        if S.REGISTERED in seen:
            assert S.TRAINED in seen[: seen.index(S.REGISTERED)]
        if S.PROMOTED in seen:
            assert seen[-1] == S.PROMOTED and S.REGISTERED in seen
        if S.REFUSED in seen:
            assert seen[-1] == S.REFUSED
        # at most one registration and one promotion per decision, whatever the retries
        assert seen.count(S.REGISTERED) <= 1 and seen.count(S.PROMOTED) <= 1
        end = seen[-1] if seen else S.FIRED
        # pending = may still lead to a finished retrain without an operator naming it
        assert (end in PENDING) == (end not in TERMINAL and end != S.FAILED)
    assert {p[-1] for p in paths if p} >= FINISHED | {S.FAILED, S.CLAIMED, S.TRAINED}
    assert {S.NOT_FIRED, S.PROMOTED, S.REFUSED} == TERMINAL
    assert {S.REGISTERED, S.PROMOTED, S.REFUSED} == FINISHED


@given(state=st.sampled_from(list(S)), named=st.booleans())
def test_claimable(state: S, named: bool) -> None:
    assert claimable(state, named=named) == (state in PENDING or (named and state == S.FAILED))
    if claimable(state, named=named) and state in (S.FIRED, S.FAILED):
        check_decision_transition(decision_id=1, current=state, target=S.CLAIMED)
