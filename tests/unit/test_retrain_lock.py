"""The retrain lock on SQLite: its own flock sidecar, so a retrain that holds it can still take
the registry's stage-change lock, while a second retrain of the same model is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry_ext import RegistryBusyError, registry_engine
from registry_ext.locking import database_lock, model_lock


def test_retrain_lock_is_exclusive_but_does_not_block_stage_changes(tmp_path: Path) -> None:
    engine = registry_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    try:
        with database_lock(engine, key="retrain:churn", timeout_s=0.1):
            with model_lock(engine, name="churn", timeout_s=0.5):  # promote() inside a retrain
                pass
            with (
                pytest.raises(RegistryBusyError, match="retrain:churn"),
                database_lock(engine, key="retrain:churn", timeout_s=0.1),
            ):
                pass
            with database_lock(engine, key="retrain:other", timeout_s=0.1):  # another model
                pass
        with database_lock(engine, key="retrain:churn", timeout_s=0.1):  # released
            pass
    finally:
        engine.dispose()
