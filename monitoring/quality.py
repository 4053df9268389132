"""Data quality of a window against the declared domains of churnops.contracts.columns.FEATURES.

Drift scores drop nulls before comparing distributions (as Evidently does), so a feature that
goes missing or starts carrying values outside its domain must be reported on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from churnops.contracts.columns import FEATURES, Column


@dataclass(frozen=True)
class FeatureQuality:
    """Shares of the window's rows: null, numeric outside [minimum, maximum] (flags outside
    {0, 1}), category outside the declared categories."""

    feature: str
    null_share: float
    out_of_range_share: float
    unseen_category_share: float

    def to_json(self) -> dict[str, object]:
        return {
            "feature": self.feature,
            "null_share": self.null_share,
            "out_of_range_share": self.out_of_range_share,
            "unseen_category_share": self.unseen_category_share,
        }


def _column_quality(values: pd.Series, col: Column) -> FeatureQuality:
    rows = len(values)
    if rows == 0:
        return FeatureQuality(col.name, 0.0, 0.0, 0.0)
    nulls = values.isna()
    present = values[~nulls]
    out_of_range = unseen = 0
    if col.kind == "category":
        unseen = int((~present.astype("object").isin(col.categories)).sum())
    else:
        numbers = pd.to_numeric(present, errors="coerce").astype("float64")
        bad = numbers.isna() | ~np.isfinite(numbers)
        if col.kind == "flag":
            bad |= ~numbers.isin((0.0, 1.0))
        else:
            low = -np.inf if col.minimum is None else col.minimum
            high = np.inf if col.maximum is None else col.maximum
            bad |= (numbers < low) | (numbers > high)
        out_of_range = int(bad.sum())
    return FeatureQuality(col.name, float(nulls.mean()), out_of_range / rows, unseen / rows)


def data_quality(
    *, frame: pd.DataFrame, columns: tuple[Column, ...] = FEATURES
) -> tuple[FeatureQuality, ...]:
    """Null, out-of-range and unseen-category shares for every feature column of ``frame``."""
    return tuple(_column_quality(frame[col.name], col) for col in columns)
