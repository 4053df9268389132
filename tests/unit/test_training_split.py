"""Splits: out-of-time when labels span >= 3 times, seeded stratified otherwise; bad sets refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnops.contracts.columns import EVENT_TS, JOIN_KEY, LABEL
from churnops.training.errors import TrainingDataError
from churnops.training.split import SplitPolicy, split_training_set


def frame(times: list[str], per_time: int, rate: float = 0.3, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for t in times:
        for i in range(per_time):
            rows.append(
                {JOIN_KEY: f"c{i}", EVENT_TS: pd.Timestamp(t, tz="UTC"), LABEL: int(rng.random() < rate)}
            )
    return pd.DataFrame(rows).sample(frac=1.0, random_state=seed).reset_index(drop=True)


MONTHS = [f"2024-{m:02d}-01" for m in range(1, 11)]


def test_monthly_labels_are_split_out_of_time_without_straddling() -> None:
    data = frame(MONTHS, per_time=100)
    split = split_training_set(frame=data)
    assert split.strategy == "time"
    assert split.train[EVENT_TS].max() < split.validation[EVENT_TS].min()
    assert split.validation[EVENT_TS].max() < split.test[EVENT_TS].min()
    # 10 equal months, 20% each for test and validation: exactly 2 months each.
    assert split.test[EVENT_TS].nunique() == 2 and split.validation[EVENT_TS].nunique() == 2
    assert len(split.train) + len(split.validation) + len(split.test) == len(data)
    windows = split.windows()
    assert windows["test"].end == pd.Timestamp("2024-10-01", tz="UTC")
    assert windows["train"].start == pd.Timestamp("2024-01-01", tz="UTC")
    assert windows["test"].positives == int(split.test[LABEL].sum())


def test_the_test_split_takes_enough_of_the_newest_times() -> None:
    # Uneven months (9 x 105 + 55 rows): 20% is 200 rows, so the newest 55 + 105 are not enough
    # and test takes three months (265 rows), the smallest run of newest months that is.
    data = pd.concat([frame(MONTHS[:-1], per_time=105), frame(MONTHS[-1:], per_time=55, seed=1)])
    split = split_training_set(frame=data)
    assert len(split.test) == 265
    assert split.test[EVENT_TS].nunique() == 3
    assert split.validation[EVENT_TS].nunique() == 2  # 210 >= 200


@pytest.mark.parametrize("times", [MONTHS[:1], MONTHS[:2]])
def test_fewer_than_three_label_times_fall_back_to_a_seeded_stratified_split(times: list[str]) -> None:
    data = frame(times, per_time=1000 // len(times))
    split = split_training_set(frame=data, policy=SplitPolicy(seed=7))
    assert split.strategy == "stratified_random"
    assert "distinct time" in split.reason
    rate = data[LABEL].mean()
    for part in (split.train, split.validation, split.test):
        assert part[LABEL].mean() == pytest.approx(rate, abs=0.01)
    assert len(split.test) == 200 and len(split.validation) == 200
    again = split_training_set(frame=data, policy=SplitPolicy(seed=7))
    assert again.test[JOIN_KEY].tolist() == split.test[JOIN_KEY].tolist()
    other = split_training_set(frame=data, policy=SplitPolicy(seed=8))
    assert other.test[JOIN_KEY].tolist() != split.test[JOIN_KEY].tolist()


def test_times_too_uneven_for_three_splits_fall_back_to_random() -> None:
    # The newest time holds 90% of the rows: nothing would be left to train on.
    data = pd.concat([frame(MONTHS[:2], per_time=50), frame(MONTHS[2:3], per_time=900, seed=1)])
    split = split_training_set(frame=data)
    assert split.strategy == "stratified_random"
    assert "too uneven" in split.reason


def test_a_set_without_positives_is_refused() -> None:
    data = frame(MONTHS, per_time=100, rate=0.0)
    with pytest.raises(TrainingDataError, match=r"no positives \(churned=1\) among 1000 rows"):
        split_training_set(frame=data)


def test_a_set_without_negatives_is_refused() -> None:
    data = frame(MONTHS, per_time=100, rate=1.0)
    with pytest.raises(TrainingDataError, match="no negatives"):
        split_training_set(frame=data)


def test_too_few_rows_are_refused() -> None:
    data = frame(MONTHS[:1], per_time=50)
    with pytest.raises(TrainingDataError, match="too few rows: 50 < 200"):
        split_training_set(frame=data)


def test_too_few_positives_are_refused() -> None:
    data = frame(MONTHS, per_time=100, rate=0.0)
    data.loc[:4, LABEL] = 1
    with pytest.raises(TrainingDataError, match="too few positives: 5 < 20"):
        split_training_set(frame=data)


def test_an_out_of_time_split_without_positives_is_named() -> None:
    data = frame(MONTHS, per_time=100)
    data.loc[data[EVENT_TS] >= pd.Timestamp("2024-09-01", tz="UTC"), LABEL] = 0
    with pytest.raises(
        TrainingDataError, match=r"the test split \(labels 2024-09-01..2024-10-01\) has no positives"
    ):
        split_training_set(frame=data)


def test_null_or_non_binary_labels_are_refused() -> None:
    data = frame(MONTHS, per_time=100).astype({LABEL: "float64"})
    data.loc[3, LABEL] = np.nan
    with pytest.raises(TrainingDataError, match="1 row"):
        split_training_set(frame=data)
    data.loc[3, LABEL] = 2
    with pytest.raises(TrainingDataError, match=r"must be 0 or 1; found \[2\]"):
        split_training_set(frame=data)


def test_split_fractions_are_validated() -> None:
    with pytest.raises(ValueError, match="test_fraction"):
        SplitPolicy(test_fraction=0.6)
