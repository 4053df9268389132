"""Batch scoring of 1,000,000 active customers next to its floor, measured in the same run.

    uv run python benchmarks/batch_scoring.py [--customers 1000000] [--months 2]

Case ``score``: ``churnops.scoring.batch.score_active_customers`` (active-customer scan, the
point-in-time training-set build through Feast's DuckDB store, ``predict_proba``, ranking and
the prediction-log write, parquet). Case ``floor``: the same training-set build plus
``predict_proba`` alone (the issue's floor). Each case runs in its own process, so peak RSS is
its own. The model is training's logistic-regression pipeline fitted on a sample.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, peak_rss_mb, run_case, timed


def prepare(home: Path, customers: int, months: int) -> None:
    import joblib

    from churnops.contracts.columns import FEATURES, LABEL, feature_names
    from churnops.data.generate import generate_churn_data, write_generated
    from churnops.features.store import apply
    from churnops.settings import Settings
    from churnops.training.candidates import build_pipeline
    from churnops.wiring import feast_definitions, feature_store

    settings = Settings(home=home, _env_file=None)
    data = generate_churn_data(customers=customers, months=months, seed=5)
    write_generated(data=data, sources_dir=settings.sources_dir)
    apply(store=feature_store(settings), defs=feast_definitions(settings))
    sample = data.frame.sample(n=min(50_000, len(data.frame)), random_state=0)
    model = build_pipeline(family="logistic_regression", columns=FEATURES).fit(
        sample[feature_names()], sample[LABEL]
    )
    joblib.dump(model, home / "model.joblib")  # benchmark-local: never how a registered model is stored
    (home / "as_of.txt").write_text(data.last_snapshot.isoformat())


def case(name: str, home: Path) -> dict[str, Any]:
    import joblib
    import pandas as pd

    from churnops.contracts.columns import EVENT_TS, JOIN_KEY, feature_names
    from churnops.features.definitions import TTL
    from churnops.features.training_set import build_training_set
    from churnops.scoring.batch import ScoredModel, active_customers, score_active_customers
    from churnops.settings import Settings
    from churnops.wiring import feature_store, prediction_log_writer

    settings = Settings(home=home, _env_file=None)
    model = joblib.load(home / "model.joblib")
    as_of = pd.Timestamp((home / "as_of.txt").read_text()).to_pydatetime()
    store = feature_store(settings)
    if name == "score":
        result, seconds = timed(
            lambda: score_active_customers(
                store=store,
                model=ScoredModel(name="churn", version="1", feature_service="churn_v1", estimator=model),
                sources_dir=settings.sources_dir,
                as_of=as_of,
                ttl=TTL["account"],
                sink=prediction_log_writer(settings),
            )
        )
        rows, scored = result.rows, result.scored
    else:

        def floor() -> int:
            ids = active_customers(sources_dir=settings.sources_dir, as_of=as_of, ttl=timedelta(days=45))
            entity = pd.DataFrame({JOIN_KEY: ids[JOIN_KEY], EVENT_TS: pd.Timestamp(as_of)})
            frame = build_training_set(store=store, entity_df=entity)
            model.predict_proba(frame[feature_names()])
            return len(frame)

        rows, seconds = timed(floor)
        scored = rows
    return {
        "case": name,
        "seconds": round(seconds, 2),
        "rows": rows,
        "scored": scored,
        "peak_mb": round(peak_rss_mb()),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--months", type=int, default=2)
    parser.add_argument("--case", choices=["score", "floor"])
    parser.add_argument("--home", type=Path)
    args = parser.parse_args()
    if args.case:
        emit(case(args.case, args.home))
        return
    with tempfile.TemporaryDirectory(prefix="churnops-bench-score-") as tmp:
        home = Path(tmp) / "home"
        _, prep = timed(lambda: prepare(home, args.customers, args.months))
        floor = run_case(__file__, "floor", "--home", str(home))
        score = run_case(__file__, "score", "--home", str(home))
    print(f"prepared {args.customers:,} customers x {args.months} months in {prep:.1f} s")
    print(f"{'case':<8} {'wall s':>8} {'rows':>10} {'scored':>10} {'peak MB':>8}")
    for r in (floor, score):
        print(f"{r['case']:<8} {r['seconds']:>8.2f} {r['rows']:>10,} {r['scored']:>10,} {r['peak_mb']:>8,}")
    print(f"score / floor: {score['seconds'] / floor['seconds']:.2f}x")


if __name__ == "__main__":
    main()
