"""Training sets on Feast's Spark offline store beside its DuckDB store (the floor), same data.

    uv run python benchmarks/spark_offline.py [--customers 150000] [--months 12] [--entities 100000]

Generates the same data as benchmarks/training_set.py (~1.2M feature rows per view for 150k
customers x 12 months), builds the 100k-row training set once with the DuckDB store and, in a
second Feast project over the same parquet, with the Spark store (``local[2]``, session time
zone UTC), and prints wall times (cold and warm), rows in and out, nulls, and the number of
cells that differ between the two frames (the guarantee: zero).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=150_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--entities", type=int, default=100_000)
    args = parser.parse_args()

    import warnings

    import pandas as pd

    from churnops.data.generate import generate_churn_data, write_generated
    from churnops.features.store import apply
    from churnops.features.training_set import build_training_set
    from churnops.settings import Settings
    from churnops.wiring import feast_definitions, feature_store

    warnings.filterwarnings("ignore", message="The spark .* is an experimental feature")
    with tempfile.TemporaryDirectory(prefix="churnops-bench-spark-") as tmp:
        home = Path(tmp) / "home"
        data = generate_churn_data(customers=args.customers, months=args.months, seed=1)
        base = Settings(home=home, _env_file=None)  # type: ignore[call-arg]
        write_generated(data=data, sources_dir=base.sources_dir)
        labels = data.frame[["customer_id", "event_timestamp", "churned"]]
        entity = labels.sample(n=min(args.entities, len(labels)), random_state=0).reset_index(drop=True)
        print(f"{len(entity):,} entity rows over {len(data.frame):,} feature rows per view (3 views)")
        frames: dict[str, pd.DataFrame] = {}
        times: dict[str, tuple[float, float]] = {}
        for engine in ("duckdb", "spark"):
            settings = base.model_copy(update={"offline_store": engine, "project": f"bench{engine}"})
            store = feature_store(settings)
            apply(store=store, defs=feast_definitions(settings))
            start = time.perf_counter()
            frames[engine] = build_training_set(store=store, entity_df=entity)
            cold = time.perf_counter() - start
            start = time.perf_counter()
            build_training_set(store=store, entity_df=entity)
            times[engine] = (cold, time.perf_counter() - start)
        duck, spark = frames["duckdb"], frames["spark"]
        same_shape = duck.shape == spark.shape and list(duck.columns) == list(spark.columns)
        differing = -1
        if same_shape:
            a, b = duck.astype(object), spark.astype(object)
            both_null = a.isna() & b.isna()
            differing = int(((a != b) & ~both_null).to_numpy().sum())
        print(f"{'engine':<22}{'cold s':>9}{'warm s':>9}{'rows in':>10}{'rows out':>10}{'nulls':>9}")
        for name, engine in (("Feast duckdb (floor)", "duckdb"), ("Feast spark local[2]", "spark")):
            frame = frames[engine]
            cold, warm = times[engine]
            print(
                f"{name:<22}{cold:>9.2f}{warm:>9.2f}{len(entity):>10,}{len(frame):>10,}"
                f"{int(frame.isna().to_numpy().sum()):>9,}"
            )
        print(
            f"identical: {same_shape and differing == 0} ({differing} differing cells); "
            f"spark / duckdb warm: {times['spark'][1] / times['duckdb'][1]:.1f}x"
        )


if __name__ == "__main__":
    main()
