"""ModelRegistry: versions, stages, aliases and the audit trail of one registered model.

The ``models`` table is the source of truth for stages; MLflow's ``staging`` / ``production``
aliases mirror it. Every stage change runs under the per-model lock (``registry_ext.locking``):

1. read the aliases and the stage holders, adopt any alias moved in MLflow (``reconcile``);
2. plan the change (``registry_ext.lifecycle``), refusing what the lifecycle does not allow;
3. set the MLflow aliases to what the table will say;
4. in one database transaction, change ``models.stage`` and append the ``model_transitions``
   rows; if that fails, put the aliases back.

A crash between 3 and 4 leaves an alias ahead of the table; the next ``reconcile`` records it
(actor ``mlflow``), so the trail stays complete. With an MLflow *server*, its registry webhooks
(``model_version_alias.created`` / ``.deleted``) can call ``reconcile`` to record such changes
as they happen; nothing here depends on a server.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from churnops.contracts.artifacts import (
    FEATURE_SERVICE_TAG,
    MANIFEST_TAG,
    MAX_MANIFEST_CHARS,
    SHA256_TAG,
    ArtifactIntegrityError,
    SignatureError,
    VersionSignature,
    file_manifest,
    manifest_digest,
    manifest_json,
    parse_manifest,
    signed_payload,
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
    InvalidInputError,
    NoRollbackTargetError,
    RegistrationError,
    RegistryError,
    UnknownModelError,
    UnknownVersionError,
)
from registry_ext.lifecycle import (
    Change,
    aliases_for,
    apply_changes,
    plan_promotion,
    plan_reconcile,
    plan_rollback,
    rollback_target,
    write_order,
)
from registry_ext.locking import DEFAULT_LOCK_TIMEOUT_S, model_lock
from registry_ext.records import (
    MAX_ACTOR_CHARS,
    MAX_REASON_CHARS,
    MLFLOW_ACTOR,
    JSONValue,
    ModelRecord,
    PromotionResult,
    ReconcileReport,
    SearchQuery,
    TransitionRecord,
    parse_stage,
    parse_trigger,
    require_finite_metrics,
    require_label,
    require_sha256,
    require_tags,
    require_text,
)
from registry_ext.search import search_query

STAGE_TAG = "stage"
"""MLflow model-version tag mirroring the registry stage (aliases only name Staging/Production)."""

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
        signer: Signer | None = None,
        verifier: Verifier | None = None,
    ) -> None:
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
        artifact_path: str = "model",
        sha256: str,
        feature_service: str,
        metrics: Mapping[str, float],
        tags: Mapping[str, str] | None = None,
        gate_results: JSONValue = None,
        actor: str | None = None,
        trigger: str = "manual",
    ) -> ModelRecord:
        """Register the model logged at ``artifact_path`` in run ``run_id`` as a new version.

        Checks the artifact's SHA-256 against ``sha256`` before anything is created, records the
        manifest of the files as logged (each file's SHA-256) and signs (name, version, manifest
        digest, feature service) with the registry's key: the signature, key id and manifest go
        into the version's MLflow tags (what serving reads) and its ``models`` row. The MLflow
        version and its ``models`` row come together or not at all: if the database write fails,
        the MLflow version is deleted again and :class:`RegistrationError` is raised.
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
            STAGE_TAG: Stage.NONE.value,
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
                    created=store.utcnow(),
                    signature=signature,
                )
        except Exception as error:
            cleanup = ""
            try:
                self.client.delete_model_version(name=self.model_name, version=str(number))
            except Exception as delete_error:
                cleanup = f"; deleting MLflow version {number} failed too: {delete_error}"
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
    ) -> TransitionRecord:
        """Move ``version`` to ``stage``; see :meth:`change_stage` for what else it writes."""
        return self.change_stage(
            version=version, stage=stage, reason=reason, actor=actor, trigger=trigger
        ).transition

    def change_stage(
        self,
        *,
        version: int,
        stage: str | Stage,
        reason: str,
        actor: str | None = None,
        trigger: str = "manual",
    ) -> PromotionResult:
        """Move ``version`` to ``stage``, archiving the version that held Staging/Production.

        Returns the requested transition and those of the displaced version. Raises a
        :class:`RegistryError` (nothing written) for an unknown version, an empty reason, an
        invalid stage or trigger, or a change the lifecycle does not allow.
        """
        number = self._version_number(version)
        target = parse_stage(stage)
        why = require_label(reason, "reason", max_chars=MAX_REASON_CHARS)
        who = require_label(
            actor if actor is not None else default_actor(), "actor", max_chars=MAX_ACTOR_CHARS
        )
        kind = parse_trigger(trigger).value
        if target in (Stage.STAGING, Stage.PRODUCTION):
            # What serving would load: a missing or altered artifact never reaches an alias.
            # (An unknown model or version is reported by the locked plan below.)
            with contextlib.suppress(UnknownVersionError):
                self.verify_artifact(number, purpose=f"move version {number} to {target.value}")

        def plan(conn: sa.Connection, holders: Mapping[Stage, int]) -> list[Change]:
            current = store.fetch_stages(conn, name=self.model_name, versions=[number]).get(number)
            if current is None:
                raise UnknownVersionError(f"model {self.model_name!r} has no version {number}")
            return plan_promotion(version=number, current=current, target=target, holders=holders, reason=why)

        written = self._locked_change(plan, actor=who, trigger=kind)
        return PromotionResult(transition=written[0], displaced=tuple(written[1:]))

    def rollback(self, *, reason: str, actor: str | None = None, trigger: str = "manual") -> PromotionResult:
        """Return Production to the version that was Production before the current one.

        The returned transition is the previous version's Archived -> Production; ``displaced``
        holds the current version's Production -> Archived. Both carry ``reason``.
        """
        why = require_label(reason, "reason", max_chars=MAX_REASON_CHARS)
        who = require_label(
            actor if actor is not None else default_actor(), "actor", max_chars=MAX_ACTOR_CHARS
        )
        kind = parse_trigger(trigger).value
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
                raise RegistryError("Production changed while rolling back; run the rollback again")
            target_stage = store.fetch_stages(conn, name=self.model_name, versions=[target])[target]
            return plan_rollback(current=current, target=target, target_stage=target_stage, reason=why)

        written = self._locked_change(plan, actor=who, trigger=kind)
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
        """Record alias changes made directly in MLflow (actor ``mlflow``); cheap when none.

        A model MLflow does not know yet has nothing to reconcile (an empty report).
        """
        with self.engine.connect() as conn:
            aliases = self._alias_versions_sql(conn)
            holders = store.stage_holders(conn, name=self.model_name)
        if aliases is None:
            try:
                aliases = self._aliases()
            except UnknownModelError:
                return ReconcileReport()
        if aliases_for(holders) == aliases:
            return ReconcileReport()
        try:
            self._aliases()
        except UnknownModelError:
            return ReconcileReport()
        with self._lock():
            recorded, warnings, _ = self._reconcile_locked()
        return ReconcileReport(recorded=tuple(recorded), warnings=tuple(warnings))

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
            with suppress(MlflowException):
                self.client.set_model_version_tag(
                    self.model_name, str(transition.version), STAGE_TAG, transition.to_stage.value
                )

    def _set_aliases(self, current: Mapping[str, int | None], wanted: Mapping[str, int | None]) -> None:
        for alias, version in wanted.items():
            if current.get(alias) == version:
                continue
            if version is None:
                self.client.delete_registered_model_alias(self.model_name, alias)
            else:
                self.client.set_registered_model_alias(self.model_name, alias, str(version))

    def _write(self, changes: list[Change], *, actor: str, trigger: str) -> list[TransitionRecord]:
        """Apply ``changes`` in one transaction; returns their transitions in ``changes`` order."""
        when = store.utcnow()
        written: dict[int, TransitionRecord] = {}
        with write_transaction(self.engine) as conn:
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
        return [written[id(change)] for change in changes]

    def _reconcile_locked(self) -> tuple[list[TransitionRecord], list[str], dict[str, int | None]]:
        """Adopt alias changes; returns what was recorded, warnings, and the aliases now in MLflow."""
        aliases = self._aliases()
        with self.engine.connect() as conn:
            holders = store.stage_holders(conn, name=self.model_name)
            pointed = [v for v in aliases.values() if v is not None]
            stages = store.fetch_stages(conn, name=self.model_name, versions=pointed)
        plan = plan_reconcile(aliases=aliases, holders=holders, stages=stages)
        recorded = (
            self._write(plan.changes, actor=MLFLOW_ACTOR, trigger=Trigger.MANUAL.value)
            if plan.changes
            else []
        )
        self._mirror_stage_tags(recorded)
        for alias in plan.stale_aliases:
            self.client.delete_registered_model_alias(self.model_name, alias)
            aliases[alias] = None
        return recorded, plan.warnings, aliases

    def _locked_change(
        self,
        plan: Any,
        *,
        actor: str,
        trigger: str,
    ) -> list[TransitionRecord]:
        with self._lock():
            _, _, before = self._reconcile_locked()  # ``before``: the aliases as MLflow has them now
            with self.engine.connect() as conn:
                holders = store.stage_holders(conn, name=self.model_name)
                changes: list[Change] = plan(conn, holders)
            moved = apply_changes(holders, changes)
            after = dict(before)  # touch only the aliases whose stage changes hands
            for stage, alias in ALIAS_OF_STAGE.items():
                if moved.get(stage) != holders.get(stage):
                    after[alias] = moved.get(stage)
            try:
                self._set_aliases(before, after)
                written = self._write(changes, actor=actor, trigger=trigger)
            except BaseException as error:
                try:
                    self._set_aliases(after, before)
                except Exception as restore_error:
                    error.add_note(f"restoring the MLflow aliases failed too: {restore_error}")
                if isinstance(error, RegistryError | KeyboardInterrupt):
                    raise
                if isinstance(error, Exception):
                    raise RegistryError(
                        f"the stage change was not recorded, nothing changed: {error}"
                    ) from error
                raise
            self._mirror_stage_tags(written)
            return written
