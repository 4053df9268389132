"""monitoring.prometheus: which gauges a drift JSON and a performance report become, and bad input."""

from __future__ import annotations

from typing import Any

import pytest

from monitoring.prometheus import (
    GAUGES,
    LOOP_GAUGES,
    MonitoringInputError,
    push_monitoring_metrics,
)
from tests.support.samples import drift_document
from tests.support.serving_env import free_port


def closed_gateway() -> str:
    return f"127.0.0.1:{free_port()}"  # nothing listens there: the push fails before any gauge is sent


def test_every_gauge_is_declared_once() -> None:
    # the loop's gauges hold one value per model (the push's grouping key): no labels of their own
    assert all((labels or name in LOOP_GAUGES) and doc for name, (labels, doc) in GAUGES.items())
    assert set(GAUGES) >= LOOP_GAUGES
    assert "customer_id" not in {label for labels, _ in GAUGES.values() for label in labels}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"drift_json": {"status": "ok"}},
            "drift_json does not follow the drift JSON contract: model: Field required",
        ),
        (
            {"drift_json": {**drift_document(), "data_drift": {"method": "kl_div", "drifted_share": "lots"}}},
            "data_drift.drifted_share: Input should be a valid number",
        ),
        ({}, "no model name"),
        ({"drift_json": drift_document(), "model_name": "other"}, "model names disagree: ['churn', 'other']"),
        ({"model_name": "churn", "job": " "}, "job must be a non-empty name"),
        ({"model_name": "churn", "timeout_s": 0}, "timeout_s must be > 0"),
    ],
)
def test_bad_input_names_the_field(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"gateway": closed_gateway(), "job": "drift", "timeout_s": 2, **kwargs}
    with pytest.raises(MonitoringInputError) as error:
        push_monitoring_metrics(**args)
    assert message in str(error.value)
