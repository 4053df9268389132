"""Evaluation metrics of a scored split, overall and per named slice.

Every metric is checked finite; a non-finite one raises :class:`MetricError`.

Threshold: chosen on the validation split as the score threshold that maximises F1 (ties go
to the higher threshold, i.e. fewer alerts). Recall and precision "at the threshold" use
``score >= threshold`` on every split.

Top-decile lift: the positive rate among the ``ceil(n / 10)`` highest-scored rows divided by
the positive rate of all rows (ties in score broken by row order, stable).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
)

from churnops.contracts.metric_directions import METRIC_NAMES
from churnops.training.errors import MetricError

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

METRICS = METRIC_NAMES
"""Every metric a split reports, with its direction in ``churnops.contracts.metric_directions``."""


@dataclass(frozen=True)
class SliceSpec:
    """A named subset of rows: ``column == equals`` (e.g. contract == Month-to-month)."""

    name: str
    column: str
    equals: str | int | float

    def mask(self, frame: pd.DataFrame) -> npt.NDArray[np.bool_]:
        if self.column not in frame.columns:
            raise MetricError(f"slice {self.name!r}: column {self.column!r} is not in the evaluated rows")
        return (frame[self.column] == self.equals).fillna(False).to_numpy(dtype=bool)


@dataclass(frozen=True)
class SplitMetrics:
    """Metrics of one split: overall, per slice, and why a slice has none (too small, one class)."""

    rows: int
    overall: dict[str, float]
    slices: dict[str, dict[str, float]] = field(default_factory=dict)
    slice_notes: dict[str, str] = field(default_factory=dict)

    def flat(self, prefix: str) -> dict[str, float]:
        """``{prefix}_{metric}`` and ``{prefix}_slice_{slice}_{metric}`` (MLflow metric names)."""
        out = {f"{prefix}_{k}": v for k, v in self.overall.items()}
        out[f"{prefix}_rows"] = float(self.rows)
        for name, values in self.slices.items():
            out.update({f"{prefix}_slice_{name}_{k}": v for k, v in values.items()})
        return out

    def to_dict(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "overall": dict(self.overall),
            "slices": {k: dict(v) for k, v in self.slices.items()},
            "slice_notes": dict(self.slice_notes),
        }


def _as_arrays(y_true: Sequence[int] | npt.ArrayLike, scores: npt.ArrayLike) -> tuple[Ints, Floats]:
    y = np.asarray(y_true, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise MetricError(f"labels {y.shape} and scores {s.shape} must be 1-d arrays of the same length")
    if not np.isfinite(s).all():
        raise MetricError(f"{int((~np.isfinite(s)).sum())} score(s) are NaN or infinite")
    return y, s


def top_decile_lift(y_true: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    y, s = _as_arrays(y_true, scores)
    base = y.mean() if len(y) else float("nan")
    if len(y) == 0 or base == 0:
        return float("nan")
    top = math.ceil(len(y) / 10)
    order = np.argsort(-s, kind="stable")
    return float(y[order[:top]].mean() / base)


def choose_threshold(y_true: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """The score threshold maximising F1 (``score >= threshold`` is positive); ties -> higher."""
    y, s = _as_arrays(y_true, scores)
    if y.sum() == 0:
        raise MetricError("cannot choose a threshold: the validation split has no positives")
    precision, recall, thresholds = precision_recall_curve(y, s)
    precision, recall = precision[:-1], recall[:-1]
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    best = f1.max()
    candidates = thresholds[np.isclose(f1, best, rtol=0, atol=1e-12)]
    return float(candidates.max())


def compute_metrics(y_true: npt.ArrayLike, scores: npt.ArrayLike, *, threshold: float) -> dict[str, float]:
    """The overall metrics of one scored set (both classes required)."""
    y, s = _as_arrays(y_true, scores)
    positives = int(y.sum())
    if positives == 0 or positives == len(y):
        missing = "positives" if positives == 0 else "negatives"
        raise MetricError(f"metrics need both classes; the {len(y)} evaluated rows have no {missing}")
    predicted = s >= threshold
    tp = int((predicted & (y == 1)).sum())
    base_rate = positives / len(y)
    pr_auc = float(average_precision_score(y, s))
    values = {
        "roc_auc": float(roc_auc_score(y, s)),
        "pr_auc": pr_auc,
        "pr_auc_lift": pr_auc / base_rate,
        "brier": float(brier_score_loss(y, s)),
        "log_loss": float(log_loss(y, np.clip(s, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "top_decile_lift": top_decile_lift(y, s),
        "recall_at_threshold": tp / positives,
        "precision_at_threshold": tp / int(predicted.sum()) if predicted.any() else 0.0,
        "base_rate": base_rate,
    }
    bad = {k: v for k, v in values.items() if not math.isfinite(v)}
    if bad:
        raise MetricError(f"non-finite metric(s) {bad} on {len(y)} rows")
    return values


def evaluate_split(
    *,
    frame: pd.DataFrame,
    y_true: npt.ArrayLike,
    scores: npt.ArrayLike,
    threshold: float,
    slices: Sequence[SliceSpec] = (),
    min_slice_rows: int = 30,
) -> SplitMetrics:
    """Overall metrics plus the metrics of every slice that has enough rows of both classes."""
    y, s = _as_arrays(y_true, scores)
    if len(frame) != len(y):
        raise MetricError(f"{len(frame)} rows but {len(y)} labels")
    per_slice: dict[str, dict[str, float]] = {}
    notes: dict[str, str] = {}
    for spec in slices:
        mask = spec.mask(frame)
        n, pos = int(mask.sum()), int(y[mask].sum())
        if n < min_slice_rows:
            notes[spec.name] = f"{n} rows < {min_slice_rows}"
        elif pos in (0, n):
            notes[spec.name] = f"{n} rows, all {'negative' if pos == 0 else 'positive'}"
        else:
            per_slice[spec.name] = compute_metrics(y[mask], s[mask], threshold=threshold)
    return SplitMetrics(
        rows=len(y),
        overall=compute_metrics(y, s, threshold=threshold),
        slices=per_slice,
        slice_notes=notes,
    )


__all__ = [
    "METRICS",
    "SliceSpec",
    "SplitMetrics",
    "choose_threshold",
    "compute_metrics",
    "evaluate_split",
    "top_decile_lift",
]
