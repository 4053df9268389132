"""One model-input builder and one dtype rule (issue 16.4): training's builder, serving's scorer
(its sklearn path and its compiled fast path) and ``mlflow.pyfunc`` give the same probabilities
for the same rows, and the MLflow signature declares integers as integers."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from churnops.contracts.columns import FEATURES, LABEL, feature_names
from churnops.contracts.model_input import MLFLOW_TYPES, ModelInputError, model_frame
from churnops.training.candidates import fit_candidate, score
from churnops.training.frame import labels, model_input
from churnops.training.mlflow_logging import model_signature, save_model_dir
from serving.scoring import feature_frame, make_scorer, sklearn_scorer

INTEGER_KINDS = ("flag", "int")


def feast_frame(n: int, *, seed: int = 0, missing: bool = True) -> pd.DataFrame:
    """Typed as Feast's training frame is (build_training_set): Int64 integers and flags,
    float64, object strings, nulls where a view had no row."""
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {}
    for col in FEATURES:
        if col.kind == "category":
            data[col.name] = pd.Series(rng.choice(list(col.categories), n), dtype="object")
        elif col.kind == "flag":
            data[col.name] = pd.array(rng.integers(0, 2, n), dtype="Int64")
        elif col.kind == "int":
            data[col.name] = pd.array(rng.integers(0, 72, n), dtype="Int64")
        else:
            data[col.name] = rng.uniform(18, 120, n).round(2)
    frame = pd.DataFrame(data)
    p = (
        0.1
        + 0.4 * frame["contract"].eq("Month-to-month").to_numpy()
        + 0.01 * (72 - frame["tenure"].to_numpy(float))
    )
    frame[LABEL] = (rng.random(n) < np.clip(p, 0, 1)).astype(np.int64)
    if missing:
        frame.loc[frame.index[:20], "contract"] = None
        frame.loc[frame.index[10:30], "tenure"] = pd.NA
        frame.loc[frame.index[25:35], "monthly_charges"] = np.nan
    return frame


def python_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows as serving holds them (OnlineRow.features): plain Python values."""
    return [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        for row in frame[feature_names()].astype(object).to_dict("records")
    ]


# --- the rule ---------------------------------------------------------------------------------------


def test_one_dtype_per_kind() -> None:
    complete = model_frame(feast_frame(40, missing=False))
    for col in FEATURES:
        expected = {"category": "object", "flag": "int64", "int": "int64", "float": "float64"}[col.kind]
        assert str(complete[col.name].dtype) == expected, col.name
    assert list(complete.columns) == feature_names()  # declaration order, label dropped

    with_gaps = model_frame(feast_frame(40))
    assert with_gaps["tenure"].dtype == "Int64" and with_gaps["tenure"].iloc[10] is pd.NA  # never float
    assert with_gaps["contract"].iloc[0] is None and np.isnan(with_gaps["monthly_charges"].iloc[25])


def test_rows_and_frames_build_the_same_input() -> None:
    frame = feast_frame(30, missing=False)
    from_rows = model_frame(python_rows(frame))
    pd.testing.assert_frame_equal(from_rows, model_frame(frame.reset_index(drop=True)))
    pd.testing.assert_frame_equal(feature_frame(python_rows(frame)), from_rows)  # serving's
    # Rows with gaps (an absent key, None) take the checked way and agree with the frame too.
    gappy = feast_frame(30, seed=1)
    rows = python_rows(gappy)
    del rows[12]["tenure"]
    pd.testing.assert_frame_equal(model_frame(rows), model_frame(gappy[feature_names()]))


def test_a_value_its_kind_cannot_hold_is_refused_not_truncated() -> None:
    rows = python_rows(feast_frame(2, missing=False))
    rows[1]["tenure"] = 12.5
    with pytest.raises(ModelInputError, match="'tenure'"):
        model_frame(rows)
    rows[1]["tenure"] = 12.0  # an integral float is an integer
    assert model_frame(rows)["tenure"].tolist()[1] == 12
    with pytest.raises(ModelInputError, match=r"lacks feature column\(s\) \['tenure'\]"):
        model_frame(feast_frame(2).drop(columns=["tenure"]))


