"""Point-in-time correctness of training sets, checked against a brute-force oracle.

Each example writes random feature histories (several snapshots per customer, ties on event
time broken by ``created``, rows out of order and split over part files, gaps longer than the
TTL, rows exactly at a label time and one microsecond after it) into a real Feast repo with the
DuckDB offline store, and with Feast's Spark offline store (``local[2]``, fewer examples: each
Spark retrieval costs seconds), and compares build_training_set with a direct reading of the semantics:
latest row with ``ts <= t`` and ``ts >= t - ttl``, ties on ts broken by the latest ``created``.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from churnops.contracts.columns import CREATED_TS, EVENT_TS, JOIN_KEY, VIEWS, view_columns
from churnops.features.definitions import TTL
from churnops.features.training_set import TimestampError, build_training_set
from churnops.settings import Settings
from tests.support.feast import applied_store, empty_sources, random_view_rows, write_view

pytestmark = pytest.mark.integration

T0 = pd.Timestamp("2024-01-01", tz="UTC")
US = pd.Timedelta(microseconds=1)


def _repo(tmp_path_factory: pytest.TempPathFactory, offline_store: str):  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp(f"pit-{offline_store}") / "home"
    settings = Settings(home=home, offline_store=offline_store, _env_file=None)  # type: ignore[call-arg]
    empty_sources(settings)
    return settings, applied_store(settings)


@pytest.fixture(scope="module")
def pit_repo(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return _repo(tmp_path_factory, "duckdb")


@pytest.fixture(scope="module", params=["duckdb", pytest.param("spark", marks=pytest.mark.slow)])
def engine_repo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The same repo on each offline store (Spark: one shared local[2] session, slow)."""
    if request.param == "spark":
        request.getfixturevalue("spark")
    return _repo(tmp_path_factory, request.param)


