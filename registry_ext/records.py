"""Values the registry returns: stages, triggers, version and transition records."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from churnops.contracts.artifacts import VersionSignature
from churnops.contracts.stages import Stage, Trigger, UnknownValueError
from registry_ext.errors import InvalidInputError, InvalidStageError

JSONValue = Any
"""Anything ``json.dumps(..., allow_nan=False)`` accepts."""

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def parse_stage(value: str | Stage) -> Stage:
    """:meth:`Stage.parse`, raising the registry's :class:`InvalidStageError`."""
    try:
        return Stage.parse(value)
    except UnknownValueError as error:
        raise InvalidStageError(str(error)) from None


def parse_trigger(value: str | Trigger) -> Trigger:
    """:meth:`Trigger.parse`, raising the registry's :class:`InvalidInputError`."""
    try:
        return Trigger.parse(value)
    except UnknownValueError as error:
        raise InvalidInputError(str(error)) from None


MLFLOW_ACTOR = "mlflow"
"""Actor recorded for a change detected in MLflow (an alias moved outside registry_ext)."""


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """One registered version, as held in the ``models`` table."""

    name: str
    version: int
    stage: Stage
    run_id: str
    artifact_uri: str
    sha256: str
    feature_service: str
    metrics: dict[str, float]
    tags: dict[str, str]
    gate_results: JSONValue
    created: datetime
    experiment_id: str | None = None
    signature: VersionSignature | None = None
    """What registry_ext signed at registration (None: registered by an older release)."""

    def to_json(self) -> dict[str, JSONValue]:
        """A JSON-able dict (what ``--json`` prints for a version)."""
        return {
            "name": self.name,
            "version": self.version,
            "stage": self.stage.value,
            "run_id": self.run_id,
            "experiment_id": self.experiment_id,
            "artifact_uri": self.artifact_uri,
            "sha256": self.sha256,
            "feature_service": self.feature_service,
            "metrics": dict(self.metrics),
            "tags": dict(self.tags),
            "gate_results": self.gate_results,
            "created": self.created.isoformat(),
            "signing_key_id": None if self.signature is None else self.signature.key_id,
        }


@dataclass(frozen=True, slots=True)
class TransitionRecord:
    """One row of the append-only ``model_transitions`` table."""

    id: int
    name: str
    version: int
    from_stage: Stage | None
    to_stage: Stage
    actor: str
    reason: str
    trigger: str
    gate_results: JSONValue
    time: datetime

    def to_json(self) -> dict[str, JSONValue]:
        """A JSON-able dict (what ``--json`` prints for an audit entry)."""
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "from_stage": None if self.from_stage is None else self.from_stage.value,
            "to_stage": self.to_stage.value,
            "actor": self.actor,
            "reason": self.reason,
            "trigger": self.trigger,
            "gate_results": self.gate_results,
            "time": self.time.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class PromotionResult:
    """Everything one promotion wrote: the requested change first, then the versions it displaced."""

    transition: TransitionRecord
    displaced: tuple[TransitionRecord, ...] = ()

    @property
    def transitions(self) -> tuple[TransitionRecord, ...]:
        return (self.transition, *self.displaced)


@dataclass(frozen=True, slots=True)
class IntentRecord:
    """One row of ``registry_intents``: a registry write announced before it touched MLflow.

    ``kind`` is promote, rollback, reconcile, adopt, delete_unregistered or fail_run; ``status``
    pending (in flight, or its process died), completed, recovered (finished by a later command
    with this intent's actor and reason) or reverted (abandoned; nothing of it remains).
    """

    id: int
    name: str
    kind: str
    status: str
    actor: str
    reason: str
    trigger: str
    target: dict[str, JSONValue]
    created: datetime
    finished: datetime | None = None
    outcome: str | None = None

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "status": self.status,
            "actor": self.actor,
            "reason": self.reason,
            "trigger": self.trigger,
            "target": self.target,
            "created": self.created.isoformat(),
            "finished": None if self.finished is None else self.finished.isoformat(),
            "outcome": self.outcome,
        }


