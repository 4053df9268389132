"""Scoring: raw churn_v1 feature rows in, churn probabilities out; rows without usable features get none.

``sklearn_scorer`` calls the model's ``predict_proba`` on a DataFrame of the raw features (what
training fitted). A single-row call costs ~4-5 ms here, nearly all of it ColumnTransformer and
OneHotEncoder input checking, so ``compile_linear`` turns the common shape
(ColumnTransformer of OneHotEncoder / StandardScaler / passthrough, then a binary
LogisticRegression) into lookup tables and one dot product; it is used only when it matches
``predict_proba`` on probe rows to 1e-9 at load time, and the sklearn path is used otherwise (a
compiled form that fails or disagrees on the probes is logged as a warning; the kind in use is
exported as the ``scorer`` label of the model-info metric).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from churnops.contracts.columns import FEATURES, feature_names
from churnops.contracts.model_input import model_frame
from churnops.contracts.online import OnlineRow, RowStatus, scored_status

logger = logging.getLogger(__name__)
Scorer = Callable[[Sequence[dict[str, Any]]], list[float]]
PARITY_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Scored:
    """One row of a response (and of the prediction log)."""

    customer_id: str | None
    features: dict[str, Any] | None
    score: float | None
    status: str


def feature_frame(rows: Sequence[dict[str, Any]]) -> Any:
    """The model's input: the raw features in declaration order with the one dtype rule of
    :func:`churnops.contracts.model_input.model_frame` (what training fitted on)."""
    return model_frame(rows, columns=FEATURES)


def sklearn_scorer(estimator: Any) -> Scorer:
    def score(rows: Sequence[dict[str, Any]]) -> list[float]:
        if not rows:
            return []
        proba = estimator.predict_proba(feature_frame(rows))
        return [float(p) for p in proba[:, 1]]

    return score


@dataclass(frozen=True)
class LinearTables:
    """A fitted one-hot/scale + logistic model as per-column weights."""

    intercept: float
    categorical: dict[str, dict[str, float]]
    numeric: dict[str, float]

    def __call__(self, rows: Sequence[dict[str, Any]]) -> list[float]:
        out = []
        cat = self.categorical.items()
        num = self.numeric.items()
        for row in rows:
            z = self.intercept
            for name, table in cat:
                z += table.get(row[name], 0.0)
            for name, weight in num:
                z += weight * row[name]
            out.append(1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z)))
        return out


def _unwrap_imputers(step: Any) -> Any:
    """``Pipeline[SimpleImputer..., T]`` -> ``T``: only complete rows are scored, and an imputer
    leaves a present value unchanged. None for any other shape."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    if not isinstance(step, Pipeline):
        return step
    *head, (_, last) = step.steps
    if not all(isinstance(s, SimpleImputer) and not s.add_indicator for _, s in head):
        return None
    return last


def compile_linear(estimator: Any) -> LinearTables | None:
    """Lookup tables for Pipeline[ColumnTransformer[OneHot|StandardScaler|passthrough], binary LR].

    Each column transformer may be preceded by SimpleImputers (the training pipeline's shape).
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if not isinstance(estimator, Pipeline) or len(estimator.steps) != 2:
        return None
    pre, clf = estimator.steps[0][1], estimator.steps[1][1]
    if not isinstance(pre, ColumnTransformer) or not isinstance(clf, LogisticRegression):
        return None
    if len(clf.classes_) != 2 or clf.coef_.shape[0] != 1:
        return None
    coef = [float(w) for w in clf.coef_[0]]
    intercept = float(clf.intercept_[0])
    categorical: dict[str, dict[str, float]] = {}
    numeric: dict[str, float] = {}
    offset = 0
    for _name, step, columns in pre.transformers_:
        if step == "drop":
            continue
        transformer = _unwrap_imputers(step)
        if transformer is None:
            return None
        if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
            return None
        if isinstance(transformer, OneHotEncoder):
            if transformer.drop is not None or transformer.handle_unknown != "ignore":
                return None
            if getattr(transformer, "infrequent_categories_", None) is not None and any(
                c is not None for c in transformer.infrequent_categories_
            ):
                return None
            for col, cats in zip(columns, transformer.categories_, strict=True):
                categorical[col] = {str(c): coef[offset + i] for i, c in enumerate(cats)}
                offset += len(cats)
        elif isinstance(transformer, StandardScaler) or transformer == "passthrough":
            for j, col in enumerate(columns):
                mean = float(transformer.mean_[j]) if getattr(transformer, "mean_", None) is not None else 0.0
                scale = (
                    float(transformer.scale_[j]) if getattr(transformer, "scale_", None) is not None else 1.0
                )
                if transformer == "passthrough" or not transformer.with_mean:
                    mean = 0.0
                if transformer == "passthrough" or not transformer.with_std:
                    scale = 1.0
                weight = coef[offset] / scale
                numeric[col] = weight
                intercept -= weight * mean
                offset += 1
        else:
            return None
    if offset != len(coef) or set(categorical) | set(numeric) != set(feature_names()):
        return None
    return LinearTables(intercept=intercept, categorical=categorical, numeric=numeric)


def probe_rows(tables: LinearTables, n: int = 64) -> list[dict[str, Any]]:
    """Rows that visit every known category and a spread of numeric values."""
    rows = []
    for i in range(n):
        row: dict[str, Any] = {}
        for col in FEATURES:
            if col.kind == "category":
                cats = sorted(tables.categorical[col.name])
                row[col.name] = cats[i % len(cats)]
            elif col.kind == "flag":
                row[col.name] = i % 2
            elif col.kind == "int":
                row[col.name] = (i * 7) % 73
            else:
                row[col.name] = round(10.0 + i * 13.37, 2)
        rows.append(row)
    return rows


def make_scorer(estimator: Any) -> tuple[Scorer, str]:
    """The fastest scorer that agrees with ``predict_proba``; returns it and its kind."""
    reference = sklearn_scorer(estimator)
    tables = compile_linear(estimator)
    if tables is not None:
        probes = probe_rows(tables)
        try:
            agree = all(
                abs(a - b) <= PARITY_TOLERANCE for a, b in zip(tables(probes), reference(probes), strict=True)
            )
        except Exception as error:
            logger.warning(
                "the compiled linear scorer could not be checked on its probe rows (%r); "
                "scoring with predict_proba",
                error,
                exc_info=error,
            )
            return reference, "sklearn"
        if agree:
            return tables, "linear_tables"
        logger.warning(
            "the compiled linear scorer differs from predict_proba by more than %g on its probe rows; "
            "scoring with predict_proba",
            PARITY_TOLERANCE,
        )
    return reference, "sklearn"


def score_rows(
    *,
    scorer: Scorer,
    rows: Sequence[OnlineRow],
) -> list[Scored]:
    """Score the rows whose status is ok and that have every feature; others keep their reason."""
    usable: list[int] = []
    statuses: list[RowStatus] = []
    for i, row in enumerate(rows):
        status = scored_status(row.status, row.features.values())
        statuses.append(status)
        if status is RowStatus.OK:
            usable.append(i)
    scores = scorer([rows[i].features for i in usable]) if usable else []
    by_index = dict(zip(usable, scores, strict=True))
    return [
        Scored(
            customer_id=row.customer_id,
            features=row.features if statuses[i] is not RowStatus.UNKNOWN_CUSTOMER else None,
            score=by_index.get(i),
            status=statuses[i].value,
        )
        for i, row in enumerate(rows)
    ]
