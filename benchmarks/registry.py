"""registry_ext operations at 10, 1,000 and 5,000 versions on SQLite and PostgreSQL.

    uv run python benchmarks/registry.py [--backends sqlite,postgres] [--sizes 10,1000,5000]

Targets: alias lookup p99 <= 10 ms; search at 1,000 versions <= 200 ms.

Seeding: registering thousands of versions through ``ModelRegistry.register`` would log and
hash a model per version, which measures MLflow artifact logging, not the registry. So each
version is created in MLflow with ``MlflowClient.create_model_version`` (source: one small
placeholder directory, no run), and its registry_ext rows (``models`` + registration
transition + ``model_experiments``) are bulk-inserted with the same columns ``register`` writes.
Every tenth version carries the tag ``trigger=drift``. Versions are added incrementally
(10 -> 1,000 -> 5,000) and every operation is measured at each size:

- ``alias lookup``: ``MlflowClient.get_model_version_by_alias(name, "production")`` (what MLflow
  costs) and ``ModelRegistry.production()`` (alias + table, reconciled: what serving calls);
- ``search``: by name + stage + tag (selective), by name + tag (every tenth version), and the
  whole model (``all_versions``);
- ``promote``: Staging -> Production of a fresh version (takes the per-model lock, moves both
  aliases, archives the previous Production, writes the transition rows);
- ``floor``: a bare indexed ``SELECT version FROM models WHERE name = ? AND stage = ?`` on the
  same engine, and ``SELECT 1`` (the round trip).

PostgreSQL needs a server: ``CHURNOPS_TEST_POSTGRES_URL`` (admin URL, default
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``); a temporary database is created and
dropped.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

MODEL = "churn"
ADMIN_URL = os.environ.get(
    "CHURNOPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return p50 * 1000, p99 * 1000


def measure(fn: Callable[[], Any], *, repeat: int, warmup: int = 3) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return percentiles(samples)


@contextmanager
def sqlite_store() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="registry-bench-") as tmp:
        yield f"sqlite:///{Path(tmp) / 'mlflow.db'}"


@contextmanager
def postgres_store() -> Iterator[str]:
    import sqlalchemy as sa

    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"churnops_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def seed(registry: Any, *, source: str, start: int, stop: int) -> None:
    """Create versions ``start..stop-1`` in MLflow (client loop) and bulk-insert their rows."""
    from registry_ext.tables import model_experiments, model_transitions, models

    created = datetime.now(UTC)
    rows, transitions, experiments = [], [], []
    for _ in range(start, stop):
        version = int(registry.client.create_model_version(MODEL, source, await_creation_for=0).version)
        tags = {"trigger": "drift" if version % 10 == 0 else "scheduled", "team": "churn"}
        rows.append(
            {
                "name": MODEL,
                "version": version,
                "stage": "None",
                "run_id": uuid.uuid4().hex,
                "artifact_uri": source,
                "sha256": "0" * 64,
                "feature_service": "churn_v1",
                "metrics": {"test_roc_auc": 0.8 + (version % 100) / 1000},
                "tags": tags,
                "created": created,
            }
        )
        transitions.append(
            {
                "name": MODEL,
                "version": version,
                "from_stage": None,
                "to_stage": "None",
                "actor": "bench",
                "reason": "registered",
                "trigger": "scheduled",
                "gate_results": {"passed": True},
                "time": created,
            }
        )
        experiments.append(
            {
                "name": MODEL,
                "version": version,
                "experiment_id": "0",
                "run_id": rows[-1]["run_id"],
                "created": created,
            }
        )
    with registry.engine.begin() as conn:
        conn.execute(models.insert(), rows)
        conn.execute(model_transitions.insert(), transitions)
        conn.execute(model_experiments.insert(), experiments)


def bench_backend(backend: str, tracking_uri: str, sizes: list[int], repeat: int) -> list[tuple[str, ...]]:
    import sqlalchemy as sa
    from mlflow import MlflowClient

    from registry_ext import ModelRegistry, registry_engine
    from registry_ext.migrate import migrate_to_head

    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    engine = registry_engine(tracking_uri)
    migrate_to_head(engine)
    registry = ModelRegistry(client=client, engine=engine, model_name=MODEL)
    client.create_registered_model(MODEL)
    source = tempfile.mkdtemp(prefix="registry-bench-model-")
    (Path(source) / "MLmodel").write_text("placeholder: true\n")
    promotions = max(10, repeat // 10)
    results: list[tuple[str, ...]] = []
    have = 0
    for size in sizes:
        t0 = time.perf_counter()
        seed(registry, source=source, start=have, stop=size + promotions)
        have = size + promotions
        seeded = time.perf_counter() - t0
        label = f"{size:,}"

        def row(op: str, p50: float, p99: float, note: str = "", label: str = label) -> None:
            results.append((backend, label, op, f"{p50:.2f}", f"{p99:.2f}", note))

        # promote first (fresh versions, stage None: the newest ones), so Production exists for lookups
        samples = []
        for version in range(have, have - promotions, -1):
            start = time.perf_counter()
            registry.promote(version=version, stage="Staging", reason="bench", actor="bench")
            registry.promote(version=version, stage="Production", reason="bench", actor="bench")
            samples.append(time.perf_counter() - start)
        p50, p99 = percentiles(samples)
        row("promote None->Staging->Production", p50, p99, f"n={promotions}, incl. archiving previous")

        row(
            "alias lookup: MLflow get_model_version_by_alias",
            *measure(lambda: client.get_model_version_by_alias(MODEL, "production"), repeat=repeat),
        )
        row("alias lookup: registry.production()", *measure(registry.production, repeat=repeat))
        row(
            "search name+stage+tag",
            *measure(
                lambda: registry.search(name=MODEL, stage="Archived", tags={"trigger": "drift"}),
                repeat=repeat // 4,
            ),
        )
        hits = len(registry.search(name=MODEL, tags={"trigger": "drift"}))
        row(
            "search name+tag",
            *measure(lambda: registry.search(name=MODEL, tags={"trigger": "drift"}), repeat=repeat // 4),
            f"{hits} hits",
        )
        row(
            "search all versions",
            *measure(registry.all_versions, repeat=max(5, repeat // 20)),
            f"{size + promotions} rows",
        )

        def floor() -> None:
            with registry.engine.connect() as conn:
                conn.execute(
                    sa.text("SELECT version FROM models WHERE name = :n AND stage = 'Production'"),
                    {"n": MODEL},
                ).all()

        def round_trip() -> None:
            with registry.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1")).all()

        row("floor: bare indexed SELECT on models", *measure(floor, repeat=repeat))
        row("floor: SELECT 1", *measure(round_trip, repeat=repeat), f"seeded in {seeded:.1f}s")
    registry.engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--sizes", default="10,1000,5000")
    parser.add_argument("--repeat", type=int, default=200, help="samples per lookup (searches use fewer)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    from rich.console import Console
    from rich.table import Table

    rows: list[tuple[str, ...]] = []
    for backend in args.backends.split(","):
        store = sqlite_store if backend == "sqlite" else postgres_store
        with store() as uri:
            rows.extend(bench_backend(backend, uri, sizes, args.repeat))
    table = Table(title="registry_ext operations (ms); targets: alias lookup p99 <= 10, search @1,000 <= 200")
    for column in ("backend", "versions", "operation", "p50 ms", "p99 ms", "note"):
        table.add_column(column, justify="right" if column in ("versions", "p50 ms", "p99 ms") else "left")
    for row in rows:
        table.add_row(*row)
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