@dataclass(frozen=True, slots=True)
class UnregisteredVersion:
    """A version MLflow holds that the ``models`` table does not (a registration that died half
    way, or one made in MLflow directly): listed, never promoted, until adopted or deleted."""

    name: str
    version: int
    run_id: str | None
    source: str
    created: datetime
    aliases: tuple[str, ...] = ()

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "name": self.name,
            "version": self.version,
            "stage": UNREGISTERED,
            "registered": False,
            "run_id": self.run_id,
            "source": self.source,
            "created": self.created.isoformat(),
            "aliases": list(self.aliases),
            "fix": f"churnops registry adopt {self.version} --reason ... | "
            f"churnops registry delete-unregistered {self.version} --reason ...",
        }


UNREGISTERED = "unregistered"
"""What ``registry list`` shows as the stage of an :class:`UnregisteredVersion`."""


@dataclass(frozen=True, slots=True)
class StaleRun:
    """An MLflow run left RUNNING by a process that died, as marked FAILED."""

    run_id: str
    experiment_id: str
    last_seen: datetime

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "run_id": self.run_id,
            "experiment_id": self.experiment_id,
            "last_seen": self.last_seen.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """What :meth:`ModelRegistry.reconcile` found and recorded.

    ``recovered`` are interrupted intents finished or reverted; ``recorded`` the transitions
    written (for recovered intents with their own actor, for alias moves made in MLflow with
    actor ``mlflow``); ``mismatches`` and ``unregistered`` what is still not in agreement
    afterwards (each comes with a warning naming the command that fixes it).
    """

    recorded: tuple[TransitionRecord, ...] = ()
    warnings: tuple[str, ...] = ()
    recovered: tuple[IntentRecord, ...] = ()
    mismatches: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)
    unregistered: tuple[int, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.recorded or self.recovered)

    @property
    def agrees(self) -> bool:
        """True only when aliases and table agree and nothing is hidden or pending."""
        return not self.mismatches and not self.unregistered


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """Filters for :meth:`ModelRegistry.search`; every given filter must match."""

    name: str | None = None
    version: int | None = None
    stage: Stage | None = None
    tags: dict[str, str] = field(default_factory=dict)
    limit: int | None = None


MAX_REASON_CHARS = 1000
"""Longest promotion/rollback reason recorded in the audit trail."""
MAX_ACTOR_CHARS = 128
"""Longest actor name (the column holds 256)."""

# Control characters (C0, DEL, C1: ESC starts terminal escape codes) and the Unicode bidi
# overrides/isolates: they change how the append-only audit trail reads on a terminal.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def require_text(value: str | None, what: str) -> str:
    """A non-blank string, stripped; raises :class:`InvalidInputError` otherwise."""
    if value is None or not str(value).strip():
        raise InvalidInputError(f"{what} must not be empty")
    return str(value).strip()


def require_label(value: str | None, what: str, *, max_chars: int) -> str:
    """Text a person typed for the audit trail (reason, actor): non-blank, at most ``max_chars``
    characters, no control or bidi characters; :class:`InvalidInputError` names the problem."""
    text = require_text(value, what)
    if len(text) > max_chars:
        raise InvalidInputError(f"{what} is {len(text):,} characters long; the limit is {max_chars:,}")
    bad = _CONTROL.search(text)
    if bad is not None:
        raise InvalidInputError(
            f"{what} contains the control character U+{ord(bad.group(0)):04X} at position "
            f"{bad.start() + 1}: write it on one line of printable text"
        )
    return text


def require_sha256(value: str) -> str:
    digest = str(value).strip().lower()
    if not _SHA256.match(digest):
        raise InvalidInputError(f"sha256 must be 64 hex characters, got {value!r}")
    return digest


def require_finite_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """Metrics as floats; a non-numeric or non-finite value is refused, naming the metric."""
    clean: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInputError(f"metric {key!r} is not a number: {value!r}")
        if not math.isfinite(value):
            raise InvalidInputError(f"metric {key!r} is not finite: {value!r}")
        clean[str(key)] = float(value)
    return clean


def require_tags(tags: dict[str, str]) -> dict[str, str]:
    clean: dict[str, str] = {}
    for key, value in tags.items():
        if not str(key).strip():
            raise InvalidInputError("tag keys must not be empty")
        clean[str(key)] = str(value)
    return clean
