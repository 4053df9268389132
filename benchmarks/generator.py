"""Synthetic generator throughput next to its floor, measured in the same run.

    uv run python benchmarks/generator.py [--customers 82000] [--months 20] [--seed 1]

The defaults give about 1,000,000 customer-months (snapshot rows). Each phase runs in its own
fresh interpreter so its peak RSS is its own:

- generate:        generate_churn_data (wall time, rows/s, peak RSS)
- write:           write_generated: the four Feast source parquet files (pandas -> arrow -> parquet)
- floor numpy:     draw one random value per cell of a frame of the same shape and build it with
                   the same dtypes (object strings, int64, float64, tz-aware timestamps)
- floor parquet:   pandas -> arrow of the same wide frame once, and pyarrow writing it as one
                   file (also shown alone); write_generated converts and writes four tables
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _numpy_floor(*, rows: int, seed: int) -> dict[str, Any]:
    """One random value per cell, mapped to the frame's dtypes (categories from the schema)."""
    import numpy as np
    import pandas as pd

    from churnops.contracts.columns import FEATURES

    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    ids = np.asarray([f"{i:04d}-ABCDE" for i in range(10_000)], dtype=object)
    columns["customer_id"] = ids[rng.integers(0, ids.size, rows)]
    for name in ("event_timestamp", "created"):
        micros = (rng.random(rows) * 3.0e13).astype(np.int64).astype("datetime64[us]")
        columns[name] = pd.DatetimeIndex(micros).tz_localize("UTC")
    for col in FEATURES:
        values = rng.random(rows)
        if col.kind == "category":
            choices = np.asarray(col.categories, dtype=object)
            columns[col.name] = choices[(values * len(choices)).astype(np.int64)]
        elif col.kind == "float":
            columns[col.name] = values * 100.0
        else:
            columns[col.name] = (values * 72).astype(np.int64)
    columns["churned"] = (rng.random(rows) < 0.03).astype(np.int64)
    frame = pd.DataFrame(columns, copy=False)
    return {"seconds": time.perf_counter() - started, "rows": len(frame), "values": rows * frame.shape[1]}


def _phase(*, name: str, customers: int, months: int, seed: int, rows: int) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from churnops.data.generate import generate_churn_data, write_generated

    baseline = _peak_rss_mb()
    if name == "generate":
        started = time.perf_counter()
        data = generate_churn_data(customers=customers, months=months, seed=seed)
        seconds = time.perf_counter() - started
        return {
            "seconds": seconds,
            "rows": data.snapshot_rows,
            "churn_rate": data.churn_rate,
            "baseline_mb": baseline,
            "peak_mb": _peak_rss_mb(),
        }

    if name == "floor-numpy":
        return _numpy_floor(rows=rows, seed=seed) | {"peak_mb": _peak_rss_mb()}

    data = generate_churn_data(customers=customers, months=months, seed=seed)
    frame, rows = data.frame, data.snapshot_rows
    with tempfile.TemporaryDirectory(prefix="churnops-bench-") as tmp:
        if name == "write":
            started = time.perf_counter()
            written = write_generated(data=data, sources_dir=Path(tmp))
            seconds = time.perf_counter() - started
            size = sum(p.stat().st_size for p in written.values())
            return {"seconds": seconds, "rows": rows, "bytes": size, "peak_mb": _peak_rss_mb()}
        if name == "floor-parquet":
            started = time.perf_counter()
            table = pa.Table.from_pandas(frame, preserve_index=False)
            converted = time.perf_counter()
            pq.write_table(table, Path(tmp) / "wide.parquet")
            seconds = time.perf_counter() - started
            return {
                "seconds": seconds,
                "write_seconds": time.perf_counter() - converted,
                "rows": rows,
                "peak_mb": _peak_rss_mb(),
            }
    raise ValueError(f"unknown phase {name}")


def _run(name: str, args: argparse.Namespace, rows: int = 0) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--phase",
        name,
        "--customers",
        str(args.customers),
        "--months",
        str(args.months),
        "--seed",
        str(args.seed),
        "--rows",
        str(rows),
    ]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _repeated(name: str, args: argparse.Namespace, rows: int = 0) -> dict[str, Any]:
    """Median wall time over ``--repeat`` fresh processes (the machine is shared), best and peak RSS."""
    runs = [_run(name, args, rows=rows) for _ in range(args.repeat)]
    figures = dict(runs[0])
    for key in ("seconds", "write_seconds"):
        if key in figures:
            figures[key] = statistics.median(r[key] for r in runs)
    figures["best"] = min(r["seconds"] for r in runs)
    figures["peak_mb"] = max(r["peak_mb"] for r in runs)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=82_000)
    parser.add_argument("--months", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per phase (median)")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        figures = _phase(
            name=args.phase, customers=args.customers, months=args.months, seed=args.seed, rows=args.rows
        )
        print(json.dumps(figures))
        return

    print(f"synthetic generator: {args.customers:,} customers x {args.months} months, seed {args.seed}")
    gen = _repeated("generate", args)
    rows = gen["rows"]
    write = _repeated("write", args)
    floor_numpy = _repeated("floor-numpy", args, rows=rows)
    floor_parquet = _repeated("floor-parquet", args)
    both = {
        "seconds": gen["seconds"] + write["seconds"],
        "best": gen["best"] + write["best"],
        "peak_mb": max(gen["peak_mb"], write["peak_mb"]),
    }
    print(f"customer-months (snapshot rows): {rows:,}; monthly churn rate {gen['churn_rate']:.2%}")
    print(f"median of {args.repeat} fresh processes per phase; rows/s from the median")
    print(f"{'phase':<38}{'median s':>9}{'best s':>8}{'rows/s':>12}{'peak RSS MB':>13}")
    for label, figures in (
        ("generate_churn_data", gen),
        ("write_generated (4 parquet sources) *", write),
        ("generate + write *", both),
        ("floor: numpy draw + same-size frame", floor_numpy),
        ("floor: to arrow + parquet, wide *", floor_parquet),
        (
            "  of which the parquet write alone *",
            {**floor_parquet, "seconds": floor_parquet["write_seconds"], "best": float("nan")},
        ),
    ):
        seconds, best, peak = figures["seconds"], figures["best"], figures["peak_mb"]
        shown = "-" if math.isnan(best) else f"{best:.2f}"
        print(f"{label:<38}{seconds:>9.2f}{shown:>8}{rows / seconds:>12,.0f}{peak:>13,.0f}")
    print("* peak RSS includes generating the frame in the same process")
    print(
        f"RSS after imports: {gen['baseline_mb']:,.0f} MB; parquet on disk: {write['bytes'] / 2**20:,.1f} MB"
    )
    print(
        f"generate = {gen['seconds'] / floor_numpy['seconds']:.1f}x the numpy floor; "
        f"write = {write['seconds'] / floor_parquet['seconds']:.1f}x the parquet floor; "
        f"target: generate + write < 30 s for 1,000,000 customer-months"
    )


if __name__ == "__main__":
    main()
