"""Concept drift as a change of P(churn | x): the randomized probability integral transform.

For a binary outcome y with model probability p = P(churn | x), the randomized PIT
(Dunn & Smyth 1996, "Randomized quantile residuals", J. Comput. Graph. Stat. 5(3))

    u = V * (1 - p)            if y = 0
    u = (1 - p) + V * p        if y = 1,        V ~ U(0, 1) independent of everything

is exactly U(0, 1) for *every* x as long as P(churn | x) is what the model says. A shift of
P(x) alone (data drift) therefore leaves the distribution of u unchanged, while a change of
P(churn | x) moves it. Comparing the current window's u with the u of the training holdout (a
two-sample KS test rather than a test against U(0, 1), so the model's own miscalibration
cancels) isolates concept drift. V is seeded per row from its key (customer id + time), so the
same row always gets the same u and a report is reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from churnops.contracts.columns import EVENT_TS, JOIN_KEY, LABEL, SCORE
from churnops.contracts.monitoring_terms import ReportStatus
from monitoring.errors import MonitoringError
from monitoring.policy import ConceptDriftRules

DEFAULT_KEYS: tuple[str, ...] = (JOIN_KEY, EVENT_TS)


def row_uniforms(
    *, frame: pd.DataFrame, keys: Sequence[str] = DEFAULT_KEYS, seed: int = 0
) -> npt.NDArray[np.float64]:
    """One U(0, 1) draw per row, a pure function of the row's key values and ``seed``."""
    missing = [k for k in keys if k not in frame.columns]
    if missing:
        raise MonitoringError(
            f"concept drift needs the row key column(s) {missing} to seed each row's V; "
            f"pass frames with {list(keys)} (as the prediction log and the holdout have)"
        )
    hashed = pd.util.hash_pandas_object(
        frame[list(keys)], index=False, hash_key=f"churnops{seed % 10**8:08d}"
    ).to_numpy(dtype=np.uint64)
    return (hashed >> np.uint64(11)).astype(np.float64) * 2.0**-53


def randomized_pit(
    *, scores: npt.ArrayLike, churned: npt.ArrayLike, uniforms: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """u = V(1-p) if not churned, (1-p) + Vp if churned (see the module docstring)."""
    p = np.asarray(scores, dtype=np.float64)
    y = np.asarray(churned)
    v = np.asarray(uniforms, dtype=np.float64)
    if not (p.shape == y.shape == v.shape):
        raise MonitoringError(
            f"score, churned and V must have the same length: {p.shape}, {y.shape}, {v.shape}"
        )
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise MonitoringError(
            "score: every value must be a probability in [0, 1] (found NaN or out of range)"
        )
    if not np.isin(y, (0, 1)).all():
        raise MonitoringError(
            f"{LABEL}: every value must be 0 or 1 (found {sorted(set(np.unique(y)) - {0, 1})[:5]})"
        )
    q = 1.0 - p
    return np.where(y == 1, q + v * p, v * q)


def frame_pit(
    *, frame: pd.DataFrame, keys: Sequence[str] = DEFAULT_KEYS, seed: int = 0
) -> npt.NDArray[np.float64]:
    """The randomized PIT of a frame with ``score``, ``churned`` and the key columns."""
    missing = [c for c in (SCORE, LABEL) if c not in frame.columns]
    if missing:
        raise MonitoringError(
            f"concept drift needs column(s) {missing} (the model's score and the matured label)"
        )
    labelled = frame[frame[LABEL].notna()]
    return randomized_pit(
        scores=labelled[SCORE].to_numpy(dtype=np.float64),
        churned=labelled[LABEL].to_numpy(dtype=np.int64),
        uniforms=row_uniforms(frame=labelled, keys=keys, seed=seed),
    )


@dataclass(frozen=True)
class ConceptDecision:
    """The concept-drift verdict for one window."""

    status: ReportStatus
    statistic: float | None
    p_value: float | None
    drifted: bool
    labelled_rows: int
    holdout_rows: int


def decide_concept(
    *,
    statistic: float | None,
    p_value: float | None,
    labelled_rows: int,
    holdout_rows: int,
    rules: ConceptDriftRules,
) -> ConceptDecision:
    """Drift only when p <= alpha AND D >= the effect-size floor AND enough matured rows.

    At tens of thousands of rows a KS p-value flags differences nobody should act on (the
    population ageing moves D by about 0.006); the floor keeps the verdict about size.
    """
    enough = labelled_rows >= rules.min_labelled_rows and holdout_rows >= rules.min_holdout_rows
    if not enough or statistic is None or p_value is None:
        return ConceptDecision(
            ReportStatus.INSUFFICIENT_DATA, statistic, p_value, False, labelled_rows, holdout_rows
        )
    drifted = p_value <= rules.alpha and statistic >= rules.min_statistic
    return ConceptDecision(
        ReportStatus.DRIFT if drifted else ReportStatus.NO_DRIFT,
        statistic,
        p_value,
        drifted,
        labelled_rows,
        holdout_rows,
    )
