"""Alembic environment and revisions of the registry_ext tables (run by ``registry_ext.engine``)."""
