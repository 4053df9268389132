"""Alembic environment, run programmatically by :func:`registry_ext.engine.migrate`.

The caller passes an open connection (already in a transaction, holding the migration lock)
in ``config.attributes["connection"]``. No logging configuration, no ini file: running the
migrations must not change the host application's logging.
"""

from __future__ import annotations

from alembic import context

from registry_ext.tables import VERSION_TABLE, metadata


def run_migrations_online() -> None:
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():  # pragma: no cover - offline SQL generation is not supported
    raise RuntimeError("registry_ext migrations run online only")
run_migrations_online()