def test_the_signature_declares_integers_as_integers() -> None:
    signature = model_signature(FEATURES)
    types = {spec.name: spec.type.name for spec in signature.inputs.inputs}
    assert types == {c.name: MLFLOW_TYPES[c.kind] for c in FEATURES}
    integers = [c.name for c in FEATURES if c.kind in INTEGER_KINDS]
    assert "tenure" in integers and "senior_citizen" in integers
    assert all(types[name] == "long" for name in integers)
    assert {types[c.name] for c in FEATURES if c.kind == "float"} == {"double"}
    assert {types[c.name] for c in FEATURES if c.kind == "category"} == {"string"}


def test_the_builder_and_redaction_import_nothing_heavy() -> None:
    """Serving imports them on its start-up path: their module-level imports are the standard
    library and the column contract only (pandas is imported when the builder is called)."""
    import churnops.contracts.model_input as builder
    import churnops.contracts.redaction as redaction

    allowed = {"__future__", "collections.abc", "typing", "logging", "re", "churnops.contracts.columns"}
    for module in (builder, redaction):
        tree = ast.parse(Path(str(module.__file__)).read_text())
        top = set()
        for node in tree.body:
            if isinstance(node, ast.Import):
                top |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                top.add(str(node.module))
        assert top <= allowed, (module.__name__, top - allowed)


# --- the same probabilities through every path -----------------------------------------------------


@pytest.fixture(scope="module")
def trained() -> dict[str, Any]:
    """Both families fitted by training's own builder on a frame with gaps (Int64 with NA)."""
    frame = feast_frame(800, seed=3)
    x, y = model_input(frame, columns=list(FEATURES)), labels(frame)
    assert x["tenure"].dtype == "Int64"  # training fits on integers, with their gaps
    return {
        family: fit_candidate(family=family, columns=list(FEATURES), x=x, y=y).pipeline
        for family in ("logistic_regression", "hist_gradient_boosting")
    }


@pytest.mark.parametrize("family", ["logistic_regression", "hist_gradient_boosting"])
def test_training_serving_and_pyfunc_give_identical_probabilities(
    trained: dict[str, Any], family: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow.pyfunc

    model = trained[family]
    rows = feast_frame(120, seed=9, missing=False)  # scored rows are complete (serving, batch)
    training = score(model, model_input(rows, columns=list(FEATURES)))  # training's evaluation path
    serving = np.array(sklearn_scorer(model)(python_rows(rows)))
    np.testing.assert_array_equal(serving, training)

    scorer, kind = make_scorer(model)  # serving's chosen scorer, after its parity check at load
    assert kind == ("linear_tables" if family == "logistic_regression" else "sklearn")
    np.testing.assert_allclose(np.array(scorer(python_rows(rows))), training, rtol=0, atol=1e-12)

    save_model_dir(model=model, columns=list(FEATURES), input_example=rows.head(3), path=tmp_path / "model")
    # MLflow refuses to deserialize any sklearn flavour, skops included, unless this is set: its
    # skops loader trusts the types listed in the artifact itself (registry_ext never does; see
    # registry_ext/artifacts.py). This model was written by this test a line above, so it is
    # trusted here, and only here.
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    pyfunc = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    # The training frame as Feast gives it (Int64 integers, extra label column) goes in as is ...
    on_training_frame = np.asarray(pyfunc.predict(rows))[:, 1]
    # ... and so does the builder's output (int64 integers).
    on_model_frame = np.asarray(pyfunc.predict(model_frame(rows)))[:, 1]
    np.testing.assert_array_equal(on_training_frame, training)
    np.testing.assert_array_equal(on_model_frame, training)
