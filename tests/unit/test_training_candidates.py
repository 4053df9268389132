"""Candidate pipelines: preprocessing inside the model, raw rows with None, skops round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import skops.io

from churnops.contracts.columns import FEATURES, feature_names
from churnops.training.candidates import FAMILIES, TRUSTED_TYPES, build_pipeline, fit_candidate, score
from churnops.training.errors import TrainingDataError
from churnops.training.frame import feature_columns, labels, model_input

COLUMNS = feature_columns(feature_names())


def raw_rows(n: int, seed: int = 0) -> pd.DataFrame:
    """Typed like the Feast training frame: Int64 flags/ints, float64, object categories."""
    rng = np.random.default_rng(seed)
    data: dict[str, object] = {}
    for col in FEATURES:
        if col.kind == "category":
            data[col.name] = pd.Series(rng.choice(list(col.categories), n), dtype="object")
        elif col.kind == "flag":
            data[col.name] = pd.array(rng.integers(0, 2, n), dtype="Int64")
        elif col.kind == "int":
            data[col.name] = pd.array(rng.integers(0, 72, n), dtype="Int64")
        else:
            data[col.name] = rng.uniform(18, 120, n)
    frame = pd.DataFrame(data)
    month_to_month = frame["contract"].eq("Month-to-month").to_numpy()
    p = 0.1 + 0.4 * month_to_month + 0.2 * (frame["tenure"].to_numpy(dtype=float) < 12)
    frame["churned"] = (rng.random(n) < p).astype(np.int64)
    # Feast gives nulls for a customer without a row in a view's TTL window.
    frame.loc[frame.index[:15], "contract"] = None
    frame.loc[frame.index[10:25], "tenure"] = pd.NA
    frame.loc[frame.index[20:30], "monthly_charges"] = np.nan
    return frame


@pytest.fixture(scope="module")
def fitted() -> dict[str, object]:
    frame = raw_rows(600)
    x, y = model_input(frame, columns=COLUMNS), labels(frame)
    return {f: fit_candidate(family=f, columns=COLUMNS, x=x, y=y).pipeline for f in FAMILIES}


def serving_rows() -> pd.DataFrame:
    """What serving sends: plain dicts, None for missing, even an unseen category."""
    full = {c.name: (c.categories[0] if c.kind == "category" else 1) for c in FEATURES}
    empty = dict.fromkeys(full)
    unseen = {**full, "contract": "Three year", "payment_method": "Crypto", "tenure": None}
    return pd.DataFrame([full, empty, unseen])


def test_model_input_has_one_dtype_per_kind_and_none_for_missing() -> None:
    """Integers stay integers (pandas' nullable Int64 when one is missing), never floats."""
    x = model_input(raw_rows(50), columns=COLUMNS)
    assert list(x.columns) == feature_names()
    assert x["contract"].dtype == object and x["contract"].iloc[0] is None
    assert x["tenure"].dtype == "Int64" and x["tenure"].iloc[10] is pd.NA
    assert x["senior_citizen"].dtype == np.int64
    assert x["monthly_charges"].dtype == np.float64 and np.isnan(x["monthly_charges"].iloc[20])
    assert model_input(raw_rows(50).iloc[30:], columns=COLUMNS)["tenure"].dtype == np.int64


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_family_scores_raw_rows_with_none_and_unknown_categories(
    fitted: dict[str, object], family: str
) -> None:
    rows = serving_rows()
    scores = score(fitted[family], rows)
    assert scores.shape == (3,)
    assert np.isfinite(scores).all() and ((scores > 0) & (scores < 1)).all()
    # One row at a time (object columns full of None) gives the same scores.
    singles = [score(fitted[family], rows.iloc[[i]].astype(object))[0] for i in range(3)]
    np.testing.assert_allclose(singles, scores, rtol=1e-9)
    # NaN and None mean the same thing: missing.
    nan_rows = rows.copy()
    nan_rows.loc[1, "contract"] = np.nan
    np.testing.assert_allclose(score(fitted[family], nan_rows), scores, rtol=1e-9)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_the_model_learns_the_planted_signal(fitted: dict[str, object], family: str) -> None:
    from sklearn.metrics import roc_auc_score

    test = raw_rows(600, seed=1)
    auc = roc_auc_score(labels(test), score(fitted[family], model_input(test, columns=COLUMNS)))
    assert auc > 0.65


@pytest.mark.parametrize("family", list(FAMILIES))
def test_skops_loads_each_family_with_only_the_trusted_types(fitted: dict[str, object], family: str) -> None:
    blob = skops.io.dumps(fitted[family])
    untrusted = skops.io.get_untrusted_types(data=blob)
    assert set(untrusted) <= set(TRUSTED_TYPES), untrusted
    loaded = skops.io.loads(blob, trusted=list(TRUSTED_TYPES))
    rows = serving_rows()
    np.testing.assert_array_equal(score(loaded, rows), score(fitted[family], rows))


def test_skops_refuses_without_the_trusted_types(fitted: dict[str, object]) -> None:
    blob = skops.io.dumps(fitted["hist_gradient_boosting"])
    with pytest.raises(skops.io.exceptions.UntrustedTypesFoundException):
        skops.io.loads(blob, trusted=None)


def test_unknown_family_and_unknown_feature_are_errors() -> None:
    with pytest.raises(ValueError, match="unknown model family 'xgb'"):
        build_pipeline(family="xgb", columns=COLUMNS)
    with pytest.raises(TrainingDataError, match=r"\['shoe_size'\]"):
        feature_columns(["tenure", "shoe_size"])
    with pytest.raises(TrainingDataError, match="lacks feature column"):
        model_input(pd.DataFrame({"tenure": [1]}), columns=COLUMNS)
