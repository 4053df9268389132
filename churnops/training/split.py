"""Train / validation / test splits: out-of-time when the labels span time, else stratified.

Time split: the distinct label times are walked from the newest backwards; the newest times
holding at least ``test_fraction`` of the rows become the out-of-time test, the times before
them holding at least ``validation_fraction`` the validation, the rest the training split. A
time never straddles two splits, so the test is strictly later than validation, which is
strictly later than training.

A single snapshot (e.g. the Telco file, all labels at one time) has no time axis to split on,
and neither do two snapshots (three splits are needed): then the rows are split at random,
stratified on the label and seeded, and :attr:`Split.strategy` says so with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from churnops.contracts.columns import EVENT_TS, LABEL
from churnops.training.errors import TrainingDataError
from churnops.training.frame import check_class_balance, labels

Strategy = Literal["time", "stratified_random"]
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class SplitPolicy:
    """Sizes and minimums of the split (fractions of all rows)."""

    validation_fraction: float = 0.2
    test_fraction: float = 0.2
    seed: int = 0
    min_rows: int = 200  # the whole training set
    min_per_class: int = 20  # positives and negatives in the whole training set
    min_split_per_class: int = 5  # positives and negatives in each split

    def __post_init__(self) -> None:
        for name in ("validation_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 < value < 0.5:
                raise ValueError(f"{name} must be in (0, 0.5), got {value}")


@dataclass(frozen=True)
class Window:
    """The label times one split covers."""

    start: pd.Timestamp
    end: pd.Timestamp
    rows: int
    positives: int


@dataclass(frozen=True)
class Split:
    strategy: Strategy
    reason: str
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame

    def part(self, name: str) -> pd.DataFrame:
        return {"train": self.train, "validation": self.validation, "test": self.test}[name]

    def windows(self) -> dict[str, Window]:
        out: dict[str, Window] = {}
        for name in SPLITS:
            frame = self.part(name)
            out[name] = Window(
                start=frame[EVENT_TS].min(),
                end=frame[EVENT_TS].max(),
                rows=len(frame),
                positives=int(frame[LABEL].sum()),
            )
        return out


def _time_cut(counts: pd.Series, *, wanted: float) -> int:
    """How many of the newest times (``counts`` sorted newest first) hold >= ``wanted`` rows."""
    cumulative = counts.cumsum().to_numpy()
    return int(np.searchsorted(cumulative, wanted, side="left")) + 1


def _time_split(frame: pd.DataFrame, *, policy: SplitPolicy) -> tuple[Split | None, str]:
    counts = frame[EVENT_TS].value_counts().sort_index(ascending=False)
    if len(counts) < 3:
        return None, (
            f"the labels have {len(counts)} distinct time(s); an out-of-time split needs at least 3, "
            "so the rows are split at random, stratified on the label"
        )
    n = len(frame)
    n_test = _time_cut(counts, wanted=policy.test_fraction * n)
    rest = counts.iloc[n_test:]
    n_val = _time_cut(rest, wanted=policy.validation_fraction * n)
    if n_test + n_val >= len(counts):
        return None, (
            f"the {len(counts)} label times are too uneven for an out-of-time split with "
            f"{policy.test_fraction:.0%} test and {policy.validation_fraction:.0%} validation rows "
            "and a non-empty training window, so the rows are split at random, stratified on the label"
        )
    test_times = set(counts.index[:n_test])
    val_times = set(counts.index[n_test : n_test + n_val])
    in_test = frame[EVENT_TS].isin(test_times)
    in_val = frame[EVENT_TS].isin(val_times)
    split = Split(
        strategy="time",
        reason=(
            f"{len(counts)} distinct label times: the newest {n_test} for test, "
            f"the {n_val} before them for validation"
        ),
        train=frame[~in_test & ~in_val].reset_index(drop=True),
        validation=frame[in_val].reset_index(drop=True),
        test=frame[in_test].reset_index(drop=True),
    )
    return split, ""


def _random_split(frame: pd.DataFrame, *, policy: SplitPolicy, reason: str) -> Split:
    y = labels(frame)
    rest, test = train_test_split(frame, test_size=policy.test_fraction, stratify=y, random_state=policy.seed)
    val_share = policy.validation_fraction / (1.0 - policy.test_fraction)
    train, validation = train_test_split(
        rest, test_size=val_share, stratify=labels(rest), random_state=policy.seed
    )
    return Split(
        strategy="stratified_random",
        reason=reason,
        train=train.reset_index(drop=True),
        validation=validation.reset_index(drop=True),
        test=test.reset_index(drop=True),
    )


def split_training_set(*, frame: pd.DataFrame, policy: SplitPolicy | None = None) -> Split:
    """Split a point-in-time training frame (one row per label) into train / validation / test.

    Raises :class:`TrainingDataError` for a frame with too few rows, no positives or no
    negatives, or a split left without one of the classes.
    """
    policy = policy or SplitPolicy()
    if EVENT_TS not in frame.columns:
        raise TrainingDataError(f"the training frame has no {EVENT_TS!r} column")
    y = labels(frame)
    check_class_balance(
        y, what="the training set", min_rows=policy.min_rows, min_per_class=policy.min_per_class
    )
    ordered = frame.sort_values(EVENT_TS, kind="stable").reset_index(drop=True)
    split, reason = _time_split(ordered, policy=policy)
    if split is None:
        split = _random_split(frame.reset_index(drop=True), policy=policy, reason=reason)
    for name in SPLITS:
        part = split.part(name)
        what = f"the {name} split"
        if split.strategy == "time":
            what += f" (labels {part[EVENT_TS].min():%Y-%m-%d}..{part[EVENT_TS].max():%Y-%m-%d})"
        check_class_balance(labels(part), what=what, min_rows=1, min_per_class=policy.min_split_per_class)
    return split
