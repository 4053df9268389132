"""Materialization of N customers into Redis: Feast and ChurnOps' direct writer vs a raw HSET floor.

    uv run python benchmarks/materialize.py [--customers 100000] [--redis redis://127.0.0.1:6379/13]

The floor writes the same number of hashes with the same fields (values as bytes) through one
redis-py pipeline in batches; Feast serializes protobuf values and writes per view. The direct
writer (churnops.features.materialize, writer="direct") writes Feast's exact Redis bytes, with
Feast's timestamp dedup, from a DuckDB read; "store already full" is a second run over the same
data, which adds the removal pass (every key of each view scanned, nothing to delete). Target on
the 2-core machine: within 3x the floor.
Shares the given Redis db with whatever else uses it: every case writes under a Feast project of
its own (keys end with the project name, as Feast lays them out), counts and then deletes only
those keys; nothing is flushed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, peak_rss_mb, run_case, timed


def _pattern(project: str) -> str:
    """SCAN MATCH for Feast's keys of one project: serialized entity key + project name."""
    return f"*{project}"


def _count_and_delete(client: Any, project: str) -> int:
    """How many keys the case wrote under its project; they are deleted, nothing else is."""
    keys = list(client.scan_iter(match=_pattern(project), count=1000))
    for i in range(0, len(keys), 1000):
        client.unlink(*keys[i : i + 1000])
    return len(keys)


def prepare(home: Path, customers: int) -> None:
    from churnops.data.generate import generate_churn_data, write_generated
    from churnops.settings import Settings

    settings = Settings(home=home, _env_file=None)
    data = generate_churn_data(customers=customers, months=2, seed=3)
    write_generated(data=data, sources_dir=settings.sources_dir)
    last = data.frame[data.frame["event_timestamp"] == data.frame["event_timestamp"].max()]
    emit(
        {
            "customers_at_end": int(last["customer_id"].nunique()),
            "end": last["event_timestamp"].max().isoformat(),
        }
    )


def case_feast(
    home: Path,
    redis_url: str,
    end: str,
    project: str,
    skip_dedup: bool = False,
    writer: str = "feast",
    again: bool = False,
) -> None:
    import pandas as pd
    import redis
    from feast import FeatureStore

    from churnops.features.materialize import materialize
    from churnops.features.store import apply
    from churnops.settings import Settings
    from churnops.wiring import feast_definitions, repo_config

    client = redis.Redis.from_url(redis_url)
    if next(iter(client.scan_iter(match=_pattern(project), count=1000)), None) is not None:
        raise SystemExit(f"project {project!r} already has keys in {redis_url}; pick another --project")
    settings = Settings(
        home=home, project=project, redis_url=redis_url, redis_timeout_ms=5000, _env_file=None
    )
    config = repo_config(settings)
    # skip_dedup: Feast's documented throughput switch (no read of existing timestamps before
    # each write); ChurnOps keeps it off, because then an older window can overwrite newer values.
    config.online_store.skip_dedup = skip_dedup
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    store = FeatureStore(repo_path=str(settings.feast_dir), config=config)
    apply(store=store, defs=feast_definitions(settings))
    when = pd.Timestamp(end).to_pydatetime()
    try:
        if again:  # a second run over a full store: the removal pass scans every key of each view
            materialize(store=store, end=when, writer=writer)  # type: ignore[arg-type]
        _, seconds = timed(lambda: materialize(store=store, end=when, writer=writer))  # type: ignore[arg-type]
    finally:
        keys = _count_and_delete(client, project)
    emit({"case": writer, "seconds": seconds, "keys": keys, "rss_mb": peak_rss_mb()})


def case_direct_again(home: Path, redis_url: str, end: str, project: str) -> None:
    case_feast(home, redis_url, end, project, writer="direct", again=True)


def case_direct(home: Path, redis_url: str, end: str, project: str) -> None:
    case_feast(home, redis_url, end, project, writer="direct")


def case_feast_skip_dedup(home: Path, redis_url: str, end: str, project: str) -> None:
    case_feast(home, redis_url, end, project, skip_dedup=True)


