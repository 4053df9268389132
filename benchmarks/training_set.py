"""Training-set build: Feast (DuckDB offline store) vs a raw DuckDB ASOF JOIN on the same parquet.

    uv run python benchmarks/training_set.py [--customers 100000] [--months 12] [--entities 100000]

Prints wall time, peak RSS and rows in/out for both, in one run (each case in its own process).
Target on the 2-core machine: Feast within 1.5x the ASOF floor and under 2 GB.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, peak_rss_mb, run_case, timed  # noqa: E402


def prepare(home: Path, customers: int, months: int, entities: int) -> None:
    import pandas as pd

    from churnops.data.generate import generate_churn_data, write_generated
    from churnops.features.store import apply, definitions, feature_store
    from churnops.settings import Settings

    settings = Settings(home=home, _env_file=None)  # type: ignore[call-arg]
    data = generate_churn_data(customers=customers, months=months, seed=1)
    write_generated(data=data, sources_dir=settings.sources_dir)
    apply(store=feature_store(settings), defs=definitions(settings))
    labels = data.frame[["customer_id", "event_timestamp", "churned"]]
    entity = labels.sample(n=min(entities, len(labels)), random_state=0).reset_index(drop=True)
    entity.to_parquet(home / "entity.parquet", index=False)
    emit({"feature_rows_per_view": len(data.frame), "entity_rows": len(entity), "ok": pd.__version__ != ""})


def case_feast(home: Path) -> None:
    import pandas as pd

    from churnops.features.store import feature_store
    from churnops.features.training_set import build_training_set
    from churnops.settings import Settings

    settings = Settings(home=home, _env_file=None)  # type: ignore[call-arg]
    store = feature_store(settings)
    entity = pd.read_parquet(home / "entity.parquet")
    frame, seconds = timed(lambda: build_training_set(store=store, entity_df=entity))
    emit({"case": "feast", "seconds": seconds, "rows_in": len(entity), "rows_out": len(frame), "rss_mb": peak_rss_mb()})


def case_asof(home: Path) -> None:
    import duckdb

    from churnops.features.definitions import TTL
    from churnops.schema import VIEWS, view_columns

    con = duckdb.connect()
    con.execute("SET threads TO 2")

    def query() -> int:
        con.execute(f"CREATE OR REPLACE TEMP TABLE e AS SELECT *, row_number() OVER () AS rid FROM '{home}/entity.parquet'")
        selects, joins = [], []
        for view in VIEWS:
            cols = [c.name for c in view_columns(view)]
            ttl_s = int(TTL[view].total_seconds())
            # Ties on event time: keep the latest created, as Feast does.
            src = (
                f"(SELECT * FROM read_parquet('{home}/sources/{view}/*.parquet') "
                f"QUALIFY row_number() OVER (PARTITION BY customer_id, event_timestamp ORDER BY created DESC) = 1)"
            )
            joins.append(
                f"ASOF LEFT JOIN {src} {view} ON e.customer_id = {view}.customer_id "
                f"AND e.event_timestamp >= {view}.event_timestamp"
            )
            selects += [
                f"CASE WHEN {view}.event_timestamp >= e.event_timestamp - INTERVAL {ttl_s} SECOND "
                f"THEN {view}.{c} END AS {c}"
                for c in cols
            ]
        sql = f"SELECT e.*, {', '.join(selects)} FROM e {' '.join(joins)} ORDER BY rid"
        return len(con.execute(sql).df())

    rows_in = con.execute(f"SELECT count(*) FROM '{home}/entity.parquet'").fetchone()[0]  # type: ignore[index]
    rows_out, seconds = timed(query)
    emit({"case": "asof", "seconds": seconds, "rows_in": rows_in, "rows_out": rows_out, "rss_mb": peak_rss_mb()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--case", choices=["prepare", "feast", "asof"])
    parser.add_argument("--home")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--entities", type=int, default=100_000)
    args = parser.parse_args()
    if args.case == "prepare":
        prepare(Path(args.home), args.customers, args.months, args.entities)
        return
    if args.case == "feast":
        case_feast(Path(args.home))
        return
    if args.case == "asof":
        case_asof(Path(args.home))
        return
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        prep = run_case(__file__, "prepare", "--home", str(home), "--customers", str(args.customers),
                        "--months", str(args.months), "--entities", str(args.entities))
        floor = run_case(__file__, "asof", "--home", str(home))
        feast = run_case(__file__, "feast", "--home", str(home))
    print(f"training set: {prep['entity_rows']:,} entity rows over {prep['feature_rows_per_view']:,} feature rows per view (3 views)")
    print(f"{'case':<22}{'wall s':>10}{'peak RSS MB':>14}{'rows in':>12}{'rows out':>12}")
    for name, r in (("DuckDB ASOF (floor)", floor), ("Feast duckdb store", feast)):
        print(f"{name:<22}{r['seconds']:>10.2f}{r['rss_mb']:>14.0f}{r['rows_in']:>12,}{r['rows_out']:>12,}")
    print(f"ratio to floor: {feast['seconds'] / floor['seconds']:.2f}x (target <= 1.5x); "
          f"peak RSS {feast['rss_mb']:.0f} MB (target < 2048 MB)")


if __name__ == "__main__":
    main()
