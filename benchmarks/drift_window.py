"""`monitor drift`'s read of a large window, in bounded memory, next to a DuckDB floor.

    uv run python benchmarks/drift_window.py [--rows 5000000] [--files 600] [--with-unbounded]

Data: a prediction log of ``--rows`` batch rows of one model version in one 31-day window (the
log's real layout: ``date=`` partitions, ``--files`` part files, every column of the contract,
features drawn per kind), plus 10 % of them logged a second time (a repeated request) and a
what-if flood, which the window must not count. Each case runs in a fresh interpreter so its peak
RSS is its own:

- bounded:   what ``churnops.jobs.drift_report`` reads: ``sample_window`` of the window and of
             the window plus the label horizon (de-duplicated, counted whole, a seeded sample of
             the policy's ``current_rows``), then ``detect_drift`` of the sample against a 100k
             reference (Evidently).
- floor:     DuckDB straight from the parquet files, in the same memory limit: the count of
             distinct prediction keys and, per feature, the histogram of the window's scored rows
             (no sample, no de-duplication of the rows themselves: less work than the real job).
- unbounded: (``--with-unbounded``) the read before issue 18: the whole window with every column
             into pandas.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import emit, peak_rss_mb, run_case

START = datetime(2025, 3, 1, tzinfo=UTC)
END = START + timedelta(days=31)


def _draw(n: int, rng: Any) -> dict[str, Any]:
    import numpy as np

    from churnops.contracts.columns import FEATURES

    out: dict[str, Any] = {}
    for col in FEATURES:
        if col.kind == "category":
            out[col.name] = np.asarray(col.categories, dtype=object)[rng.integers(0, len(col.categories), n)]
        elif col.kind == "flag":
            out[col.name] = rng.integers(0, 2, n)
        elif col.kind == "int":
            out[col.name] = rng.integers(0, 72, n)
        else:
            out[col.name] = np.round(rng.uniform(18, 120, n) * (72 if col.name == "total_charges" else 1), 2)
    out["score"] = rng.beta(2, 6, n)
    return out


def _prepare(directory: Path, rows: int, files: int) -> dict[str, Any]:
    import numpy as np

    from churnops.contracts.prediction_log import (
        BATCH_ENDPOINT,
        COLUMNS,
        WHAT_IF_ENDPOINT,
        write_columns,
    )

    rng = np.random.default_rng(7)
    log = directory / "predictions"
    per_file = rows // files
    written = 0
    for i in range(files):
        n = per_file if i < files - 1 else rows - written
        day = START + timedelta(days=i * 31 // files)
        first = written
        drawn = _draw(n, rng)
        ids = np.char.add("C-", np.arange(first, first + n).astype(str)).astype(object)
        columns: dict[str, Any] = {
            "request_id": [f"batch-{i}"] * n,
            "ts": [day + timedelta(hours=1)] * n,
            "endpoint": [BATCH_ENDPOINT] * n,
            "customer_id": ids,
            "model_name": ["churn"] * n,
            "model_version": ["1"] * n,
            "feature_service": ["churn_v1"] * n,
            "status": ["ok"] * n,
            "feature_ts": [day] * n,
            **drawn,
        }
        write_columns(directory=log, day=f"{day:%Y-%m-%d}", columns={c: columns[c] for c in COLUMNS})
        if i % 10 == 0:  # a tenth of the files asked for again: the same rows, later
            again = dict(columns) | {"request_id": [f"again-{i}"] * n, "ts": [day + timedelta(hours=5)] * n}
            write_columns(directory=log, day=f"{day:%Y-%m-%d}", columns={c: again[c] for c in COLUMNS})
        written += n
    flood = _draw(4000, rng) | {"monthly_charges": np.full(4000, 400.0)}
    what_if = {
        "request_id": ["what-if"] * 4000,
        "ts": [START + timedelta(days=3)] * 4000,
        "endpoint": [WHAT_IF_ENDPOINT] * 4000,
        "customer_id": [None] * 4000,
        "model_name": ["churn"] * 4000,
        "model_version": ["1"] * 4000,
        "feature_service": ["churn_v1"] * 4000,
        "status": ["ok"] * 4000,
        "feature_ts": [START] * 4000,
        **flood,
    }
    write_columns(directory=log, day=f"{START:%Y-%m-%d}", columns={c: what_if[c] for c in COLUMNS})
    reference = _draw(100_000, rng)
    import pandas as pd

    pd.DataFrame(reference).to_parquet(directory / "reference.parquet")
    size = sum(f.stat().st_size for f in log.rglob("*.parquet"))
    return {"case": "prepare", "files": len(list(log.rglob("*.parquet"))), "log_mb": size / 1e6}


def _case_bounded(directory: Path) -> dict[str, Any]:
    import pandas as pd

    from churnops.contracts.prediction_log import sample_window
    from monitoring.policy import load_policy

    policy = load_policy()
    log = directory / "predictions"
    start = time.perf_counter()
    sample = sample_window(
        log,
        start=START,
        end=END,
        model_name="churn",
        model_version="1",
        max_rows=policy.current_rows,
        seed=policy.seed,
    )
    sampled = time.perf_counter()
    outcomes = sample_window(  # the window and the horizon before it, for the matured labels
        log,
        start=START - timedelta(days=31),
        end=END,
        model_name="churn",
        model_version="1",
        max_rows=policy.current_rows,
        seed=policy.seed,
    )
    outcomes_rows = outcomes.rows
    read = time.perf_counter()
    from monitoring.drift import detect_drift

    result = detect_drift(
        reference=pd.read_parquet(directory / "reference.parquet"),
        current=sample.frame,
        policy=policy,
        model_name="churn",
        model_version=1,
        window_start=START,
        window_end=END,
    )
    done = time.perf_counter()
    return {
        "case": "bounded",
        "sample_s": sampled - start,
        "projected_s": read - sampled,
        "detect_s": done - read,
        "wall_s": done - start,
        "peak_rss_mb": peak_rss_mb(),
        "window_rows": sample.rows,
        "sampled_rows": len(sample.frame),
        "outcome_rows": outcomes_rows,
        "status": result.status,
    }


def _case_floor(directory: Path) -> dict[str, Any]:
    import duckdb

    from churnops.contracts.columns import FEATURES

    log = directory / "predictions"
    files = sorted(str(f) for f in log.rglob("*.parquet"))
    start = time.perf_counter()
    spill = tempfile.mkdtemp(prefix="floor-")
    con = duckdb.connect(config={"memory_limit": "512MB", "temp_directory": spill})
    source = "read_parquet($files) WHERE endpoint IN ('predict', 'batch') AND status = 'ok'"
    source += " AND ts >= $lo AND ts < $hi"
    values = {"files": files, "lo": START, "hi": END}
    ((rows,),) = con.execute(
        f"SELECT count(DISTINCT hash(model_version, customer_id, feature_ts)) FROM {source}", values
    ).fetchall()
    buckets = 0
    for col in FEATURES:
        if col.kind in ("int", "float"):
            query = f"SELECT floor({col.name} / 5) AS b, count(*) FROM {source} GROUP BY b"
        else:
            query = f"SELECT {col.name}, count(*) FROM {source} GROUP BY 1"
        buckets += len(con.execute(query, values).fetchall())
    con.close()
    return {
        "case": "floor",
        "wall_s": time.perf_counter() - start,
        "peak_rss_mb": peak_rss_mb(),
        "window_rows": rows,
        "buckets": buckets,
    }


def _case_unbounded(directory: Path) -> dict[str, Any]:
    from churnops.contracts.prediction_log import read_prediction_log

    start = time.perf_counter()
    frame = read_prediction_log(
        directory / "predictions", start=START - timedelta(days=31), end=END
    ).to_pandas()
    return {
        "case": "unbounded",
        "wall_s": time.perf_counter() - start,
        "peak_rss_mb": peak_rss_mb(),
        "rows": len(frame),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", choices=("prepare", "bounded", "floor", "unbounded"))
    parser.add_argument("--dir")
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--files", type=int, default=600)
    parser.add_argument("--with-unbounded", action="store_true")
    args = parser.parse_args()
    if args.case == "prepare":
        emit(_prepare(Path(args.dir), args.rows, args.files))
        return
    if args.case:
        cases = {"bounded": _case_bounded, "floor": _case_floor, "unbounded": _case_unbounded}
        emit(cases[args.case](Path(args.dir)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        prepared = run_case(
            __file__, "prepare", "--dir", tmp, "--rows", str(args.rows), "--files", str(args.files)
        )
        print(
            f"log: {args.rows:,} rows (+10 % asked again, + a 4,000-row what-if flood) in "
            f"{prepared['files']} files, {prepared['log_mb']:.0f} MB",
            flush=True,
        )
        bounded = run_case(__file__, "bounded", "--dir", tmp)
        floor = run_case(__file__, "floor", "--dir", tmp)
        unbounded = run_case(__file__, "unbounded", "--dir", tmp) if args.with_unbounded else None
    print(
        f"bounded (monitor drift's reads + detect_drift): wall {bounded['wall_s']:.1f} s "
        f"(window sample {bounded['sample_s']:.1f} s, "
        f"window + horizon sample {bounded['projected_s']:.1f} s, "
        f"detect {bounded['detect_s']:.1f} s), peak RSS {bounded['peak_rss_mb']:.0f} MB; "
        f"{bounded['window_rows']:,} window rows counted, {bounded['sampled_rows']:,} sampled, "
        f"status {bounded['status']}"
    )
    print(
        f"floor (DuckDB: distinct keys + every feature histogram): wall {floor['wall_s']:.1f} s, "
        f"peak RSS {floor['peak_rss_mb']:.0f} MB, {floor['window_rows']:,} rows"
    )
    if unbounded is not None:
        print(
            f"unbounded (the whole window, every column, in pandas): wall {unbounded['wall_s']:.1f} s, "
            f"peak RSS {unbounded['peak_rss_mb']:.0f} MB"
        )
    agree = bounded["window_rows"] == floor["window_rows"]
    print(f"targets: peak RSS <= 1500 MB and wall <= 60 s at 5M rows; window rows agree: {agree}")


if __name__ == "__main__":
    main()
