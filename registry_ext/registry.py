"""ModelRegistry: versions, stages, aliases and the audit trail of one registered model.

The ``models`` table is the source of truth for stages; MLflow's ``staging`` / ``production``
aliases mirror it. Every stage change runs under the per-model lock (``registry_ext.locking``):

1. finish or revert any write-ahead intent a dead process left pending (:meth:`reconcile`),
   then adopt any alias moved in MLflow outside registry_ext (actor ``mlflow``);
2. plan the change (``registry_ext.lifecycle``), refusing what the lifecycle does not allow;
3. write the intent (``registry_intents``: actor, reason, trigger, the changes, the aliases
   before and after) in its own committed transaction;
4. set the MLflow aliases to what the table will say;
5. in one database transaction, change ``models.stage``, append the ``model_transitions`` rows
   and mark the intent completed; if that fails, put the aliases back and revert the intent.

A process killed between 3 and 5 leaves a pending intent: the next write command (or
``registry reconcile``) finishes it with the intent's own actor and reason when MLflow had
started to move, and reverts it otherwise (``lifecycle.RECOVERY``). The commit points carry
test hooks (``churnops.contracts.crash_points``): ``registry.before_intent``,
``registry.after_intent``, ``registry.between_aliases``, ``registry.after_alias``,
``registry.after_table`` and, for registration, ``registry.register.before_mlflow_version`` and
``registry.register.after_mlflow_version``. A version MLflow holds without a ``models`` row (a
registration that died half way) is listed as unregistered and never promoted until
:meth:`adopt` or :meth:`delete_unregistered`.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from churnops.contracts.artifacts import (
    MAX_MANIFEST_CHARS,
    MODEL_PATH,
    ArtifactIntegrityError,
    SignatureError,
    VersionSignature,
    file_manifest,
    manifest_digest,
    manifest_json,
    parse_manifest,
    signed_payload,
)
from churnops.contracts.crash_points import crash_point
from churnops.contracts.mlflow_keys import (
    FEATURE_SERVICE_TAG,
    HEARTBEAT_TAG,
    MANIFEST_TAG,
    SHA256_TAG,
    VERSION_STAGE_TAG,
)
from churnops.contracts.stages import ALIAS_OF_STAGE, Stage, Trigger
from registry_ext import store
from registry_ext.artifacts import (
    SignedVersion,
    load_signed_model,
    resolve_model_location,
    verified_copy,
    verified_signed_copy,
)
from registry_ext.engine import write_transaction
from registry_ext.errors import (
    ConcurrentChangeError,
    InvalidInputError,
    NoRollbackTargetError,
    RefusedError,
    RegistrationError,
    RegistryError,
    UnknownModelError,
    UnknownVersionError,
    UnregisteredVersionError,
)
from registry_ext.leases import LeaseLostError
from registry_ext.lifecycle import (
    Change,
    Recovery,
    aliases_for,
    apply_changes,
    check_rollback_to,
    plan_promotion,
    plan_reconcile,
    plan_recovery,
    plan_rollback,
    rollback_target,
    write_order,
)
from registry_ext.locking import DEFAULT_LOCK_TIMEOUT_S, model_lock
from registry_ext.records import (
    MAX_ACTOR_CHARS,
    MAX_REASON_CHARS,
    MLFLOW_ACTOR,
    IntentRecord,
    JSONValue,
    ModelRecord,
    PromotionResult,
    ReconcileReport,
    SearchQuery,
    StaleRun,
    TransitionRecord,
    UnregisteredVersion,
    parse_stage,
    parse_trigger,
    require_finite_metrics,
    require_label,
    require_sha256,
    require_tags,
    require_text,
)
from registry_ext.search import search_query

STALE_RUN_AFTER = timedelta(hours=6)
"""A run RUNNING with no start or heartbeat newer than this is taken for killed (marked FAILED)."""

_log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from registry_ext.signing import Signer, Verifier


def default_actor() -> str:
    """The OS user: who acted when the caller names nobody (the CLI passes ``CHURNOPS_ACTOR``)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _mlflow_error_code(error: Exception) -> str:
    return str(getattr(error, "error_code", ""))


def _actor(actor: str | None) -> str:
    """The given actor (default: the OS user), checked like every audit-trail label."""
    return require_label(actor if actor is not None else default_actor(), "actor", max_chars=MAX_ACTOR_CHARS)


