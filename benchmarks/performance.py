"""Live performance on late labels (monitoring.performance) next to its floor, in the same run.

    uv run python benchmarks/performance.py [--customers 250000] [--snapshots 4] [--seed 1]

The prediction log holds one scored row per customer-snapshot plus 10% re-scorings (duplicates),
two model versions; the labels one row per customer-snapshot. Each case runs in a fresh process:

- report:  performance_on_late_labels, weekly periods (join, dedup, maturity, per version and week:
           the training metrics, label lag)
- floor:   one pandas inner merge of the same frames on (customer_id, timestamp) and one
           sklearn roc_auc_score over the joined rows: the least any such report must do
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import emit, peak_rss_mb, run_case, timed

START = datetime(2026, 1, 1, tzinfo=UTC)


def frames(*, customers: int, snapshots: int, seed: int) -> tuple[Any, Any]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    ids = np.asarray([f"{i:07d}-BENCH" for i in range(customers)], dtype=object)
    rows = customers * snapshots
    cust = np.tile(ids, snapshots)
    snap = pd.DatetimeIndex(
        np.repeat([START + timedelta(days=31 * k) for k in range(snapshots)], customers)
    ).astype("datetime64[us, UTC]")
    churned = (rng.uniform(size=rows) < 0.05).astype("int64")
    score = np.clip(0.05 + 0.3 * churned + rng.normal(0, 0.1, rows), 0.001, 0.999)
    labels = pd.DataFrame(
        {
            "customer_id": cust,
            "event_timestamp": snap,
            "created": snap + pd.to_timedelta(rng.integers(60, 3600, rows), unit="s"),
            "churned": churned,
        }
    )
    extra = rng.choice(rows, size=rows // 10, replace=False)
    index = np.concatenate([np.arange(rows), extra])
    ts = snap[index] + pd.to_timedelta(rng.integers(0, 20 * 86400, index.size), unit="s")
    predictions = pd.DataFrame(
        {
            "request_id": np.arange(index.size).astype(str),
            "ts": ts,
            "feature_ts": snap[index],
            "customer_id": cust[index],
            "model_name": "churn",
            "model_version": np.where(rng.uniform(size=index.size) < 0.5, "1", "2"),
            "score": score[index],
            "status": "ok",
        }
    )
    return predictions, labels


def case_report(args: argparse.Namespace) -> dict[str, Any]:
    from monitoring.performance import performance_on_late_labels

    predictions, labels = frames(customers=args.customers, snapshots=args.snapshots, seed=args.seed)
    as_of = START + timedelta(days=31 * (args.snapshots + 1))
    cpu = time.process_time()
    report, seconds = timed(
        lambda: performance_on_late_labels(
            predictions=predictions,
            labels=labels,
            as_of=as_of,
            period="week",
            threshold=0.2,
            reference_metrics={"1": {"test_roc_auc": 0.9}, "2": {"test_roc_auc": 0.9}},
        )
    )
    return {
        "case": "report",
        "seconds": round(seconds, 2),
        "cpu_seconds": round(time.process_time() - cpu, 2),
        "prediction_rows": len(predictions),
        "matured": report.matured,
        "duplicates": report.duplicates,
        "groups": len(report.periods),
        "roc_auc_v1": round(report.versions[0].metrics["roc_auc"], 4),
        "peak_rss_mb": round(peak_rss_mb()),
    }


def case_floor(args: argparse.Namespace) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score

    predictions, labels = frames(customers=args.customers, snapshots=args.snapshots, seed=args.seed)

    def floor() -> Any:
        joined = predictions.merge(
            labels, left_on=["customer_id", "feature_ts"], right_on=["customer_id", "event_timestamp"]
        )
        return len(joined), roc_auc_score(joined["churned"], joined["score"])

    cpu = time.process_time()
    (rows, _), seconds = timed(floor)
    return {
        "case": "floor",
        "seconds": round(seconds, 2),
        "cpu_seconds": round(time.process_time() - cpu, 2),
        "joined": rows,
        "peak_rss_mb": round(peak_rss_mb()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=250_000)
    parser.add_argument("--snapshots", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--case", choices=("report", "floor"))
    args = parser.parse_args()
    if args.case:
        emit({"report": case_report, "floor": case_floor}[args.case](args))
        return
    passed = (
        "--customers",
        str(args.customers),
        "--snapshots",
        str(args.snapshots),
        "--seed",
        str(args.seed),
    )
    report = run_case(__file__, "report", *passed)
    floor = run_case(__file__, "floor", *passed)
    print(f"prediction rows     {report['prediction_rows']:,} ({report['duplicates']:,} re-scorings)")
    print(
        f"report              {report['seconds']:.2f} s ({report['cpu_seconds']:.2f} s CPU), "
        f"{report['peak_rss_mb']} MB, "
        f"{report['matured']:,} matured rows, {report['groups']} version-weeks"
    )
    print(
        f"floor (merge + AUC) {floor['seconds']:.2f} s ({floor['cpu_seconds']:.2f} s CPU), "
        f"{floor['peak_rss_mb']} MB, "
        f"{floor['joined']:,} joined rows"
    )
    print(
        f"ratio               {report['seconds'] / max(floor['seconds'], 1e-9):.2f}x floor wall, "
        f"{report['cpu_seconds'] / max(floor['cpu_seconds'], 1e-9):.2f}x CPU"
    )


if __name__ == "__main__":
    main()
