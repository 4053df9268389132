"""The synthetic generator: deterministic, on the schema contract, learnable, and drifting
exactly where and how docs/synthetic-data.md says."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats
from typer.testing import CliRunner

from churnops.cli import app
from churnops.contracts.columns import (
    CREATED_TS,
    EVENT_TS,
    FEATURES,
    JOIN_KEY,
    LABEL,
    LABEL_SOURCE,
    VIEWS,
    feature_names,
)
from churnops.contracts.sources import read_source, source_schema
from churnops.data.generate import (
    CONCEPT_DRIFT_HAZARD,
    DRIFT_INTERNET_MIX,
    HAZARD,
    INTERNET_MIX,
    PRICE_RISE,
    GeneratedData,
    InvalidArgument,
    generate_churn_data,
    write_generated,
)

CUSTOMERS, MONTHS, SEED = 6000, 8, 7


def make(
    *, seed: int = SEED, data_drift_from: date | None = None, concept_drift_from: date | None = None
) -> GeneratedData:
    return generate_churn_data(
        customers=CUSTOMERS,
        months=MONTHS,
        seed=seed,
        data_drift_from=data_drift_from,
        concept_drift_from=concept_drift_from,
    )


DRIFT_DATE = date(2024, 5, 1)  # the 5th snapshot (index 4)
PROFILE = ["gender", "senior_citizen", "partner", "dependents"]


@pytest.fixture(scope="module")
def base() -> GeneratedData:
    return make()


@pytest.fixture(scope="module")
def data_drift() -> GeneratedData:
    return make(data_drift_from=DRIFT_DATE)


@pytest.fixture(scope="module")
def concept_drift() -> GeneratedData:
    return make(concept_drift_from=DRIFT_DATE)


def at(frame: pd.DataFrame, when: date) -> pd.Series:
    return frame[EVENT_TS] == pd.Timestamp(when, tz="UTC")


def after(frame: pd.DataFrame, when: date) -> pd.Series:
    return frame[EVENT_TS] >= pd.Timestamp(when, tz="UTC")


def test_same_arguments_same_frame_other_seed_differs(base: GeneratedData) -> None:
    again = make()
    pd.testing.assert_frame_equal(base.frame, again.frame)
    assert (again.snapshot_rows, again.churn_events) == (base.snapshot_rows, base.churn_events)
    other = make(seed=8)
    assert set(other.frame[JOIN_KEY]).isdisjoint(set(base.frame[JOIN_KEY]))
    assert not other.frame[feature_names()].head(1000).equals(base.frame[feature_names()].head(1000))


def test_frame_follows_the_sources_contract(base: GeneratedData) -> None:
    frame = base.frame
    assert list(frame.columns) == [JOIN_KEY, EVENT_TS, CREATED_TS, *feature_names(), LABEL]
    for name in (*VIEWS, LABEL_SOURCE):
        schema = source_schema(name)
        inferred = pa.Schema.from_pandas(frame[schema.names], preserve_index=False)
        assert inferred.remove_metadata() == schema, name
    assert frame.notna().all().all()
    assert frame[JOIN_KEY].str.fullmatch(r"\d{4}-[A-Z]{5}").all()
    for col in FEATURES:
        values = frame[col.name]
        if col.categories:
            assert set(values.unique()) <= set(col.categories), col.name
        elif col.kind == "flag":
            assert set(values.unique()) <= {0, 1}, col.name
        if col.minimum is not None:
            assert values.min() >= col.minimum, col.name
            assert values.max() <= col.maximum, col.name
    assert set(frame[LABEL].unique()) == {0, 1}
    stamps = frame[EVENT_TS]
    assert (stamps.dt.day == 1).all()
    assert (stamps == stamps.dt.normalize()).all()
    delay = frame[CREATED_TS] - stamps
    assert delay.min() >= pd.Timedelta(seconds=1)
    assert delay.max() <= pd.Timedelta(hours=1)
    assert stamps.nunique() == MONTHS == base.months
    assert base.snapshot_rows == len(frame)
    assert base.customers == frame[JOIN_KEY].nunique() == CUSTOMERS
    assert base.churn_events == frame[LABEL].sum()


def test_monthly_charges_follow_services_like_telco(base: GeneratedData) -> None:
    frame = base.frame
    charges = frame["monthly_charges"]
    assert charges.min() >= 18.0
    assert charges.max() <= 125.0
    by_internet = frame.groupby("internet_service")["monthly_charges"].mean()
    assert by_internet["No"] < 30 < by_internet["DSL"] < 75 < by_internet["Fiber optic"]


def test_customers_age_one_month_per_snapshot_and_vanish_after_churn(base: GeneratedData) -> None:
    frame = base.frame.sort_values([JOIN_KEY, EVENT_TS])
    assert not frame.duplicated([JOIN_KEY, EVENT_TS]).any()
    same = frame[JOIN_KEY].eq(frame[JOIN_KEY].shift())
    month = frame[EVENT_TS].dt.year * 12 + frame[EVENT_TS].dt.month
    assert (month.diff()[same] == 1).all()  # present in every snapshot while active
    assert (frame["tenure"].diff()[same] == 1).all()
    added = frame["total_charges"].diff()[same]
    assert np.allclose(added, frame["monthly_charges"][same], atol=0.011)
    last = frame.groupby(JOIN_KEY).tail(1)
    churned = frame[frame[LABEL] == 1]
    assert churned.index.isin(last.index).all()  # nobody comes back after churning
    final = last[EVENT_TS] == frame[EVENT_TS].max()
    assert (last.loc[~final, LABEL] == 1).all()  # leaving before the end means churning
    joined = frame.groupby(JOIN_KEY).head(1)
    first = joined[EVENT_TS] == frame[EVENT_TS].min()
    assert (joined.loc[~first, "tenure"] == 1).all()  # new joiners start at tenure 1
    assert (joined.loc[first, "tenure"] > 1).mean() > 0.9  # the initial cohort has history


def test_monthly_churn_rate_is_a_few_percent(base: GeneratedData) -> None:
    assert 0.02 <= base.churn_rate <= 0.06
    per_month = base.frame.groupby(EVENT_TS)[LABEL].mean()
    assert per_month.between(0.015, 0.07).all()
    rates = base.frame.groupby("contract")[LABEL].mean()
    assert rates["Month-to-month"] > 3 * rates["One year"] > 3 * rates["Two year"]


def test_a_model_can_learn_churn_from_one_snapshot() -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = generate_churn_data(customers=40_000, months=1, seed=11).frame
    categorical = [c.name for c in FEATURES if c.kind == "category"]
    numeric = [c.name for c in FEATURES if c.kind != "category"]
    model = make_pipeline(
        ColumnTransformer([("c", OneHotEncoder(), categorical), ("n", StandardScaler(), numeric)]),
        LogisticRegression(max_iter=2000),
    )
    train = frame.index % 2 == 0
    model.fit(frame[train], frame.loc[train, LABEL])
    auc = roc_auc_score(frame.loc[~train, LABEL], model.predict_proba(frame[~train])[:, 1])
    assert 0.75 <= auc <= 0.85


def test_data_drift_changes_prices_and_joiner_mix_only(
    base: GeneratedData, data_drift: GeneratedData
) -> None:
    assert data_drift.data_drift_from is not None
    assert data_drift.data_drift_from.date() == DRIFT_DATE
    before, drifted = base.frame, data_drift.frame
    pd.testing.assert_frame_equal(before[~after(before, DRIFT_DATE)], drifted[~after(drifted, DRIFT_DATE)])

    # Price rise: the same customers (joined before the date, so same services) pay PRICE_RISE x.
    old = before[at(before, DRIFT_DATE) & (before["tenure"] > 1)].set_index(JOIN_KEY)
    new = drifted[at(drifted, DRIFT_DATE) & (drifted["tenure"] > 1)].set_index(JOIN_KEY)
    assert old.index.equals(new.index)
    ratio = new["monthly_charges"].mean() / old["monthly_charges"].mean()
    assert ratio == pytest.approx(PRICE_RISE, abs=0.002)
    assert (
        (new["total_charges"] - old["total_charges"])
        .round(2)
        .equals((new["monthly_charges"] - old["monthly_charges"]).round(2))
    )
    late = after(before, DRIFT_DATE)
    late_drifted = after(drifted, DRIFT_DATE)
    for name in ("monthly_charges", "total_charges"):
        assert stats.ks_2samp(before.loc[late, name], drifted.loc[late_drifted, name]).pvalue < 1e-6, name
    for name in [*PROFILE, "tenure"]:
        assert stats.ks_2samp(before.loc[late, name], drifted.loc[late_drifted, name]).pvalue > 0.05, name

    # New joiners (tenure 1) shift towards fiber optic and electronic check, nothing else.
    joiners = drifted[drifted["tenure"] == 1]
    early, late_joiners = joiners[~after(joiners, DRIFT_DATE)], joiners[after(joiners, DRIFT_DATE)]
    fiber_early = (early["internet_service"] == "Fiber optic").mean()
    fiber_late = (late_joiners["internet_service"] == "Fiber optic").mean()
    assert fiber_early == pytest.approx(INTERNET_MIX[1], abs=0.05)
    assert fiber_late == pytest.approx(DRIFT_INTERNET_MIX[1], abs=0.05)
    echeck = (late_joiners["payment_method"] == "Electronic check").mean()
    assert echeck > (early["payment_method"] == "Electronic check").mean() + 0.2
    for name in PROFILE:
        assert stats.ks_2samp(early[name], late_joiners[name]).pvalue > 0.01, name
    assert "monthly_charges x1.25" in data_drift.drift[0]


def test_concept_drift_changes_churn_not_features(base: GeneratedData, concept_drift: GeneratedData) -> None:
    assert HAZARD != CONCEPT_DRIFT_HAZARD
    before, drifted = base.frame, concept_drift.frame
    pd.testing.assert_frame_equal(before[~after(before, DRIFT_DATE)], drifted[~after(drifted, DRIFT_DATE)])
    # At the first drifted snapshot the customers and their features are identical; labels are not.
    first_old, first_new = before[at(before, DRIFT_DATE)], drifted[at(drifted, DRIFT_DATE)]
    pd.testing.assert_frame_equal(first_old.drop(columns=LABEL), first_new.drop(columns=LABEL))
    assert first_new[LABEL].sum() > first_old[LABEL].sum()

    # The previously safe segment (two-year contracts) starts to churn; its feature mix stays.
    late_old = before[after(before, DRIFT_DATE) & (before["contract"] == "Two year")]
    late_new = drifted[after(drifted, DRIFT_DATE) & (drifted["contract"] == "Two year")]
    assert late_new[LABEL].mean() > 2.5 * late_old[LABEL].mean()
    for name in [*PROFILE, "tenure", "monthly_charges"]:
        assert stats.ks_2samp(late_old[name], late_new[name]).pvalue > 0.05, name
    assert abs(len(late_new) / len(late_old) - 1) < 0.05


@pytest.mark.parametrize(
    ("overrides", "argument"),
    [
        ({"customers": 0}, "customers"),
        ({"months": 0}, "months"),
        ({"seed": -1}, "seed"),
        ({"start": date(2024, 1, 15)}, "start"),
        ({"data_drift_from": date(2024, 1, 1)}, "data_drift_from"),
        ({"concept_drift_from": date(2025, 1, 1)}, "concept_drift_from"),
    ],
)
def test_invalid_arguments_name_the_argument(overrides: dict[str, Any], argument: str) -> None:
    arguments: dict[str, Any] = {"customers": 10, "months": 3, "seed": 1, **overrides}
    with pytest.raises(InvalidArgument) as raised:
        generate_churn_data(**arguments)
    assert raised.value.argument == argument


def test_drift_date_mid_month_starts_at_the_next_snapshot() -> None:
    data = generate_churn_data(customers=50, months=4, seed=1, data_drift_from=date(2024, 2, 15))
    assert data.data_drift_from is not None
    assert data.data_drift_from.date() == date(2024, 3, 1)


def test_write_generated_replaces_earlier_parts(tmp_path: Path, base: GeneratedData) -> None:
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "old.parquet").write_bytes(b"stale")
    written = write_generated(data=base, sources_dir=tmp_path)
    assert set(written) == {*VIEWS, LABEL_SOURCE}
    assert [p.name for p in (tmp_path / "labels").iterdir()] == ["synthetic.parquet"]
    labels = read_source(sources_dir=tmp_path, name=LABEL_SOURCE)
    assert len(labels) == base.snapshot_rows
    assert labels[LABEL].sum() == base.churn_events


@pytest.fixture
def cli_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHURNOPS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_cli_writes_sources_that_read_back(cli_home: Path) -> None:
    args = ["data", "generate", "--customers", "300", "--months", "4", "--seed", "3", "--json"]
    result = CliRunner().invoke(app, [*args, "--data-drift-from", "2024-03-01"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["customers"] == 300
    assert summary["data_drift_from"].startswith("2024-03-01")
    sources = cli_home / "sources"
    assert summary["sources_dir"] == str(sources.resolve())
    for name in (*VIEWS, LABEL_SOURCE):
        frame = read_source(sources_dir=sources, name=name)
        assert len(frame) == summary["snapshot_rows"], name
        assert list(frame.columns) == source_schema(name).names
    table = CliRunner().invoke(app, ["data", "generate", "--customers", "200", "--months", "2"])
    assert table.exit_code == 0, table.output
    assert "snapshot rows" in table.stdout


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--customers", "0"], "--customers"),
        (["--months", "-1"], "--months"),
        (["--seed", "-5"], "--seed"),
        (["--start", "2024-13-01"], "--start"),
        (["--start", "2024-01-15"], "--start"),
        (["--data-drift-from", "yesterday"], "--data-drift-from"),
        (["--months", "3", "--data-drift-from", "2025-01-01"], "--data-drift-from"),
        (["--concept-drift-from", "2023-12-01"], "--concept-drift-from"),
    ],
)
def test_cli_rejects_bad_arguments_naming_the_option(cli_home: Path, args: list[str], option: str) -> None:
    result = CliRunner().invoke(app, ["data", "generate", "--customers", "50", *args])
    assert result.exit_code == 2, result.output
    assert option in result.output
    assert "Traceback" not in result.output
    assert not (cli_home / "sources").exists()