class ModelRegistry:
    """Versions and stages of registered model ``model_name`` (MLflow + registry_ext tables)."""

    def __init__(
        self,
        *,
        client: MlflowClient,
        engine: Engine,
        model_name: str = "churn",
        lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
        clock: Callable[[], datetime] = store.utcnow,
        signer: Signer | None = None,
        verifier: Verifier | None = None,
    ) -> None:
        self.clock = clock  # registration and transition times (a pinned CHURNOPS_NOW in tests)
        self.client = client
        self.engine = engine
        self.signer = signer  # registry writers only: register() refuses without it
        self.verifier = verifier  # load_model / verify_artifact (promote, rollback) need it
        self.model_name = require_text(model_name, "model name")
        self.lock_timeout_s = lock_timeout_s
        self._alias_table: sa.Table | None = None  # MLflow's alias table, reflected lazily
        self._alias_table_usable = True

    # --- registration ----------------------------------------------------------------------

    def register(
        self,
        *,
        run_id: str,
        artifact_path: str = MODEL_PATH,
        sha256: str,
        feature_service: str,
        metrics: Mapping[str, float],
        tags: Mapping[str, str] | None = None,
        gate_results: JSONValue = None,
        actor: str | None = None,
        trigger: str = "manual",
        fence: Callable[[sa.Connection], None] | None = None,
    ) -> ModelRecord:
        """Register the model logged at ``artifact_path`` in run ``run_id`` as a new version.

        Checks the artifact's SHA-256 against ``sha256`` before anything is created, records the
        manifest of the files as logged (each file's SHA-256) and signs (name, version, manifest
        digest, feature service) with the registry's key: the signature, key id and manifest go
        into the version's MLflow tags (what serving reads) and its ``models`` row. The MLflow
        version and its ``models`` row come together or not at all: if the database write fails,
        the MLflow version is deleted again and :class:`RegistrationError` is raised.
        ``fence`` (e.g. ``Lease.check``) runs first in that transaction; what it raises (a lost
        lease) is re-raised as it is, after the MLflow version is deleted.
        """
        from mlflow.exceptions import MlflowException

        if self.signer is None:
            raise RegistrationError(
                "this registry has no signing key, and a version it cannot sign could never be loaded: "
                "build it with a Signer (churnops.wiring.model_registry(write=True) does)"
            )
        digest = require_sha256(sha256)
        service = require_text(feature_service, "feature_service")
        clean_metrics = require_finite_metrics(dict(metrics))
        clean_tags = require_tags(dict(tags or {}))
        who = require_label(
            actor if actor is not None else default_actor(), "actor", max_chars=MAX_ACTOR_CHARS
        )
        why = parse_trigger(trigger).value
        try:
            gate_json = json.loads(json.dumps(gate_results, allow_nan=False))
        except (TypeError, ValueError) as error:
            raise InvalidInputError(f"gate_results must be JSON without NaN/inf: {error}") from error
        try:
            run = self.client.get_run(require_text(run_id, "run_id"))
        except MlflowException as error:
            raise InvalidInputError(f"unknown MLflow run {run_id!r}") from error

        location = resolve_model_location(client=self.client, run=run, artifact_path=artifact_path)
        label = f"model {self.model_name!r} run {run_id} artifact {artifact_path!r}"
        with verified_copy(artifact_uri=location.artifact_uri, expected=digest, label=label) as local:
            manifest = manifest_json(file_manifest(local))
        if len(manifest) > MAX_MANIFEST_CHARS:
            raise InvalidInputError(
                f"{label}: the model directory's manifest is {len(manifest)} characters, more than "
                f"{MAX_MANIFEST_CHARS}: log only the model files under {artifact_path!r}"
            )

        self._ensure_registered_model()
        mlflow_tags = {
            **{k: v for k, v in clean_tags.items() if k not in VersionSignature.TAGS},
            SHA256_TAG: digest,
            FEATURE_SERVICE_TAG: service,
            VERSION_STAGE_TAG: Stage.NONE.value,
            MANIFEST_TAG: manifest,
        }
        version = self.client.create_model_version(
            name=self.model_name,
            source=location.source,
            run_id=run.info.run_id,
            tags=mlflow_tags,
            model_id=location.model_id,
        )
        number = int(version.version)
        try:
            signature = self._sign(version=number, manifest=manifest, feature_service=service)
            for key, value in signature.tags().items():
                if key != MANIFEST_TAG:
                    self.client.set_model_version_tag(self.model_name, str(number), key, value)
            with write_transaction(self.engine) as conn:
                if fence is not None:
                    fence(conn)
                store.insert_version(
                    conn,
                    name=self.model_name,
                    version=number,
                    run_id=run.info.run_id,
                    experiment_id=run.info.experiment_id,
                    artifact_uri=location.artifact_uri,
                    sha256=digest,
                    feature_service=service,
                    metrics=clean_metrics,
                    tags=clean_tags,
                    gate_results=gate_json,
                    actor=who,
                    trigger=why,
                    created=self.clock(),
                    signature=signature,
                )
        except Exception as error:
            cleanup = ""
            try:
                self.client.delete_model_version(name=self.model_name, version=str(number))
            except Exception as delete_error:
                cleanup = f"; deleting MLflow version {number} failed too: {delete_error}"
            if isinstance(error, LeaseLostError) and not cleanup:
                raise  # the fence refused the write: a lost lease, its own error
            raise RegistrationError(
                f"registering model {self.model_name!r} version {number} failed, the MLflow version "
                f"was removed again: {error}{cleanup}"
            ) from error
        return self.get(number)

    def _sign(self, *, version: int, manifest: str, feature_service: str) -> VersionSignature:
        """Sign (name, version, manifest digest, feature service) with the registry's key."""
        assert self.signer is not None
        payload = signed_payload(
            name=self.model_name,
            version=version,
            manifest_digest=manifest_digest(parse_manifest(manifest, label=f"version {version}")),
            feature_service=feature_service,
        )
        signed = self.signer.sign(payload)
        return VersionSignature(manifest=manifest, signature=signed.signature, key_id=signed.key_id)

    def _signed_version(self, record: ModelRecord) -> SignedVersion:
        return SignedVersion(
            name=record.name,
            version=record.version,
            feature_service=record.feature_service,
            signature=record.signature,
        )

    def _require_verifier(self) -> Verifier:
        if self.verifier is None:
            raise SignatureError(
                "this registry has no trusted keys to verify versions with: build it with a Verifier "
                "(churnops.wiring.model_registry does)"
            )
        return self.verifier

    def _ensure_registered_model(self) -> None:
        from mlflow.exceptions import MlflowException

        crash_point("registry.register.before_mlflow_version")  # test hook: nothing created yet
        try:
            self.client.create_registered_model(self.model_name)
        except MlflowException as error:
            if "ALREADY_EXISTS" not in _mlflow_error_code(error):
                raise

    # --- reads -----------------------------------------------------------------------------

    def get(self, version: int) -> ModelRecord:
        """The version's record; :class:`UnknownVersionError` if registry_ext doesn't know it."""
        number = self._version_number(version)
        with self.engine.connect() as conn:
            record = store.fetch_record(conn, name=self.model_name, version=number)
        if record is None:
            raise UnknownVersionError(f"model {self.model_name!r} has no version {number}")
        return record

    def all_versions(self) -> list[ModelRecord]:
        """Every version of this model, newest first."""
        return self.search(name=self.model_name)

    def search(
        self,
        *,
        name: str | None = None,
        version: int | None = None,
        stage: str | Stage | None = None,
        tags: Mapping[str, str] | None = None,
        limit: int | None = None,
    ) -> list[ModelRecord]:
        """Versions (of any model) matching every given filter, newest first.

        ``name`` is exact, or a pattern with ``*`` wildcards; ``tags`` must all match exactly.
        """
        query = SearchQuery(
            name=name,
            version=None if version is None else self._version_number(version),
            stage=None if stage is None else parse_stage(stage),
            tags=require_tags(dict(tags or {})),
            limit=limit,
        )
        with self.engine.connect() as conn:
            return store.fetch_records(conn, search_query(query, dialect=self.engine.dialect.name))

    def audit(self, *, version: int | None = None) -> list[TransitionRecord]:
        """The full transition history (of one version, or of the model), oldest first."""
        number = None if version is None else self._version_number(version)
        with self.engine.connect() as conn:
            if number is not None and store.fetch_record(conn, name=self.model_name, version=number) is None:
                raise UnknownVersionError(f"model {self.model_name!r} has no version {number}")
            return store.fetch_transitions(conn, name=self.model_name, version=number)

    def production(self) -> ModelRecord | None:
        """The Production version as the ``models`` table holds it (None when there is none).

        A pure read: an alias moved in MLflow outside registry_ext is not adopted here (that is
        :meth:`reconcile`, an explicit step that promote and rollback also run); see
        :meth:`alias_mismatches` to detect one without writing.
        """
        return self._held(Stage.PRODUCTION)

    def staging(self) -> ModelRecord | None:
        """The Staging version as the ``models`` table holds it (a pure read, like :meth:`production`)."""
        return self._held(Stage.STAGING)

    def _held(self, stage: Stage) -> ModelRecord | None:
        with self.engine.connect() as conn:
            held = store.stage_holders(conn, name=self.model_name).get(stage)
            return None if held is None else store.fetch_record(conn, name=self.model_name, version=held)

    def alias_mismatches(self) -> dict[str, tuple[int | None, int | None]]:
        """Aliases whose MLflow version differs from the table: ``{alias: (table, mlflow)}`` (read-only)."""
        with self.engine.connect() as conn:
            aliases = self._alias_versions_sql(conn)
            holders = store.stage_holders(conn, name=self.model_name)
        if aliases is None:
            try:
                aliases = self._aliases()
            except UnknownModelError:
                return {}
        expected = aliases_for(holders)
        return {
            alias: (expected.get(alias), aliases.get(alias))
            for alias in ALIAS_OF_STAGE.values()
            if expected.get(alias) != aliases.get(alias)
        }

    def load_model(self, version: int) -> Any:
        """The version's sklearn estimator, after verifying its signature, files and types.

        Raises :class:`churnops.contracts.artifacts.ArtifactIntegrityError` (naming the version
        and the reason) for an unsigned or wrongly signed version, a file changed, missing or
        added since registration, or a type outside ``TRUSTED_TYPES``.
        """
        record = self.get(version)
        return load_signed_model(
            artifact_uri=record.artifact_uri,
            version=self._signed_version(record),
            verifier=self._require_verifier(),
            tracking_uri=self.client.tracking_uri,
        )

    def verify_artifact(self, version: int, *, purpose: str = "use it") -> None:
        """Refuse, with :class:`ArtifactIntegrityError` naming the reason, when the version is
        unsigned or wrongly signed, or its files are missing or differ from the signed manifest."""
        record = self.get(version)
        label = f"model {record.name!r} version {record.version}"
        try:
            with verified_signed_copy(
                artifact_uri=record.artifact_uri,
                version=self._signed_version(record),
                verifier=self._require_verifier(),
                tracking_uri=self.client.tracking_uri,
            ):
                pass
        except ArtifactIntegrityError as error:
            raise ArtifactIntegrityError(f"refusing to {purpose}: {error}") from error
        except RegistryError as error:
            raise ArtifactIntegrityError(f"refusing to {purpose}: {label}: {error}") from error

    # --- stage changes ---------------------------------------------------------------------

    def promote(
        self,
        *,
        version: int,
        stage: str | Stage,
        reason: str,
        actor: str | None = None,
        trigger: str = "manual",
        fence: Callable[[sa.Connection], None] | None = None,
    ) -> TransitionRecord:
        """Move ``version`` to ``stage``; see :meth:`change_stage` for what else it writes."""
        return self.change_stage(
            version=version, stage=stage, reason=reason, actor=actor, trigger=trigger, fence=fence
        ).transition

    def change_stage(
        self,
        *,
        version: int,
        stage: str | Stage,
        reason: str,
        actor: str | None = None,
        trigger: str = "manual",
        fence: Callable[[sa.Connection], None] | None = None,
    ) -> PromotionResult:
        """Move ``version`` to ``stage``, archiving the version that held Staging/Production.

        Returns the requested transition and those of the displaced version. Raises a
        :class:`RegistryError` (nothing written) for an unknown version, an empty reason, an
        invalid stage or trigger, or a change the lifecycle does not allow; a
        :class:`RefusedError` (:class:`UnregisteredVersionError`: MLflow holds the version, the
        ``models`` table does not) when the state forbids it. ``fence`` runs in the transaction
        that writes the stage (a lost lease: nothing written, aliases restored).
        """
        number = self._version_number(version)
        target = parse_stage(stage)
        why = require_label(reason, "reason", max_chars=MAX_REASON_CHARS)
        who = _actor(actor)
        kind = parse_trigger(trigger).value
        if target in (Stage.STAGING, Stage.PRODUCTION):
            # What serving would load: a missing or altered artifact never reaches an alias.
            # (An unknown model or version is reported by the locked plan below.)
            with contextlib.suppress(UnknownVersionError):
                self.verify_artifact(number, purpose=f"move version {number} to {target.value}")

        def plan(conn: sa.Connection, holders: Mapping[Stage, int]) -> list[Change]:
            current = store.fetch_stages(conn, name=self.model_name, versions=[number]).get(number)
            if current is None:
                raise self._missing_version(number)
            return plan_promotion(version=number, current=current, target=target, holders=holders, reason=why)

        written = self._locked_change(plan, kind="promote", actor=who, reason=why, trigger=kind, fence=fence)
        return PromotionResult(transition=written[0], displaced=tuple(written[1:]))

    def rollback(
        self,
        *,
        reason: str,
        actor: str | None = None,
        trigger: str = "manual",
        to: int | None = None,
    ) -> PromotionResult:
        """Return Production to the version that was Production before the current one, or, with
        ``to``, to that Archived version (back or forward), which must have been in Production.

        The target's artifact is verified again first. The returned transition is the target's
        Archived -> Production; ``displaced`` holds the current version's Production -> Archived.
        Both carry ``reason``. Refused (:class:`RefusedError`, nothing written) when there is no
        target, the target is not an Archived former Production version, or Production changed
        while rolling back.
        """
        why = require_label(reason, "reason", max_chars=MAX_REASON_CHARS)
        who = _actor(actor)
        kind = parse_trigger(trigger).value
        if to is not None:
            return self._rollback_to(self._version_number(to), reason=why, actor=who, trigger=kind)
        verified = self._rollback_target()
        if verified is not None:
            self.verify_artifact(verified, purpose=f"roll Production back to version {verified}")

        def plan(conn: sa.Connection, holders: Mapping[Stage, int]) -> list[Change]:
            current = holders.get(Stage.PRODUCTION)
            if current is None:
                raise NoRollbackTargetError(f"model {self.model_name!r} has no Production version")
            history = store.production_history(conn, name=self.model_name)
            target = rollback_target(history=history, current=current)
            if target != verified:
                raise ConcurrentChangeError("Production changed while rolling back; run the rollback again")
            target_stage = store.fetch_stages(conn, name=self.model_name, versions=[target])[target]
            return plan_rollback(current=current, target=target, target_stage=target_stage, reason=why)

        written = self._locked_change(plan, kind="rollback", actor=who, reason=why, trigger=kind)
        return PromotionResult(transition=written[0], displaced=tuple(written[1:]))

    def _rollback_to(self, number: int, *, reason: str, actor: str, trigger: str) -> PromotionResult:
        try:
            self.verify_artifact(number, purpose=f"return version {number} to Production")
        except UnknownVersionError:
            raise self._missing_version(number) from None

        def plan(conn: sa.Connection, holders: Mapping[Stage, int]) -> list[Change]:
            stage = store.fetch_stages(conn, name=self.model_name, versions=[number]).get(number)
            if stage is None:
                raise self._missing_version(number)
            current = holders.get(Stage.PRODUCTION)
            history = store.production_history(conn, name=self.model_name)
            check_rollback_to(target=number, target_stage=stage, history=history, current=current)
            return plan_rollback(current=current, target=number, target_stage=stage, reason=reason)

        written = self._locked_change(plan, kind="rollback", actor=actor, reason=reason, trigger=trigger)
        return PromotionResult(transition=written[0], displaced=tuple(written[1:]))

    def _rollback_target(self) -> int | None:
        """The version a rollback would return to now (None: none; the locked plan says why)."""
        with self.engine.connect() as conn:
            current = store.stage_holders(conn, name=self.model_name).get(Stage.PRODUCTION)
            if current is None:
                return None
            history = store.production_history(conn, name=self.model_name)
        try:
            return rollback_target(history=history, current=current)
        except RegistryError:
            return None

    def reconcile(self) -> ReconcileReport:
        """Bring MLflow and the tables into agreement, as far as that is safe; cheap when they agree.

        Under the lock: finishes or reverts the intents of writers that died (keeping their actor
        and reason), then records alias changes made directly in MLflow (actor ``mlflow``). The
        report also names what still disagrees afterwards: an alias on a version the ``models``
        table does not hold, and unregistered versions (each with the command that fixes it).
        A model MLflow does not know yet has nothing to reconcile (an empty report).
        """
        with self.engine.connect() as conn:
            aliases = self._alias_versions_sql(conn)
            holders = store.stage_holders(conn, name=self.model_name)
            pending = store.fetch_intents(conn, name=self.model_name, pending_only=True)
        if aliases is None:
            try:
                aliases = self._aliases()
            except UnknownModelError:
                return ReconcileReport()
        recovered: list[IntentRecord] = []
        recorded: list[TransitionRecord] = []
        warnings: list[str] = []
        if pending or aliases_for(holders) != aliases:
            try:
                self._aliases()
            except UnknownModelError:
                return ReconcileReport()
            with self._lock():
                recovered, from_intents = self._recover_locked()
                adopted, warnings, _ = self._reconcile_locked()
                recorded = from_intents + adopted
        unregistered = tuple(u.version for u in self.unregistered())
        mismatches = self.alias_mismatches()
        for number in unregistered:
            warnings.append(
                f"version {number} is in MLflow but not registered in registry_ext (a registration "
                f"that did not finish?): `churnops registry adopt {number} --reason ...` verifies and "
                f"records it, `churnops registry delete-unregistered {number} --reason ...` removes it"
            )
        return ReconcileReport(
            recorded=tuple(recorded),
            warnings=tuple(dict.fromkeys(warnings)),
            recovered=tuple(recovered),
            mismatches=mismatches,
            unregistered=unregistered,
        )

    # --- versions MLflow holds that the models table does not ----------------------------------

    def unregistered(self) -> list[UnregisteredVersion]:
        """Versions MLflow holds that the ``models`` table does not, newest first (read-only)."""
        from mlflow.exceptions import MlflowException

        try:
            versions = self.client.search_model_versions(f"name = '{self.model_name}'")
        except MlflowException as error:
            if "RESOURCE_DOES_NOT_EXIST" in _mlflow_error_code(error):
                return []
            raise
        with self.engine.connect() as conn:
            known = store.registered_versions(conn, name=self.model_name)
        found = [
            UnregisteredVersion(
                name=self.model_name,
                version=int(v.version),
                run_id=v.run_id or None,
                source=str(v.source or ""),
                created=datetime.fromtimestamp((v.creation_timestamp or 0) / 1000, tz=UTC),
                aliases=tuple(sorted(getattr(v, "aliases", None) or ())),
            )
            for v in versions
            if int(v.version) not in known
        ]
        return sorted(found, key=lambda u: -u.version)

    def _missing_version(self, number: int) -> RegistryError:
        """The error for a version the ``models`` table lacks: refused if MLflow holds it."""
        if any(u.version == number for u in self.unregistered()):
            return UnregisteredVersionError(
                f"version {number} of model {self.model_name!r} is in MLflow but was never registered "
                f"in registry_ext, so it cannot change stage: `churnops registry adopt {number} --reason "
                f"...` verifies and records it, or `churnops registry delete-unregistered {number} "
                "--reason ...` removes it"
            )
        return UnknownVersionError(f"model {self.model_name!r} has no version {number}")

    def adopt(self, *, version: int, reason: str, actor: str | None = None) -> ModelRecord:
        """Record an unregistered MLflow version in the ``models`` table, after the checks
        registration makes: the artifact's SHA-256 (from the version's tag, set at registration)
        must match, and the feature service must be recorded. Then it is signed as registration
        signs (the manifest of its files as they are now): adopting is a registry writer vouching
        for it. Audited as its registration row (reason ``adopted: <reason>``). Refused when the
        version is registered already."""
        from mlflow.exceptions import MlflowException

        number = self._version_number(version)
        why = require_label(reason, "reason", max_chars=MAX_REASON_CHARS)
        who = _actor(actor)
        with self._lock():
            self._recover_locked()
            with self.engine.connect() as conn:
                if number in store.registered_versions(conn, name=self.model_name):
                    raise RefusedError(f"version {number} of model {self.model_name!r} is registered already")
            try:
                mv = self.client.get_model_version(self.model_name, str(number))
            except MlflowException as error:
                raise UnknownVersionError(
                    f"model {self.model_name!r} has no version {number} in MLflow"
                ) from error
            tags = dict(mv.tags or {})
            if SHA256_TAG not in tags or FEATURE_SERVICE_TAG not in tags or not mv.run_id:
                raise RefusedError(
                    f"version {number} was not created by registry_ext (no {SHA256_TAG!r} / "
                    f"{FEATURE_SERVICE_TAG!r} tag or no run): it cannot be verified; delete it with "
                    f"`churnops registry delete-unregistered {number} --reason ...` and register the "
                    "model through churnops"
                )
            digest = require_sha256(tags[SHA256_TAG])
            run = self.client.get_run(mv.run_id)
            artifact_path = self._artifact_path_of(
                source=str(mv.source), run_artifact_uri=run.info.artifact_uri
            )
            location = resolve_model_location(client=self.client, run=run, artifact_path=artifact_path)
            label = f"model {self.model_name!r} version {number} ({location.artifact_uri})"
            if self.signer is None:
                raise RegistrationError(
                    "adopting signs the version, and this registry has no signing key: build it with a "
                    "Signer (churnops.wiring.model_registry(write=True) does)"
                )
            with verified_copy(artifact_uri=location.artifact_uri, expected=digest, label=label) as local:
                manifest = manifest_json(file_manifest(local))
            service = require_text(tags[FEATURE_SERVICE_TAG], "feature_service")
            signature = self._sign(version=number, manifest=manifest, feature_service=service)
            for key, value in signature.tags().items():
                self.client.set_model_version_tag(self.model_name, str(number), key, value)
            metrics = {
                k: float(v)
                for k, v in run.data.metrics.items()
                if isinstance(v, int | float) and v == v and abs(v) != float("inf")
            }
            clean_tags = {
                k: v
                for k, v in tags.items()
                if k not in (SHA256_TAG, FEATURE_SERVICE_TAG, VERSION_STAGE_TAG, *VersionSignature.TAGS)
            }
            when = self.clock()
            target: dict[str, JSONValue] = {"version": number, "run_id": mv.run_id}
            with write_transaction(self.engine) as conn:
                store.insert_version(
                    conn,
                    name=self.model_name,
                    version=number,
                    run_id=mv.run_id,
                    experiment_id=run.info.experiment_id,
                    artifact_uri=location.artifact_uri,
                    sha256=digest,
                    feature_service=service,
                    metrics=require_finite_metrics(metrics),
                    tags=require_tags(clean_tags),
                    gate_results={"adopted": True, "verified_sha256": digest},
                    actor=who,
                    trigger=Trigger.MANUAL.value,
                    created=when,
                    reason=f"adopted: {why}",
                    signature=signature,
                )
                store.insert_intent(
                    conn,
                    name=self.model_name,
                    kind="adopt",
                    actor=who,
                    reason=why,
                    trigger=Trigger.MANUAL.value,
                    target=target,
                    created=when,
                    status="completed",
                    outcome=f"version {number} verified (sha256 {digest[:12]}) and registered",
                )
        return self.get(number)

    @staticmethod
    def _artifact_path_of(*, source: str, run_artifact_uri: str) -> str:
        """The artifact path inside the run for a version's source (``model`` by default)."""
        if source.startswith("runs:/"):
            parts = source.split("/", 3)
            return parts[3] if len(parts) > 3 and parts[3] else MODEL_PATH
        prefix = run_artifact_uri.rstrip("/") + "/"
        return source[len(prefix) :] if source.startswith(prefix) else MODEL_PATH

    def delete_unregistered(self, *, version: int, reason: str, actor: str | None = None) -> IntentRecord:
        """Delete an MLflow version the ``models`` table does not hold (and its aliases), audited
        as a ``delete_unregistered`` intent. Refused for a registered version."""
        from mlflow.exceptions import MlflowException

        number = self._version_number(version)
        why = require_label(reason, "reason", max_chars=MAX_REASON_CHARS)
        who = _actor(actor)
        with self._lock():
            self._recover_locked()
            with self.engine.connect() as conn:
                if number in store.registered_versions(conn, name=self.model_name):
                    raise RefusedError(
                        f"version {number} of model {self.model_name!r} is registered: registered versions "
                        "are archived, never deleted"
                    )
            try:
                mv = self.client.get_model_version(self.model_name, str(number))
            except MlflowException as error:
                raise UnknownVersionError(
                    f"model {self.model_name!r} has no version {number} in MLflow"
                ) from error
            target: dict[str, JSONValue] = {"version": number, "run_id": mv.run_id, "source": mv.source}
            intent_id = self._begin_intent(
                kind="delete_unregistered", actor=who, reason=why, trigger="manual", target=target
            )
            # An alias on the version would vanish with it (and the next reconcile would read that as
            # the table's holder being removed): point it back at the table's holder first.
            with self.engine.connect() as conn:
                expected = aliases_for(store.stage_holders(conn, name=self.model_name))
            aliases = self._aliases()
            on_it = {alias: expected.get(alias) for alias, held in aliases.items() if held == number}
            self._set_aliases(aliases, on_it)
            self.client.delete_model_version(self.model_name, str(number))
            self._close_intent(intent_id, "completed", f"MLflow version {number} deleted")
            with self.engine.connect() as conn:
                return next(i for i in store.fetch_intents(conn, name=self.model_name) if i.id == intent_id)

    def intents(self, *, pending_only: bool = False) -> list[IntentRecord]:
        """The write-ahead intents of this model, oldest first (read-only)."""
        with self.engine.connect() as conn:
            return store.fetch_intents(conn, name=self.model_name, pending_only=pending_only)

    # --- runs left RUNNING by a killed process ---------------------------------------------------

    def fail_stale_runs(
        self,
        *,
        now: datetime,
        stale_after: timedelta = STALE_RUN_AFTER,
        experiment_ids: list[str] | None = None,
    ) -> list[StaleRun]:
        """Mark FAILED every MLflow run still RUNNING whose start and heartbeat
        (:data:`registry_ext.records.HEARTBEAT_TAG`) are older than ``now - stale_after``.

        Looks in ``experiment_ids`` (default: every active experiment). Each run marked is
        recorded as a ``fail_run`` intent (actor ``registry_ext``). ``now`` is injected.
        """
        from mlflow.entities import ViewType

        if experiment_ids is None:
            experiment_ids = [
                e.experiment_id for e in self.client.search_experiments(view_type=ViewType.ACTIVE_ONLY)
            ]
        if not experiment_ids:
            return []
        runs = self.client.search_runs(
            experiment_ids=experiment_ids, filter_string="attributes.status = 'RUNNING'", max_results=1000
        )
        failed: list[StaleRun] = []
        for run in runs:
            last = datetime.fromtimestamp((run.info.start_time or 0) / 1000, tz=UTC)
            beat = run.data.tags.get(HEARTBEAT_TAG)
            if beat:
                try:
                    last = max(last, datetime.fromisoformat(beat).astimezone(UTC))
                except ValueError:
                    _log.warning("run %s has an unreadable %s tag %r", run.info.run_id, HEARTBEAT_TAG, beat)
            if now - last <= stale_after:
                continue
            self.client.set_terminated(run.info.run_id, status="FAILED", end_time=int(now.timestamp() * 1000))
            stale = StaleRun(run_id=run.info.run_id, experiment_id=run.info.experiment_id, last_seen=last)
            with write_transaction(self.engine) as conn:
                store.insert_intent(
                    conn,
                    name=self.model_name,
                    kind="fail_run",
                    actor="registry_ext",
                    reason=f"run left RUNNING with no sign of life since {last:%Y-%m-%d %H:%M} UTC",
                    trigger=Trigger.MANUAL.value,
                    target=stale.to_json(),
                    created=now,
                    status="completed",
                    outcome="marked FAILED in MLflow",
                )
            failed.append(stale)
        return failed

    # --- internals -------------------------------------------------------------------------

    @contextmanager
    def _lock(self) -> Iterator[None]:
        with model_lock(self.engine, name=self.model_name, timeout_s=self.lock_timeout_s):
            yield

    def _version_number(self, version: int | str) -> int:
        try:
            number = int(version)
        except (TypeError, ValueError):
            raise InvalidInputError(f"a version is a positive integer, got {version!r}") from None
        if number < 1:
            raise InvalidInputError(f"a version is a positive integer, got {version!r}")
        return number

    def _alias_version(self, alias: str) -> int | None:
        from mlflow.exceptions import MlflowException

        try:
            version = self.client.get_model_version_by_alias(self.model_name, alias)
        except MlflowException as error:
            code = _mlflow_error_code(error)
            if "RESOURCE_DOES_NOT_EXIST" in code and "alias" not in str(error).lower():
                raise UnknownModelError(f"registered model {self.model_name!r} does not exist") from error
            if "not found" in str(error).lower():
                return None
            raise
        return int(version.version)

    def _alias_versions_sql(self, conn: sa.Connection) -> dict[str, int | None] | None:
        """Both aliases read straight from MLflow's ``registered_model_aliases`` (same database).

        One indexed query instead of MLflow's several per alias (the alias lookup serving polls).
        Read-only. Returns None, and callers ask ``MlflowClient``, when the table does not have the
        expected columns (another MLflow schema) or MLflow workspaces are enabled.
        """
        table = self._mlflow_alias_table()
        if table is None:
            return None
        query = sa.select(table.c.alias, table.c.version).where(
            table.c.name == self.model_name, table.c.alias.in_(list(ALIAS_OF_STAGE.values()))
        )
        if "workspace" in table.c:
            query = query.where(table.c.workspace == "default")
        found = {alias: int(version) for alias, version in conn.execute(query)}
        return {alias: found.get(alias) for alias in ALIAS_OF_STAGE.values()}

    def _mlflow_alias_table(self) -> sa.Table | None:
        if not self._alias_table_usable:
            return None
        if self._alias_table is None:
            try:
                table = sa.Table("registered_model_aliases", sa.MetaData(), autoload_with=self.engine)
            except sa.exc.NoSuchTableError:
                return None  # MLflow has not created its schema yet: ask again next time
            workspaces = os.environ.get("MLFLOW_ENABLE_WORKSPACES", "").strip().lower() in (
                "1",
                "true",
                "yes",
            )
            if workspaces or not {"name", "alias", "version"} <= set(table.c.keys()):
                self._alias_table_usable = False
                return None
            self._alias_table = table
        return self._alias_table

    def _aliases(self) -> dict[str, int | None]:
        return {alias: self._alias_version(alias) for alias in ALIAS_OF_STAGE.values()}

    def _mirror_stage_tags(self, transitions: list[TransitionRecord]) -> None:
        """Copy each new stage to the MLflow version's ``stage`` tag (the UI shows Archived too).

        After the commit: the table is the truth, so a failed tag write does not undo the change;
        the next stage change of that version writes the tag again.
        """
        from mlflow.exceptions import MlflowException

        for transition in transitions:
            try:
                self.client.set_model_version_tag(
                    self.model_name, str(transition.version), VERSION_STAGE_TAG, transition.to_stage.value
                )
            except MlflowException as error:
                _log.warning(
                    "version %s is %s, but its MLflow %r tag could not be written (%s); the next stage "
                    "change of the version writes it",
                    transition.version,
                    transition.to_stage.value,
                    VERSION_STAGE_TAG,
                    error.message,
                    exc_info=error,
                )

    def _set_aliases(self, current: Mapping[str, int | None], wanted: Mapping[str, int | None]) -> None:
        moved = 0
        for alias, version in wanted.items():
            if current.get(alias) == version:
                continue
            if moved:
                crash_point("registry.between_aliases")  # test hook: one alias moved, not the next
            if version is None:
                self.client.delete_registered_model_alias(self.model_name, alias)
            else:
                self.client.set_registered_model_alias(self.model_name, alias, str(version))
            moved += 1

    def _write(
        self,
        changes: list[Change],
        *,
        actor: str,
        trigger: str,
        intent: tuple[int, str, str | None] | None = None,
        fence: Callable[[sa.Connection], None] | None = None,
    ) -> list[TransitionRecord]:
        """Apply ``changes`` in one transaction; returns their transitions in ``changes`` order.

        ``intent`` (id, status, outcome) is closed in the same transaction; ``fence`` runs first in it.
        """
        when = self.clock()
        written: dict[int, TransitionRecord] = {}
        with write_transaction(self.engine) as conn:
            if fence is not None:
                fence(conn)
            for change in write_order(changes):
                written[id(change)] = store.change_stage(
                    conn,
                    name=self.model_name,
                    version=change.version,
                    from_stage=change.from_stage,
                    to_stage=change.to_stage,
                    actor=actor,
                    reason=change.reason,
                    trigger=trigger,
                    time=when,
                )
            if intent is not None:
                store.close_intent(
                    conn, intent_id=intent[0], status=intent[1], finished=when, outcome=intent[2]
                )
        return [written[id(change)] for change in changes]

    def _begin_intent(
        self, *, kind: str, actor: str, reason: str, trigger: str, target: dict[str, JSONValue]
    ) -> int:
        """Write and commit a pending intent (before anything in MLflow moves); returns its id."""
        crash_point("registry.before_intent")  # test hook: nothing written yet
        with write_transaction(self.engine) as conn:
            intent_id = store.insert_intent(
                conn,
                name=self.model_name,
                kind=kind,
                actor=actor,
                reason=reason,
                trigger=trigger,
                target=target,
                created=self.clock(),
            )
        crash_point("registry.after_intent")  # test hook: intent committed, MLflow untouched
        return intent_id

    def _close_intent(self, intent_id: int, status: str, outcome: str | None) -> None:
        with write_transaction(self.engine) as conn:
            store.close_intent(
                conn, intent_id=intent_id, status=status, finished=self.clock(), outcome=outcome
            )

    @staticmethod
    def _intent_target(
        changes: list[Change], before: Mapping[str, int | None], after: Mapping[str, int | None]
    ) -> dict[str, JSONValue]:
        return {
            "changes": [
                {"version": c.version, "from": c.from_stage.value, "to": c.to_stage.value, "reason": c.reason}
                for c in changes
            ],
            "aliases_before": dict(before),
            "aliases_after": dict(after),
        }

    def _recover_locked(self) -> tuple[list[IntentRecord], list[TransitionRecord]]:
        """Finish or revert every pending intent (the caller holds the lock, so their writers died).

        A stage change whose aliases had started to move is finished: the remaining aliases are
        set and the transitions written with the intent's own actor, reason and trigger. Anything
        else is reverted (nothing of it reached both stores). Returns the intents as closed and
        the transitions written.
        """
        with self.engine.connect() as conn:
            pending = store.fetch_intents(conn, name=self.model_name, pending_only=True)
        if not pending:
            return [], []
        from mlflow.exceptions import MlflowException

        written: list[TransitionRecord] = []
        for intent in pending:
            if intent.kind == "delete_unregistered":
                number = int(intent.target["version"])
                try:
                    self.client.get_model_version(self.model_name, str(number))
                except MlflowException as error:
                    if error.error_code != "RESOURCE_DOES_NOT_EXIST":
                        raise  # unreachable or refused: not evidence that the version was deleted
                    self._close_intent(intent.id, "recovered", f"MLflow version {number} was deleted")
                    continue
                self._close_intent(intent.id, "reverted", "interrupted before MLflow deleted the version")
                continue
            if intent.kind not in ("promote", "rollback"):
                # reconcile and the rest redo themselves from MLflow's state: nothing to finish
                self._close_intent(intent.id, "reverted", "interrupted; the next reconcile redoes it")
                continue
            changes = [
                Change(int(c["version"]), Stage(c["from"]), Stage(c["to"]), str(c["reason"]))
                for c in intent.target["changes"]
            ]
            before = {k: (None if v is None else int(v)) for k, v in intent.target["aliases_before"].items()}
            after = {k: (None if v is None else int(v)) for k, v in intent.target["aliases_after"].items()}
            aliases = self._aliases()
            with self.engine.connect() as conn:
                stages = store.fetch_stages(conn, name=self.model_name, versions=[c.version for c in changes])
            decision = plan_recovery(
                changes=changes, stages=stages, before=before, after=after, aliases=aliases
            )
            if decision is Recovery.FINISH:
                self._set_aliases(aliases, after)
                outcome = (
                    f"interrupted after MLflow's aliases started to move; finished by a later command "
                    f"for {intent.actor}"
                )
                done = self._write(
                    changes,
                    actor=intent.actor,
                    trigger=intent.trigger,
                    intent=(intent.id, "recovered", outcome),
                )
                self._mirror_stage_tags(done)
                written.extend(done)
            else:
                self._close_intent(
                    intent.id,
                    "reverted",
                    "interrupted before any alias moved, or the state moved on since; nothing was changed",
                )
        with self.engine.connect() as conn:
            ids = {i.id for i in pending}
            closed = [i for i in store.fetch_intents(conn, name=self.model_name) if i.id in ids]
        return closed, written

    def _reconcile_locked(self) -> tuple[list[TransitionRecord], list[str], dict[str, int | None]]:
        """Adopt alias changes; returns what was recorded, warnings, and the aliases now in MLflow."""
        aliases = self._aliases()
        with self.engine.connect() as conn:
            holders = store.stage_holders(conn, name=self.model_name)
            pointed = [v for v in aliases.values() if v is not None]
            stages = store.fetch_stages(conn, name=self.model_name, versions=pointed)
        plan = plan_reconcile(aliases=aliases, holders=holders, stages=stages)
        warnings = [
            f"{w}: `churnops registry adopt {aliases[a]} --reason ...` or `churnops registry "
            f"delete-unregistered {aliases[a]} --reason ...`"
            if "did not register" in w and (a := next((x for x in aliases if f"{x!r}" in w), None))
            else w
            for w in plan.warnings
        ]
        if not plan.changes and not plan.stale_aliases:
            return [], warnings, aliases
        after = dict(aliases)
        for alias in plan.stale_aliases:
            after[alias] = None
        intent_id = self._begin_intent(
            kind="reconcile",
            actor=MLFLOW_ACTOR,
            reason="aliases moved in MLflow outside registry_ext",
            trigger=Trigger.MANUAL.value,
            target=self._intent_target(plan.changes, aliases, after),
        )
        self._set_aliases(aliases, after)
        crash_point("registry.after_alias")
        recorded = self._write(
            plan.changes,
            actor=MLFLOW_ACTOR,
            trigger=Trigger.MANUAL.value,
            intent=(intent_id, "completed", None),
        )
        crash_point("registry.after_table")
        self._mirror_stage_tags(recorded)
        return recorded, warnings, after

    def _locked_change(
        self,
        plan: Any,
        *,
        kind: str,
        actor: str,
        reason: str,
        trigger: str,
        fence: Callable[[sa.Connection], None] | None = None,
    ) -> list[TransitionRecord]:
        with self._lock():
            self._recover_locked()
            _, _, before = self._reconcile_locked()  # ``before``: the aliases as MLflow has them now
            with self.engine.connect() as conn:
                holders = store.stage_holders(conn, name=self.model_name)
                changes: list[Change] = plan(conn, holders)
            moved = apply_changes(holders, changes)
            after = dict(before)  # touch only the aliases whose stage changes hands
            for stage, alias in ALIAS_OF_STAGE.items():
                if moved.get(stage) != holders.get(stage):
                    after[alias] = moved.get(stage)
            intent_id = self._begin_intent(
                kind=kind,
                actor=actor,
                reason=reason,
                trigger=trigger,
                target=self._intent_target(changes, before, after),
            )
            try:
                self._set_aliases(before, after)
                crash_point("registry.after_alias")  # test hook: aliases moved, table not written
                written = self._write(
                    changes, actor=actor, trigger=trigger, intent=(intent_id, "completed", None), fence=fence
                )
            except BaseException as error:
                try:
                    self._set_aliases(after, before)
                    self._close_intent(intent_id, "reverted", f"failed and undone: {error}")
                except Exception as restore_error:
                    error.add_note(f"restoring the MLflow aliases failed too: {restore_error}")
                if isinstance(error, RegistryError | KeyboardInterrupt):
                    raise
                if isinstance(error, Exception):
                    raise RegistryError(
                        f"the stage change was not recorded, nothing changed: {error}"
                    ) from error
                raise
            crash_point("registry.after_table")  # test hook: everything committed
            self._mirror_stage_tags(written)
            return written
