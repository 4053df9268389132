"""The retraining decision's lifecycle as pure functions: its states and the allowed transitions.

::

    not_fired                       (a check that did not fire: terminal, never acted on)

    fired ──> claimed ──> trained ──> registered ──> promoted
                 ^  │ │        │             │
                 │  │ │        v             v
                 │  │ └─────> failed       refused   (the promotion was refused)
                 │  v          │
                 │ refused     │  (the gates refused the candidate: nothing registered)
                 └─────────────┘  (a failed decision can be claimed again, named by id)

- A decision is one row of ``retrain_decisions``; its state is the ``to_state`` of its newest
  row in ``retrain_decision_transitions`` (``fired`` / ``not_fired`` when it has none).
- ``claimed``: a retrain holding the lease took it on. ``trained``: the training run finished and
  its candidate passed the gates (what to register is recorded with the transition).
  ``registered``: the version exists. ``promoted``: it reached the policy's stage.
  ``refused``: the gates refused the candidate, or the registry refused its promotion (it was
  archived meanwhile, its artifact changed). ``failed``: an error stopped the retrain before
  anything was registered. A registered decision never fails: an outage during its promotion
  leaves it ``registered``, and the next run promotes it (one version per decision, always).
- *Finished* (counted by the cooldown and the per-period cap): ``registered``, ``promoted``,
  ``refused``. A ``claimed`` or ``failed`` decision did not retrain anything.
- *Pending* (``retrain run`` without ``--decision`` acts on the newest one, by id):
  ``fired``, ``claimed``, ``trained``, ``registered``. A crashed run resumes from its state.
- Shared by registry_ext (which checks each transition in the transaction that writes it) and
  churnops.retraining (which decides what to do next), so both follow one table.
"""

from __future__ import annotations

import os
from enum import StrEnum


class DecisionState(StrEnum):
    NOT_FIRED = "not_fired"
    FIRED = "fired"
    CLAIMED = "claimed"
    TRAINED = "trained"
    REGISTERED = "registered"
    PROMOTED = "promoted"
    REFUSED = "refused"
    FAILED = "failed"

    @classmethod
    def parse(cls, value: str | DecisionState) -> DecisionState:
        try:
            return cls(value)
        except ValueError:
            known = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown decision state {value!r}; known: {known}") from None


S = DecisionState

ALLOWED: dict[DecisionState, frozenset[DecisionState]] = {
    S.NOT_FIRED: frozenset(),
    S.FIRED: frozenset({S.CLAIMED}),
    S.CLAIMED: frozenset({S.TRAINED, S.REFUSED, S.FAILED}),
    S.TRAINED: frozenset({S.REGISTERED, S.FAILED}),
    S.REGISTERED: frozenset({S.PROMOTED, S.REFUSED}),
    S.PROMOTED: frozenset(),
    S.REFUSED: frozenset(),
    S.FAILED: frozenset({S.CLAIMED}),
}
"""The only transitions a decision may take (every other pair is refused)."""

FINISHED: frozenset[DecisionState] = frozenset({S.REGISTERED, S.PROMOTED, S.REFUSED})
"""A retrain happened: counted by the cooldown and the per-period cap."""

PENDING: frozenset[DecisionState] = frozenset({S.FIRED, S.CLAIMED, S.TRAINED, S.REGISTERED})
"""Fired and not yet at an end: ``retrain run`` resumes the newest one."""

TERMINAL: frozenset[DecisionState] = frozenset(s for s, nxt in ALLOWED.items() if not nxt)


class DecisionTransitionError(ValueError):
    """A transition the decision lifecycle does not allow (names the state and what is allowed)."""


def initial_state(*, fired: bool) -> DecisionState:
    return S.FIRED if fired else S.NOT_FIRED


def check_decision_transition(*, decision_id: int, current: DecisionState, target: DecisionState) -> None:
    """Raise :class:`DecisionTransitionError` unless ``current -> target`` is in :data:`ALLOWED`."""
    if target in ALLOWED[current]:
        return
    allowed = ", ".join(sorted(s.value for s in ALLOWED[current])) or "nothing (it is final)"
    raise DecisionTransitionError(
        f"decision {decision_id} is {current.value}; it can move to {allowed}, not {target.value}"
    )


def replay(*, fired: bool, targets: list[DecisionState]) -> DecisionState:
    """The state after ``targets`` in order, each checked (the store's history must replay)."""
    state = initial_state(fired=fired)
    for target in targets:
        check_decision_transition(decision_id=0, current=state, target=target)
        state = target
    return state


def claimable(state: DecisionState, *, named: bool) -> bool:
    """Whether a retrain may take a decision in ``state`` on: any pending one, and a failed one
    only when the operator named it (``retrain run --decision N``)."""
    return state in PENDING or (named and state == S.FAILED)


CRASH_ENV = "CHURNOPS_CRASH_AT"
"""Test hook: ``CHURNOPS_CRASH_AT=<point>`` makes the process exit at once (status 137, like a
``kill -9``) when it reaches :func:`crash_point` ``<point>``. Used by the crash-consistency
tests to stop a retrain at each commit point; unset in any real deployment."""

CRASH_EXIT = 137


def crash_point(name: str) -> None:
    """Exit the process at once (no cleanup, no ``finally``) when ``CHURNOPS_CRASH_AT`` names
    ``name``; otherwise nothing. A test hook only (see :data:`CRASH_ENV`)."""
    if os.environ.get(CRASH_ENV) == name:
        os._exit(CRASH_EXIT)
