"""`monitor drift`'s and `monitor performance`'s reads of a large window, in bounded memory,
next to a DuckDB floor.

    uv run python benchmarks/drift_window.py [--rows 5000000] [--files 600] [--with-unbounded]
                                             [--skip-drift] [--before-src DIR]

Data: a prediction log of ``--rows`` batch rows of one model version in one 31-day window (the
log's real layout: ``date=`` partitions, ``--files`` part files, every column of the contract,
features drawn per kind), plus 10 % of them logged a second time (a repeated request) and a
what-if flood, which the window must not count. Each case runs in a fresh interpreter so its peak
RSS is its own:

- bounded:   what ``churnops.jobs.drift_report`` reads: ``sample_window`` of the window
             (de-duplicated, counted whole, a seeded sample of the policy's ``current_rows``),
             the matured labels of the window plus the label horizon (counted whole in DuckDB, a
             seeded sample of ``current_rows`` of them returned), then ``detect_drift`` of the
             sample against a 100k reference (Evidently), concept drift on the matured sample.
- floor:     DuckDB straight from the parquet files, in the same memory limit: the count of
             distinct prediction keys and, per feature, the histogram of the window's scored rows
             (no sample, no de-duplication of the rows themselves: less work than the real job).
- unbounded: (``--with-unbounded``) the read before issue 18: the whole window with every column
             into pandas.

And ``monitor performance`` (every matured label, no sample), with a label row per prediction
(plus half as many of an older snapshot) in ``<dir>/sources/labels``:

- performance:        what ``churnops.jobs.performance_report`` reads and computes:
                      ``performance_on_late_labels`` over ``prediction_window_rows`` and
                      ``label_rows`` (DuckDB reads the window's parquet files and the labels in
                      place and counts the matured labels there; pandas gets five columns of them).
- performance before: (``--before-src DIR``, a ``git archive`` of the commit before) the same in
                      the code before: the window's columns through pyarrow into pandas (repeats,
                      request ids and model names included), de-duplicated in pandas, the whole
                      label source, the pandas join.
- performance floor:  DuckDB alone in the same memory limit: one row per key joined to the labels,
                      counted with their churn sum and mean score (no metric, no pandas).
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
AS_OF = END + timedelta(days=62)  # every label of the window has matured


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
    _write_labels(directory, rows, files, rng)
    reference = _draw(100_000, rng)
    import pandas as pd

    pd.DataFrame(reference).to_parquet(directory / "reference.parquet")
    size = sum(f.stat().st_size for f in log.rglob("*.parquet"))
    return {"case": "prepare", "files": len(list(log.rglob("*.parquet"))), "log_mb": size / 1e6}


def _write_labels(directory: Path, rows: int, files: int, rng: Any) -> None:
    """One label row per prediction key of the log (its snapshot, known an hour later), and an
    older snapshot's label for every second customer (labels the window cannot use)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from churnops.contracts.columns import LABEL_SOURCE
    from churnops.contracts.sources import source_schema

    per_file = rows // files
    days = np.repeat([i * 31 // files for i in range(files)], per_file)
    days = np.concatenate([days, np.full(rows - len(days), (files - 1) * 31 // files)])
    snapshot = np.datetime64(START.replace(tzinfo=None), "us") + days.astype("timedelta64[D]")
    ids = np.char.add("C-", np.arange(rows).astype(str)).astype(object)
    older = np.arange(0, rows, 2)
    folder = directory / "sources" / LABEL_SOURCE
    folder.mkdir(parents=True)
    event = np.concatenate([snapshot, snapshot[older] - np.timedelta64(31, "D")])
    table = pa.table(
        {
            "customer_id": np.concatenate([ids, ids[older]]),
            "event_timestamp": pa.array(event, pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC")),
            "created": pa.array(event + np.timedelta64(1, "h"), pa.timestamp("us")).cast(
                pa.timestamp("us", tz="UTC")
            ),
            "churned": rng.integers(0, 2, len(event)),
        },
        schema=source_schema(LABEL_SOURCE),
    )
    pq.write_table(table, folder / "labels.parquet")


def _performance_summary(report: Any) -> dict[str, Any]:
    (version,) = report.versions
    return {"matured": report.matured, "scored": report.scored, "roc_auc": version.metrics.get("roc_auc")}


def _case_performance(directory: Path) -> dict[str, Any]:
    from churnops.settings import Settings
    from churnops.wiring import prediction_window_rows
    from monitoring.baseline import label_rows
    from monitoring.performance import performance_on_late_labels

    settings = Settings(home=directory, _env_file=None)  # type: ignore[call-arg]
    start = time.perf_counter()
    report = performance_on_late_labels(
        predictions=prediction_window_rows(settings, start=START, end=END, model_version=None),
        labels=label_rows(settings.sources_dir),
        as_of=AS_OF,
        threshold=0.5,
        reference_metrics={},
        start=START,
        end=END,
        model_name="churn",
    )
    done = time.perf_counter()
    return {
        "case": "performance",
        "wall_s": done - start,
        "peak_rss_mb": peak_rss_mb(),
        "logged": report.scored,
        **_performance_summary(report),
    }


def _case_performance_before(directory: Path, source: str) -> dict[str, Any]:
    """`monitor performance`'s read and report in the code at ``source`` (a `git archive` of the
    commit before: the window's columns through pyarrow into pandas, repeats, request ids and model
    names included, de-duplicated in pandas; the whole label source; the pandas join)."""
    for name in [m for m in sys.modules if m.split(".")[0] in ("churnops", "monitoring")]:
        del sys.modules[name]
    sys.path.insert(0, source)
    from churnops.contracts.prediction_log import (
        MONITORED_ENDPOINTS,
        read_prediction_log,
        unique_predictions,
    )
    from monitoring import performance
    from monitoring.baseline import read_labels
    from monitoring.performance import PREDICTION_COLUMNS, performance_on_late_labels

    assert str(performance.__file__).startswith(source), performance.__file__
    start = time.perf_counter()
    table = read_prediction_log(
        directory / "predictions",
        start=START,
        end=END,
        model_name="churn",
        endpoints=MONITORED_ENDPOINTS,
        columns=sorted(
            {*PREDICTION_COLUMNS, "model_name", "model_version", "customer_id", "ts", "request_id"}
        ),
    )
    predictions = unique_predictions(table.to_pandas())
    labels = read_labels(directory / "sources")
    read = time.perf_counter()
    report = performance_on_late_labels(
        predictions=predictions,
        labels=labels,
        as_of=AS_OF,
        threshold=0.5,
        reference_metrics={},
        start=START,
        end=END,
    )
    done = time.perf_counter()
    return {
        "case": "performance_before",
        "read_s": read - start,
        "report_s": done - read,
        "wall_s": done - start,
        "peak_rss_mb": peak_rss_mb(),
        **_performance_summary(report),
    }


def _case_performance_floor(directory: Path) -> dict[str, Any]:
    import duckdb

    files = sorted(str(f) for f in (directory / "predictions").rglob("*.parquet"))
    labels = str(directory / "sources" / "labels" / "*.parquet")
    start = time.perf_counter()
    spill = tempfile.mkdtemp(prefix="floor-")
    con = duckdb.connect(config={"memory_limit": "512MB", "temp_directory": spill})
    query = """
        WITH p AS (
            SELECT DISTINCT ON (model_version, customer_id, feature_ts) customer_id, feature_ts, score
            FROM read_parquet($files)
            WHERE endpoint IN ('predict', 'batch') AND status = 'ok' AND ts >= $lo AND ts < $hi
            ORDER BY model_version, customer_id, feature_ts, ts
        )
        SELECT count(*), sum(l.churned), avg(p.score) FROM p
        JOIN read_parquet($labels) l ON l.customer_id = p.customer_id AND l.event_timestamp = p.feature_ts
        WHERE l.created <= $as_of"""
    values = {"files": files, "labels": labels, "lo": START, "hi": END, "as_of": AS_OF}
    ((matured, _, _),) = con.execute(query, values).fetchall()
    con.close()
    return {
        "case": "performance_floor",
        "wall_s": time.perf_counter() - start,
        "peak_rss_mb": peak_rss_mb(),
        "matured": matured,
    }


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
    # the labels window (the window and the horizon before it): its matured labels counted
    # whole, a seeded sample of them for the figures (what drift_report does)
    from churnops.settings import Settings
    from churnops.wiring import prediction_window_rows
    from monitoring.baseline import label_rows
    from monitoring.performance import matured_outcomes

    settings = Settings(home=directory, _env_file=None)  # type: ignore[call-arg]
    matured = matured_outcomes(
        predictions=prediction_window_rows(
            settings, start=START - timedelta(days=31), end=END, model_version="1"
        ),
        labels=label_rows(settings.sources_dir),
        as_of=AS_OF,
        sample=policy.current_rows,
        seed=policy.seed,
    )
    outcomes_rows = matured.matured_labels
    read = time.perf_counter()
    from monitoring.drift import detect_drift

    result = detect_drift(
        reference=pd.read_parquet(directory / "reference.parquet"),
        current=sample.frame,
        labelled=matured.frame.rename(columns={"feature_ts": "event_timestamp"}),
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
        "matured_labels": outcomes_rows,
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
    cases = {
        "bounded": _case_bounded,
        "floor": _case_floor,
        "unbounded": _case_unbounded,
        "performance": _case_performance,
        "performance_floor": _case_performance_floor,
    }
    parser.add_argument("--case", choices=("prepare", "performance_before", *cases))
    parser.add_argument("--dir")
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--files", type=int, default=600)
    parser.add_argument("--with-unbounded", action="store_true")
    parser.add_argument("--skip-drift", action="store_true", help="Measure monitor performance only.")
    parser.add_argument(
        "--before-src",
        help="A source tree of the commit before (git archive COMMIT | tar -x -C DIR): "
        "measure its monitor performance too.",
    )
    args = parser.parse_args()
    if args.case == "prepare":
        emit(_prepare(Path(args.dir), args.rows, args.files))
        return
    if args.case == "performance_before":
        emit(_case_performance_before(Path(args.dir), args.before_src))
        return
    if args.case:
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
        if not args.skip_drift:
            _drift_figures(tmp, with_unbounded=args.with_unbounded)
        performance = run_case(__file__, "performance", "--dir", tmp)
        before = (
            run_case(__file__, "performance_before", "--dir", tmp, "--before-src", args.before_src)
            if args.before_src
            else None
        )
        floor = run_case(__file__, "performance_floor", "--dir", tmp)
    print(
        f"monitor performance (DuckDB: the log and the labels read in place, the matured labels "
        f"counted there; five columns of them to pandas): wall {performance['wall_s']:.1f} s, "
        f"peak RSS {performance['peak_rss_mb']:.0f} MB; {performance['logged']:,} scored rows read, "
        f"{performance['matured']:,} matured labels"
    )
    if before is not None:
        print(
            f"before (pyarrow columns into pandas, whole label source, pandas join): "
            f"wall {before['wall_s']:.1f} s (read {before['read_s']:.1f} s, "
            f"report {before['report_s']:.1f} s), "
            f"peak RSS {before['peak_rss_mb']:.0f} MB; {before['matured']:,} matured labels"
        )
    print(
        f"floor (DuckDB: one row per key joined to the labels, counted): wall {floor['wall_s']:.1f} s, "
        f"peak RSS {floor['peak_rss_mb']:.0f} MB; {floor['matured']:,} matured labels"
    )
    agree = performance["matured"] == floor["matured"] and (
        before is None or before["matured"] == floor["matured"]
    )
    same_auc = before is None or abs(performance["roc_auc"] - before["roc_auc"]) < 1e-12
    print(f"matured labels agree: {agree}; ROC-AUC the same as before: {same_auc}")


def _drift_figures(tmp: str, *, with_unbounded: bool) -> None:
    bounded = run_case(__file__, "bounded", "--dir", tmp)
    floor = run_case(__file__, "floor", "--dir", tmp)
    unbounded = run_case(__file__, "unbounded", "--dir", tmp) if with_unbounded else None
    print(
        f"bounded (monitor drift's reads + detect_drift): wall {bounded['wall_s']:.1f} s "
        f"(window sample {bounded['sample_s']:.1f} s, "
        f"matured labels of the window + horizon {bounded['projected_s']:.1f} s, "
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
    print(f"targets: peak RSS <= 1500 MB and wall <= 60 s at 5M rows; window rows agree: {agree}", flush=True)


if __name__ == "__main__":
    main()
