"""The training frame's columns and labels; the model's input is built by
:func:`churnops.contracts.model_input.model_frame`, the one builder serving and batch scoring
use too (one dtype per column kind), so what the model saw at fit time is what it is sent later.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from churnops.contracts.columns import FEATURES, LABEL, Column
from churnops.contracts.model_input import ModelInputError, model_frame
from churnops.training.errors import TrainingDataError


def feature_columns(names: Sequence[str]) -> list[Column]:
    """The schema columns for ``names`` (in schema order); unknown names are an error."""
    known = {c.name: c for c in FEATURES}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise TrainingDataError(
            f"feature(s) {unknown} are not declared in churnops.contracts.columns.FEATURES; "
            "the model's preprocessing needs each feature's kind"
        )
    wanted = set(names)
    return [c for c in FEATURES if c.name in wanted]


def categorical(columns: Sequence[Column]) -> list[str]:
    return [c.name for c in columns if c.kind == "category"]


def numeric(columns: Sequence[Column]) -> list[str]:
    return [c.name for c in columns if c.kind != "category"]


def model_input(frame: pd.DataFrame, *, columns: Sequence[Column]) -> pd.DataFrame:
    """Raw features as the model takes them (:func:`~churnops.contracts.model_input.model_frame`):
    categories as Python objects (``None`` missing), integers and flags as ``int64`` (``Int64``
    with ``pd.NA`` when one is missing), floats as ``float64``."""
    try:
        return model_frame(frame, columns=columns)
    except ModelInputError as error:
        raise TrainingDataError(f"the training frame: {error}") from None


def labels(frame: pd.DataFrame) -> np.ndarray:
    """The label column as 0/1 integers; nulls or other values are an error."""
    if LABEL not in frame.columns:
        raise TrainingDataError(f"the training frame has no label column {LABEL!r}")
    values = frame[LABEL]
    if values.isna().any():
        raise TrainingDataError(f"{int(values.isna().sum())} row(s) have no {LABEL!r} label")
    as_int = pd.to_numeric(values).astype("int64")
    bad = sorted({int(v) for v in as_int.unique()} - {0, 1})
    if bad:
        raise TrainingDataError(f"label {LABEL!r} must be 0 or 1; found {bad[:5]}")
    return as_int.to_numpy()


def check_class_balance(y: np.ndarray, *, what: str, min_rows: int, min_per_class: int) -> None:
    """Refuse a frame that is too small or lacks one of the classes, naming the problem."""
    rows = len(y)
    positives = int(y.sum())
    negatives = rows - positives
    if rows < min_rows:
        raise TrainingDataError(f"{what} has too few rows: {rows} < {min_rows} required")
    if positives == 0:
        raise TrainingDataError(f"{what} has no positives ({LABEL}=1) among {rows} rows")
    if negatives == 0:
        raise TrainingDataError(f"{what} has no negatives ({LABEL}=0) among {rows} rows")
    if positives < min_per_class:
        raise TrainingDataError(f"{what} has too few positives: {positives} < {min_per_class} required")
    if negatives < min_per_class:
        raise TrainingDataError(f"{what} has too few negatives: {negatives} < {min_per_class} required")
