"""The registry_ext schema: Alembic migrations in MLflow's backend database (own version table).

Run only by ``churnops registry migrate`` and the commands that write the registry; opening an
engine never migrates. ``migrate_to_head`` is idempotent and safe from many processes at once
(a database-wide lock; skipped when the schema is current). ``require_current`` is what readers
call: a clear "run churnops registry migrate" instead of a missing-table error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection, Engine

from churnops.contracts.redaction import redact
from registry_ext.engine import write_transaction
from registry_ext.errors import RegistryError
from registry_ext.locking import database_lock
from registry_ext.tables import VERSION_TABLE

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def _alembic_config(connection: Connection) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def current_revision(engine: Engine) -> str | None:
    """The registry_ext schema revision in the database (None before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    head = script.get_current_head()
    assert head is not None
    return head


def migrate_to_head(engine: Engine, *, revision: str = "head") -> None:
    """Upgrade the registry_ext schema to ``revision`` (head); a no-op when it is already there."""
    from alembic import command

    target = head_revision() if revision == "head" else revision
    if current_revision(engine) == target:
        return
    with database_lock(engine, key="registry_ext:migrations"), write_transaction(engine) as conn:
        config = _alembic_config(conn)
        command.upgrade(config, target)


class SchemaNotReadyError(RegistryError):
    """The registry tables are missing or older than this code: ``churnops registry migrate``."""


def require_current(engine: Engine) -> None:
    """Raise :class:`SchemaNotReadyError` unless the registry_ext schema is at head (read-only)."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    where = redact(engine.url.render_as_string(hide_password=False))
    if current is None:
        raise SchemaNotReadyError(
            f"the registry database {where} has no registry_ext tables yet: run `churnops registry migrate` "
            "(or `churnops train`, which creates them)"
        )
    raise SchemaNotReadyError(
        f"the registry database {where} is at schema {current}, this code needs {head}: "
        "run `churnops registry migrate`"
    )
