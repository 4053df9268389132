"""Candidate model families: scikit-learn pipelines whose preprocessing lives in the model.

Serving sends raw features with ``None`` for missing values, so every pipeline starts with a
ColumnTransformer: categories are imputed with a ``__missing__`` level (NaN first, then
``None``: SimpleImputer treats them separately) and one-hot encoded with unknown levels
ignored; numbers are median-imputed and standard-scaled.

The fitted pipelines serialise with skops; :data:`TRUSTED_TYPES` (defined once in
``churnops.contracts.artifacts``, where the loaders read it) is the allow-list their loading
needs beyond skops' defaults (checked by the tests for every family).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from churnops.contracts.artifacts import TRUSTED_TYPES as TRUSTED_TYPES  # re-exported for training
from churnops.contracts.columns import Column
from churnops.training.frame import categorical, numeric

MISSING = "__missing__"


def preprocessor(columns: Sequence[Column]) -> ColumnTransformer:
    categories = Pipeline(
        [
            ("impute_nan", SimpleImputer(strategy="constant", fill_value=MISSING)),
            ("impute_none", SimpleImputer(missing_values=None, strategy="constant", fill_value=MISSING)),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    numbers = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    return ColumnTransformer(
        [("categorical", categories, categorical(columns)), ("numeric", numbers, numeric(columns))],
        remainder="drop",
        verbose_feature_names_out=False,
    )


def _logistic_regression(seed: int) -> LogisticRegression:
    return LogisticRegression(C=1.0, max_iter=5000, random_state=seed)


def _hist_gradient_boosting(seed: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        learning_rate=0.05,
        max_iter=300,
        max_leaf_nodes=15,
        min_samples_leaf=40,
        l2_regularization=1.0,
        early_stopping=True,
        validation_fraction=0.15,
        n_iter_no_change=20,
        random_state=seed,
    )


FAMILIES: dict[str, Callable[[int], object]] = {
    "logistic_regression": _logistic_regression,
    "hist_gradient_boosting": _hist_gradient_boosting,
}


def build_pipeline(*, family: str, columns: Sequence[Column], seed: int = 0) -> Pipeline:
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; known: {', '.join(FAMILIES)}")
    return Pipeline([("preprocess", preprocessor(columns)), ("model", FAMILIES[family](seed))])


@dataclass(frozen=True)
class FittedCandidate:
    family: str
    pipeline: Pipeline
    params: dict[str, object]


def fit_candidate(
    *, family: str, columns: Sequence[Column], x: pd.DataFrame, y: npt.NDArray[np.int64], seed: int = 0
) -> FittedCandidate:
    """Fit one family on one thread (the machine is shared; serving uses one thread too)."""
    pipeline = build_pipeline(family=family, columns=columns, seed=seed)
    with threadpool_limits(limits=1):
        pipeline.fit(x, y)
    model_params = pipeline.named_steps["model"].get_params()
    params: dict[str, object] = {
        k: v for k, v in model_params.items() if isinstance(v, (int, float, str, bool)) or v is None
    }
    return FittedCandidate(family=family, pipeline=pipeline, params=params)


def score(pipeline: object, x: pd.DataFrame) -> npt.NDArray[np.float64]:
    """Positive-class probabilities, on one thread."""
    with threadpool_limits(limits=1):
        proba = pipeline.predict_proba(x)  # type: ignore[attr-defined]
    return np.asarray(proba, dtype=np.float64)[:, 1]
