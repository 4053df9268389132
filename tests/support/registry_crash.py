"""The process the crash-consistency tests kill: one registry write, run with CHURNOPS_CRASH_AT.

``python -m tests.support.registry_crash <tracking_uri> <model> <op> [version]`` (or
:func:`killed_process` in a forkserver child whose parent preloaded :data:`PRELOAD`, which
spares each case ~30 s of imports on a loaded machine) performs ``op``
(register, promote, rollback, rollback_to) as actor ``killed-actor`` with reason
``killed-reason`` and exits 0, or dies with status 137 at the commit point named by
``CHURNOPS_CRASH_AT`` (``churnops.contracts.crash_points``). ``registry.register.after_table``
is checked here, right after ``register`` returns: nothing else happens in ``register`` after
its commit.
"""

from __future__ import annotations

import os
import sys

ACTOR = "killed-actor"
REASON = "killed-reason"
PRELOAD = ["mlflow", "mlflow.tracking", "registry_ext", "registry_ext.migrate", "tests.support.registry"]


def killed_process(point: str, argv: list[str]) -> None:
    """A forkserver child's target: arm the crash point, then run :func:`main` (exit code 0 or 137)."""
    from churnops.contracts.crash_points import CRASH_ENV

    os.environ[CRASH_ENV] = point
    sys.exit(main(argv))


def main(argv: list[str]) -> int:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow import MlflowClient

    from churnops.contracts.crash_points import crash_point
    from registry_ext import ModelRegistry
    from tests.support.registry import log_candidate, migrated_engine, signed_registry

    tracking_uri, model, op = argv[:3]
    version = int(argv[3]) if len(argv) > 3 else None
    registry: ModelRegistry = signed_registry(
        MlflowClient(tracking_uri, registry_uri=tracking_uri), migrated_engine(tracking_uri), model_name=model
    )
    if op == "register":
        experiment = registry.client.get_experiment_by_name(f"exp-{model}")
        assert experiment is not None
        logged = log_candidate(registry.client, experiment_id=experiment.experiment_id, seed=version or 9)
        registry.register(
            run_id=logged.run_id,
            sha256=logged.sha256,
            feature_service="churn_v1",
            metrics={"test_roc_auc": 0.8},
            gate_results={"passed": True, "checks": [{"name": "roc_auc_floor", "passed": True}]},
            actor=ACTOR,
        )
        crash_point("registry.register.after_table")
    elif op == "promote":
        assert version is not None
        registry.promote(version=version, stage="Production", reason=REASON, actor=ACTOR, trigger="drift")
    elif op == "rollback":
        registry.rollback(reason=REASON, actor=ACTOR, trigger="performance")
    elif op == "rollback_to":
        registry.rollback(reason=REASON, actor=ACTOR, trigger="performance", to=version)
    else:
        raise SystemExit(f"unknown op {op!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
