"""Drift scenarios from the synthetic generator (docs/synthetic-data.md is the contract): one
seed with no drift, a price rise (data drift) and a hazard change (concept drift) from
2025-01-01, and a logistic regression from the training code fitted on pre-drift 2024 rows.

Frames follow the monitoring contract: reference = training rows (Jan-Sep 2024) with scores,
holdout = the last quarter of 2024 with scores and labels, current = four monthly snapshots
from two months into the drift (Mar-Jun 2025) with scores and matured labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from typing import Literal

import pandas as pd
from sklearn.pipeline import Pipeline

from churnops.contracts.columns import EVENT_TS, FEATURES
from churnops.data.generate import generate_churn_data
from churnops.training.candidates import fit_candidate, score
from churnops.training.frame import labels, model_input
from monitoring.drift import DriftResult, detect_drift
from monitoring.policy import load_policy

Kind = Literal["clean", "data", "concept"]
CUSTOMERS, MONTHS, SEED = 30_000, 18, 3
DRIFT_FROM = date(2025, 1, 1)
TRAIN_END = pd.Timestamp("2024-10-01", tz="UTC")
HOLDOUT_END = pd.Timestamp("2025-01-01", tz="UTC")
CURRENT_START = pd.Timestamp("2025-03-01", tz="UTC")
TRAINING_SAMPLE = 40_000


@dataclass(frozen=True)
class Scenario:
    reference: pd.DataFrame
    holdout: pd.DataFrame
    current: pd.DataFrame
    window_start: datetime
    window_end: datetime


def _scored(frame: pd.DataFrame, model: Pipeline) -> pd.DataFrame:
    out = frame.copy()
    out["score"] = score(model, model_input(frame, columns=list(FEATURES)))
    return out.reset_index(drop=True)


@cache
def generated(
    kind: Kind, *, customers: int = CUSTOMERS, months: int = MONTHS, seed: int = SEED
) -> pd.DataFrame:
    drift = {"data_drift_from": DRIFT_FROM} if kind == "data" else {}
    if kind == "concept":
        drift = {"concept_drift_from": DRIFT_FROM}
    return generate_churn_data(customers=customers, months=months, seed=seed, **drift).frame


@cache
def model() -> Pipeline:
    """The training code's logistic regression on a seeded sample of the clean Jan-Sep 2024 rows."""
    clean = generated("clean")
    train = clean[clean[EVENT_TS] < TRAIN_END].sample(n=TRAINING_SAMPLE, random_state=0)
    x = model_input(train, columns=list(FEATURES))
    return fit_candidate(family="logistic_regression", columns=list(FEATURES), x=x, y=labels(train)).pipeline


@cache
def scenario(kind: Kind) -> Scenario:
    clean, frame, pipeline = generated("clean"), generated(kind), model()
    # Training rows and the holdout are before every drift date: the same in all three runs.
    reference = _scored(clean[clean[EVENT_TS] < TRAIN_END], pipeline)
    holdout = _scored(clean[(clean[EVENT_TS] >= TRAIN_END) & (clean[EVENT_TS] < HOLDOUT_END)], pipeline)
    current = _scored(frame[frame[EVENT_TS] >= CURRENT_START], pipeline)
    end = current[EVENT_TS].max().to_pydatetime()
    return Scenario(reference, holdout, current, CURRENT_START.to_pydatetime(), end.astimezone(UTC))


@cache
def detected(kind: Kind) -> DriftResult:
    """detect_drift on a scenario with the packaged default policy (cached: Evidently is slow)."""
    s = scenario(kind)
    return detect_drift(
        reference=s.reference,
        current=s.current,
        holdout=s.holdout,
        labelled=s.current,
        policy=load_policy(),
        model_name="churn",
        model_version=1,
        window_start=s.window_start,
        window_end=s.window_end,
    )


HOSTILE_MODEL_NAME = '<script>alert("x")</script>&'
"""A model name a report must escape wherever it prints it."""


def hostile_data_drift_result() -> DriftResult:
    """The data-drift scenario's report under a model name that is markup (escaping checks)."""
    s = scenario("data")
    current = s.current.sample(n=4000, random_state=1)
    return detect_drift(
        reference=s.reference,
        current=current,
        holdout=s.holdout.sample(n=3000, random_state=2),
        labelled=current,
        policy=load_policy().model_copy(update={"reference_rows": 10_000}),
        model_name=HOSTILE_MODEL_NAME,
        model_version=7,
        window_start=s.window_start,
        window_end=s.window_end,
    )
