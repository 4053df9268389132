"""What `churnops loop run` pushes after a day (the Grafana loop row reads it): a real
Pushgateway, its /metrics read back; nothing is pushed without a configured gateway."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from churnops.contracts.loop import LOOP_STEPS, LoopStep, StepStatus, loop_moment
from churnops.jobs import LoopDay, LoopStepResult, _push_loop
from churnops.settings import Settings
from tests.support.prometheus import Pushgateway, binary

DAY = date(2026, 11, 3)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Pushgateway]:
    binary("prometheus-pushgateway")
    daemon = Pushgateway(workdir=tmp_path / "pushgateway")
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


def _day(*, failed: LoopStep | None = None) -> LoopDay:
    detail = {
        LoopStep.DECIDE: {"fired": True, "decision_id": 4},
        LoopStep.PROMOTE: {"decision_id": 4, "version": "3", "production": True, "production_version": "3"},
    }
    steps = []
    for step in LOOP_STEPS:
        if step == failed:
            break
        status = StepStatus.DONE if step in detail else StepStatus.SKIPPED
        steps.append(LoopStepResult(step=step, status=status, detail=detail.get(step, {})))
    return LoopDay(
        model_name="churn",
        day=DAY,
        now=loop_moment(DAY),
        steps=tuple(steps),
        failed_step=failed,
        error=None if failed is None else "boom",
    )


def _pushed(gateway: Pushgateway) -> dict[str, float]:
    text = httpx.get(f"{gateway.url}/metrics", timeout=5).text
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("job") == "churnops-loop" and sample.name.startswith("churnops_")
    }


def test_a_full_day_pushes_its_outcome(gateway: Pushgateway, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", pushgateway_url=gateway.url, _env_file=None)  # type: ignore[call-arg]
    day = _day()
    assert day.complete
    assert _push_loop(settings, day) is day
    assert _pushed(gateway) == {
        "churnops_loop_last_run_timestamp_seconds": loop_moment(DAY).timestamp(),
        "churnops_loop_day_complete": 1.0,
        "churnops_loop_retrain_fired": 1.0,
        "churnops_loop_promoted": 1.0,
        "churnops_production_version": 3.0,
    }


def test_a_stopped_day_pushes_what_it_knows(gateway: Pushgateway, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", pushgateway_url=gateway.url, _env_file=None)  # type: ignore[call-arg]
    _push_loop(settings, _day(failed=LoopStep.RETRAIN))
    # decided (fired), then stopped: no promotion, and the registry is not read for the version
    assert _pushed(gateway) == {
        "churnops_loop_last_run_timestamp_seconds": loop_moment(DAY).timestamp(),
        "churnops_loop_day_complete": 0.0,
        "churnops_loop_retrain_fired": 1.0,
        "churnops_loop_promoted": 0.0,
    }


def test_no_gateway_no_push(gateway: Pushgateway, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", pushgateway_url=None, _env_file=None)  # type: ignore[call-arg]
    _push_loop(settings, _day())
    assert _pushed(gateway) == {}