def case_raw(home: Path, redis_url: str, end: str, project: str) -> None:
    import pandas as pd
    import redis

    from churnops.contracts.columns import VIEWS, view_columns
    from churnops.contracts.sources import read_source

    client = redis.Redis.from_url(redis_url)
    frames = {}
    for view in VIEWS:
        frame = read_source(sources_dir=home / "sources", name=view)
        frames[view] = frame[frame["event_timestamp"] <= pd.Timestamp(end)].drop_duplicates(
            "customer_id", keep="last"
        )

    def write() -> int:
        pipe = client.pipeline(transaction=False)
        n = 0
        for view, frame in frames.items():
            cols = [c.name for c in view_columns(view)]
            for record in frame[["customer_id", "event_timestamp", *cols]].itertuples(index=False):
                mapping: dict[str | bytes, bytes | float | int | str] = {
                    f"{view}:{c}": str(v).encode() for c, v in zip(cols, record[2:], strict=True)
                }
                mapping[f"_ts:{view}"] = str(record[1].timestamp()).encode()
                pipe.hset(f"{record[0]}{project}", mapping=mapping)  # Feast's suffix layout
                n += 1
                if n % 5000 == 0:
                    pipe.execute()
        pipe.execute()
        return n

    try:
        _, seconds = timed(write)
    finally:
        keys = _count_and_delete(client, project)
    emit({"case": "raw", "seconds": seconds, "keys": keys, "rss_mb": peak_rss_mb()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    names = ["prepare", "feast", "feast_skip_dedup", "direct", "direct_again", "raw"]
    parser.add_argument("--case", choices=names)
    parser.add_argument("--home")
    parser.add_argument("--end")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--project", help="Feast project of one case (default: a fresh random one)")
    args = parser.parse_args()
    if args.case == "prepare":
        prepare(Path(args.home), args.customers)
        return
    cases = {
        "feast": case_feast,
        "feast_skip_dedup": case_feast_skip_dedup,
        "direct": case_direct,
        "direct_again": case_direct_again,
        "raw": case_raw,
    }
    if args.case in cases:
        cases[args.case](Path(args.home), args.redis, args.end, args.project or f"b{uuid.uuid4().hex}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        prep = run_case(__file__, "prepare", "--home", str(home), "--customers", str(args.customers))
        raw = run_case(__file__, "raw", "--home", str(home), "--redis", args.redis, "--end", prep["end"])
        feast = run_case(__file__, "feast", "--home", str(home), "--redis", args.redis, "--end", prep["end"])
        fast = run_case(
            __file__, "feast_skip_dedup", "--home", str(home), "--redis", args.redis, "--end", prep["end"]
        )
        direct = run_case(
            __file__, "direct", "--home", str(home), "--redis", args.redis, "--end", prep["end"]
        )
        again = run_case(
            __file__, "direct_again", "--home", str(home), "--redis", args.redis, "--end", prep["end"]
        )
    print(f"materialize {prep['customers_at_end']:,} customers (3 views) into Redis")
    print(f"{'case':<30}{'wall s':>9}{'x floor':>9}{'keys':>10}{'peak RSS MB':>13}{'rows/s':>12}")
    rows = (
        ("raw pipelined HSET (floor)", raw),
        ("Feast materialize", feast),
        ("  (Feast, skip_dedup)", fast),
        ("direct writer (dedup on)", direct),
        ("  (direct, store already full)", again),
    )
    for name, r in rows:
        rate = prep["customers_at_end"] / r["seconds"]
        ratio = r["seconds"] / raw["seconds"]
        print(
            f"{name:<30}{r['seconds']:>9.2f}{ratio:>8.2f}x{r['keys']:>10,}{r['rss_mb']:>13.0f}{rate:>12,.0f}"
        )
    print(
        f"ratio to floor (target <= 3x): Feast {feast['seconds'] / raw['seconds']:.2f}x, "
        f"skip_dedup {fast['seconds'] / raw['seconds']:.2f}x, "
        f"direct {direct['seconds'] / raw['seconds']:.2f}x; "
        f"direct is {feast['seconds'] / direct['seconds']:.1f}x faster than Feast"
    )


if __name__ == "__main__":
    main()
