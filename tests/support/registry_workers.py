"""Code that runs in spawned worker processes of the registry concurrency tests.

Kept apart from the test modules so a spawned child imports only what it needs.
"""

from __future__ import annotations

import time
from typing import Any


def warm_up() -> None:
    """Pool initializer: pay the import cost once per worker, before the race starts."""
    import mlflow.tracking  # noqa: F401

    import registry_ext  # noqa: F401


def promote_to_production(task: dict[str, Any]) -> dict[str, Any]:
    """Race: stage this worker's version, then promote it to Production.

    Returns every transition this worker wrote (as JSON) and the errors it got; losing the race
    (the version got archived by another worker's Staging promotion) is an expected error.
    """
    from mlflow import MlflowClient

    from registry_ext import RegistryError
    from tests.support.registry import migrated_engine, signed_registry

    registry = signed_registry(
        MlflowClient(task["tracking_uri"], registry_uri=task["tracking_uri"]),
        migrated_engine(task["tracking_uri"]),
        model_name=task["model_name"],
    )
    registry.reconcile()  # open connections and MLflow's store before the start line
    registry.production()
    written: list[dict[str, Any]] = []
    errors: list[str] = []
    delay = task["start_at"] - time.time()
    if delay > 0:
        time.sleep(delay)
    for stage in ("Staging", "Production"):
        try:
            result = registry.change_stage(
                version=task["version"],
                stage=stage,
                reason=f"worker {task['version']} {stage}",
                actor="racer",
            )
        except RegistryError as error:
            errors.append(f"{type(error).__name__}: {error}")
            break
        written.extend(t.to_json() for t in result.transitions)
        time.sleep(task["pause_s"])  # let the other workers in between our two changes
    registry.engine.dispose()
    return {"version": task["version"], "written": written, "errors": errors}