def make_history(seed: int, customers: int) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Random histories per view and an entity frame full of boundary cases."""
    rng = np.random.default_rng(seed)
    ids = [f"{i:04d}-CUST" for i in range(customers)]
    histories: dict[str, pd.DataFrame] = {}
    for view in VIEWS:
        per = rng.integers(0, 6, customers)  # 0 rows: a customer unknown to this view
        row_ids = np.repeat(ids, per).tolist()
        # Times spread over 300 days so that gaps longer than the 45-day TTL happen.
        minutes = rng.integers(0, 300 * 24 * 60, len(row_ids))
        times = T0 + pd.to_timedelta(minutes, unit="min")
        frame = random_view_rows(rng=rng, view=view, ids=row_ids, times=pd.DatetimeIndex(times))
        # Ties on event time: copy some rows, same ts, later created, new values.
        ties = frame.sample(frac=0.15, random_state=seed).copy()
        ties[CREATED_TS] = ties[CREATED_TS] + pd.Timedelta(minutes=5)
        for col in view_columns(view):  # type: ignore[arg-type]
            ties[col.name] = ties[col.name].sample(frac=1.0, random_state=seed + 1).to_numpy()
        frame = pd.concat([frame, ties]).sample(frac=1.0, random_state=seed + 2)  # out of order
        histories[view] = frame.reset_index(drop=True)
    # Entity rows: random times, plus exactly-at and 1us-before a feature row's time.
    n = customers * 3
    ent_ids = list(rng.choice([*ids, "UNKNOWN-1"], n))
    ent_times = list(T0 + pd.to_timedelta(rng.integers(0, 330 * 24 * 60 * 60, n), unit="s"))
    account = histories["account"]
    picks = account.sample(n=min(len(account), customers), random_state=seed + 3)
    for _, row in picks.iterrows():
        ent_ids += [row[JOIN_KEY], row[JOIN_KEY]]
        ent_times += [row[EVENT_TS], row[EVENT_TS] - US]
        # exactly at the TTL edge (included) and one microsecond past it (excluded)
        ent_ids += [row[JOIN_KEY], row[JOIN_KEY]]
        ent_times += [row[EVENT_TS] + TTL["account"], row[EVENT_TS] + TTL["account"] + US]
    entity = pd.DataFrame({JOIN_KEY: ent_ids, EVENT_TS: pd.DatetimeIndex(ent_times)})
    entity = pd.concat([entity, entity.head(5)])  # duplicate entity rows stay duplicated
    entity["label"] = np.arange(len(entity))
    return histories, entity.reset_index(drop=True)


def oracle(histories: dict[str, pd.DataFrame], entity: pd.DataFrame) -> pd.DataFrame:
    """The semantics, written as plainly as possible (one loop per entity row and view)."""
    out = entity.copy()
    for view in VIEWS:
        hist = histories[view]
        ttl = pd.Timedelta(TTL[view])
        names = [c.name for c in view_columns(view)]  # type: ignore[arg-type]
        by_id = {str(key): group for key, group in hist.groupby(JOIN_KEY)}
        values: dict[str, list[object]] = {n: [] for n in names}
        for cid, t in zip(entity[JOIN_KEY], entity[EVENT_TS], strict=True):
            g = by_id.get(cid)
            best = None
            if g is not None:
                ok = g[(g[EVENT_TS] <= t) & (g[EVENT_TS] >= t - ttl)]
                if len(ok):
                    best = ok.sort_values([EVENT_TS, CREATED_TS]).iloc[-1]
            for name in names:
                values[name].append(None if best is None else best[name])
        for name in names:
            out[name] = values[name]
    return out


def normalize(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for col in frame.columns:
        if col in (JOIN_KEY, EVENT_TS):
            continue
        frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
        frame[col] = [
            float(v) if isinstance(v, (int, float, np.number)) and v is not None else v for v in frame[col]
        ]
    return frame.reset_index(drop=True)


# Feast retrievals against the brute-force oracle: 25 on DuckDB (about 30 s here), 3 on Spark
# (about 7 s each once its session is warm).
EXAMPLES = {"duckdb": 25, "spark": 3}


@pytest.mark.slow
def test_training_set_matches_brute_force_oracle(engine_repo) -> None:  # type: ignore[no-untyped-def]
    settings, store = engine_repo

    @hsettings(
        max_examples=EXAMPLES[settings.offline_store],
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(seed=st.integers(0, 2**31 - 1), customers=st.integers(1, 40), parts=st.integers(1, 3))
    def check(seed: int, customers: int, parts: int) -> None:
        histories, entity = make_history(seed, customers)
        for view, frame in histories.items():
            write_view(settings=settings, view=view, frame=frame, parts=parts)
        got = build_training_set(store=store, entity_df=entity)
        want = oracle(histories, entity)
        # rows in = rows out: unknown customers, rows outside every TTL and duplicate entity
        # rows all come back, once each, in input order with their columns kept.
        assert len(got) == len(entity)
        assert got["label"].tolist() == entity["label"].tolist()
        pd.testing.assert_frame_equal(normalize(got[want.columns]), normalize(want), check_dtype=False)

    check()


def test_boundaries_explicitly(engine_repo) -> None:  # type: ignore[no-untyped-def]
    """The oracle's edge cases spelled out: at t included, t + 1us excluded, TTL edge included
    (on Spark too: microsecond timestamps, session time zone UTC)."""
    settings, store = engine_repo
    rng = np.random.default_rng(0)
    t = pd.Timestamp("2024-03-01T12:00:00.000001Z")
    rows = random_view_rows(rng=rng, view="account", ids=["A", "A"], times=pd.DatetimeIndex([t, t]))
    rows[CREATED_TS] = [t, t + pd.Timedelta(seconds=1)]  # tie on ts: later created wins
    rows["tenure"] = [1, 2]
    write_view(settings=settings, view="account", frame=rows)
    entity = pd.DataFrame(
        {
            JOIN_KEY: ["A", "A", "A", "A"],
            EVENT_TS: [t, t - US, t + TTL["account"], t + TTL["account"] + US],
        }
    )
    got = build_training_set(store=store, entity_df=entity)
    assert got["tenure"].tolist()[0] == 2
    assert pd.isna(got["tenure"].iloc[1])
    assert got["tenure"].tolist()[2] == 2
    assert pd.isna(got["tenure"].iloc[3])


def test_timestamps_naive_utc_aware_and_offset_agree(pit_repo) -> None:  # type: ignore[no-untyped-def]
    settings, store = pit_repo
    histories, entity = make_history(7, 15)
    for view, frame in histories.items():
        write_view(settings=settings, view=view, frame=frame)
    aware = build_training_set(store=store, entity_df=entity)
    naive = entity.assign(**{EVENT_TS: entity[EVENT_TS].dt.tz_localize(None)})
    from_naive = build_training_set(store=store, entity_df=naive, naive="utc")
    offset = entity.assign(**{EVENT_TS: entity[EVENT_TS].dt.tz_convert("Asia/Kolkata")})
    from_offset = build_training_set(store=store, entity_df=offset)
    as_strings = entity.assign(
        **{EVENT_TS: [ts.tz_convert("America/New_York").isoformat() for ts in entity[EVENT_TS]]}
    )
    from_strings = build_training_set(store=store, entity_df=as_strings)
    for other in (from_naive, from_offset, from_strings):
        pd.testing.assert_frame_equal(normalize(other), normalize(aware))
    assert str(from_offset[EVENT_TS].dt.tz) == "UTC"


def test_naive_local_times_are_rejected(pit_repo) -> None:  # type: ignore[no-untyped-def]
    _, store = pit_repo
    entity = pd.DataFrame({JOIN_KEY: ["A"], EVENT_TS: [pd.Timestamp("2024-03-01 12:00")]})
    with pytest.raises(TimestampError, match="no UTC offset"):
        build_training_set(store=store, entity_df=entity)
    strings = pd.DataFrame({JOIN_KEY: ["A", "B"], EVENT_TS: ["2024-03-01T12:00:00", "2024-03-01T12:00:00Z"]})
    with pytest.raises(TimestampError, match="1 value"):
        build_training_set(store=store, entity_df=strings)


def test_missing_columns_and_empty_frame(pit_repo) -> None:  # type: ignore[no-untyped-def]
    _, store = pit_repo
    with pytest.raises(ValueError, match="event_timestamp"):
        build_training_set(store=store, entity_df=pd.DataFrame({JOIN_KEY: ["A"]}))
    empty = pd.DataFrame({JOIN_KEY: pd.Series([], dtype=str), EVENT_TS: pd.DatetimeIndex([], tz="UTC")})
    with pytest.raises(ValueError, match="empty"):
        build_training_set(store=store, entity_df=empty)


def test_ttl_table_matches_views(pit_repo) -> None:  # type: ignore[no-untyped-def]
    _, store = pit_repo
    for view in VIEWS:
        assert store.get_feature_view(view).ttl == TTL[view]
        assert TTL[view] >= timedelta(days=1)
