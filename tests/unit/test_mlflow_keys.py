"""The MLflow names training, retraining and registry_ext write are the ones their readers read."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from churnops.commands.registry import PROVENANCE
from churnops.contracts.mlflow_keys import (
    TEST_ROC_AUC,
    THRESHOLD_METRIC,
    MissingKeyError,
    required,
)
from churnops.contracts.monitoring_runs import TAG_DRIFT_WINDOW_END, TAG_DRIFT_WINDOW_START
from churnops.contracts.stages import Trigger
from churnops.retraining.run import TrainingWindow, provenance_tags
from churnops.training.metrics import SplitMetrics
from churnops.training.pipeline import registered_metrics


def test_a_missing_key_is_refused_by_name() -> None:
    assert required({"a": 1.0}, "a", where="run r") == 1.0
    with pytest.raises(MissingKeyError, match=r"run r has no 'threshold'"):
        required({}, "threshold", where="run r")


def test_registry_show_displays_every_provenance_tag_retraining_writes() -> None:
    window = TrainingWindow(start=datetime(2025, 1, 1, tzinfo=UTC), end=datetime(2025, 2, 1, tzinfo=UTC))
    tags = provenance_tags(trigger=Trigger.DRIFT, decision_id=7, drift_report="runs:/r/drift", window=window)
    assert [key for key, _ in PROVENANCE] == list(tags)
    # the training window on a version never reuses a drift report's window names
    assert not {TAG_DRIFT_WINDOW_START, TAG_DRIFT_WINDOW_END} & set(tags)


def test_the_registered_metrics_hold_what_the_readers_read() -> None:
    split = SplitMetrics(rows=10, overall={"roc_auc": 0.8})
    metrics = registered_metrics(validation=split, test=split, threshold=0.4)
    assert metrics[TEST_ROC_AUC] == 0.8
    assert metrics[THRESHOLD_METRIC] == 0.4
