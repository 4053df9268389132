"""The pure parts of serving/: request models, scoring, auth, the guard, the log, the watcher, metrics."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from sklearn.linear_model import LogisticRegression
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from churnops.contracts.columns import feature_names
from churnops.contracts.online import OnlineRow
from churnops.contracts.prediction_log import LogRecord, read_prediction_log
from serving.auth import authorized, presented_key
from serving.guard import GuardConfig, RequestGuard
from serving.metrics import ServingMetrics
from serving.model_source import LoadedModel, ModelRef
from serving.model_watch import ModelWatcher
from serving.prediction_log import PredictionLog
from serving.scoring import compile_linear, make_scorer, score_rows, sklearn_scorer
from serving.validation import FeatureRow, PredictFeaturesRequest, PredictRequest
from tests.support.serving_env import fit_pipeline, generate_rows


def _plain(value: Any) -> Any:
    """numpy scalars as Python values (what JSON or Redis hands the service)."""
    return value.item() if hasattr(value, "item") else value


def _row(**changes: Any) -> dict[str, Any]:
    rows = generate_rows(n=1, seed=3, as_of=datetime(2024, 1, 1, tzinfo=UTC))
    row = {str(k): _plain(v) for k, v in rows[feature_names()].iloc[0].items()}
    row.update(changes)
    return row


# -- request models ------------------------------------------------------------------------


def test_feature_row_is_the_schema() -> None:
    assert [f for f in FeatureRow.model_fields if f != "customer_id"] == feature_names()


def test_valid_row_passes_and_round_trips() -> None:
    row = FeatureRow.model_validate_json(json.dumps(_row()))
    assert row.features() == _row()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"contract": "Forever"}, "contract"),
        ({"monthly_charges": -1.0}, "monthly_charges"),
        ({"total_charges": 2_000_000.0}, "total_charges"),
        ({"tenure": -3}, "tenure"),
        ({"partner": 2}, "partner"),
        ({"partner": True}, "partner"),
        ({"tenure": "12"}, "tenure"),
        ({"gender": 1}, "gender"),
        ({"extra": 1}, "extra"),
    ],
)
def test_bad_rows_name_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        FeatureRow.model_validate_json(json.dumps(_row(**change)))
    assert [e["loc"] for e in info.value.errors()] == [(field,)]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(literal: str) -> None:
    body = json.dumps({"rows": [_row(monthly_charges=12345.5)]}).replace("12345.5", literal)
    with pytest.raises(ValidationError) as info:
        PredictFeaturesRequest.model_validate_json(body)
    assert info.value.errors()[0]["loc"] == ("rows", 0, "monthly_charges")


def test_missing_feature_is_named() -> None:
    row = _row()
    del row["tenure"]
    with pytest.raises(ValidationError) as info:
        FeatureRow.model_validate(row)
    assert info.value.errors()[0]["loc"] == ("tenure",)


@pytest.mark.parametrize(
    "body",
    ['{"customer_ids": []}', '{"customer_ids": [""]}', '{"customer_ids": ["a b"]}', '{"customer_ids": [1]}'],
)
def test_bad_id_lists(body: str) -> None:
    with pytest.raises(ValidationError) as info:
        PredictRequest.model_validate_json(body)
    assert info.value.errors()[0]["loc"][0] == "customer_ids"


def test_long_ids_and_invalid_utf8_are_refused() -> None:
    with pytest.raises(ValidationError):
        PredictRequest.model_validate_json(json.dumps({"customer_ids": ["X" * 10_240]}))
    with pytest.raises(ValidationError):
        PredictRequest.model_validate_json(b'{"customer_ids": ["\xff"]}')


# -- scoring -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model() -> Any:
    return fit_pipeline(generate_rows(n=400, seed=5, as_of=datetime(2024, 1, 1, tzinfo=UTC)))


def test_linear_tables_match_predict_proba(model: Any) -> None:
    rows = generate_rows(n=200, seed=11, as_of=datetime(2024, 1, 1, tzinfo=UTC))[feature_names()]
    records = [{str(k): _plain(v) for k, v in r.items()} for r in rows.to_dict("records")]
    tables = compile_linear(model)
    assert tables is not None
    expected = model.predict_proba(rows)[:, 1]
    for got, want in zip(tables(records), expected, strict=True):
        assert math.isclose(got, float(want), abs_tol=1e-12)
    scorer, kind = make_scorer(model)
    assert kind == "linear_tables" and scorer == tables


def test_the_training_pipeline_compiles_and_matches() -> None:
    from churnops.contracts.columns import FEATURES
    from churnops.training.candidates import build_pipeline

    rows = generate_rows(n=300, seed=8, as_of=datetime(2024, 1, 1, tzinfo=UTC))
    pipeline = build_pipeline(family="logistic_regression", columns=FEATURES, seed=0)
    pipeline.fit(rows[feature_names()], rows["churned"])
    scorer, kind = make_scorer(pipeline)
    assert kind == "linear_tables"
    probe = rows[feature_names()].head(50)
    records = [{str(k): _plain(v) for k, v in r.items()} for r in probe.to_dict("records")]
    for got, want in zip(scorer(records), pipeline.predict_proba(probe)[:, 1], strict=True):
        assert math.isclose(got, float(want), abs_tol=1e-12)


def test_other_models_use_sklearn(model: Any) -> None:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline

    forest = Pipeline(
        [("preprocess", model.named_steps["preprocess"]), ("model", RandomForestClassifier(n_estimators=3))]
    )
    rows = generate_rows(n=50, seed=1, as_of=datetime(2024, 1, 1, tzinfo=UTC))
    forest.fit(rows[feature_names()], rows["churned"])
    assert compile_linear(forest) is None
    scorer, kind = make_scorer(forest)
    assert kind == "sklearn"
    assert len(scorer([_row(), _row()])) == 2


class _SwappedClasses(LogisticRegression):
    """A model of the compilable shape whose probabilities are not its coefficients' (swapped)."""

    def predict_proba(self, X: Any) -> Any:
        return super().predict_proba(X)[:, ::-1]


class _FailingProba(LogisticRegression):
    def predict_proba(self, X: Any) -> Any:
        raise RuntimeError("predict_proba broke on the probe rows")


@pytest.mark.parametrize(
    ("estimator", "said"),
    [(_SwappedClasses, "differs from predict_proba"), (_FailingProba, "could not be checked")],
)
def test_a_compiled_scorer_that_fails_its_check_falls_back_with_a_warning(
    estimator: type[LogisticRegression], said: str, caplog: pytest.LogCaptureFixture
) -> None:
    rows = generate_rows(n=300, seed=8, as_of=datetime(2024, 1, 1, tzinfo=UTC))
    pipeline = fit_pipeline(rows).set_params(model=estimator())
    pipeline.fit(rows[feature_names()], rows["churned"])
    assert compile_linear(pipeline) is not None  # the shape compiles: only the check refuses it
    with caplog.at_level("WARNING", logger="serving.scoring"):
        _, kind = make_scorer(pipeline)
    assert kind == "sklearn"
    (record,) = [r for r in caplog.records if r.name == "serving.scoring"]
    assert said in record.getMessage() and record.levelname == "WARNING"
    if estimator is _FailingProba:  # the exception itself is in the log, traceback included
        assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


def test_score_rows_scores_only_usable_rows(model: Any) -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    rows = [
        OnlineRow("A", _row(), "ok", {"account": now}),
        OnlineRow("B", dict.fromkeys(feature_names()), "unknown_customer", {}),
        OnlineRow("C", _row(), "stale_features", {"account": now - timedelta(days=90)}, ("account",)),
        OnlineRow("D", _row(total_charges=None), "ok", {"account": now}),
    ]
    scored = score_rows(scorer=sklearn_scorer(model), rows=rows)
    assert [s.status for s in scored] == ["ok", "unknown_customer", "stale_features", "missing_features"]
    assert scored[0].score is not None and all(s.score is None for s in scored[1:])
    assert scored[1].features is None and scored[2].features is not None


# -- auth and the guard --------------------------------------------------------------------


def test_presented_key_and_compare() -> None:
    assert presented_key([(b"authorization", b"Bearer abc")]) == b"abc"
    assert presented_key([(b"x-api-key", b" abc ")]) == b"abc"
    assert presented_key([(b"authorization", b"Basic abc")]) is None
    assert authorized(expected=None, presented=None)
    assert not authorized(expected=b"abc", presented=None)
    assert not authorized(expected=b"abc", presented=b"abd")
    assert authorized(expected=b"abc", presented=b"abc")


def _guarded_app(
    errors: list[str], observed: list[tuple[str, int]], webhook_secret: bytes | None = None
) -> Any:
    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"size": len(await request.body())})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({})

    app = Starlette(routes=[Route("/predict", echo, methods=["POST"]), Route("/livez", health)])
    config = GuardConfig(
        api_key=b"k",
        max_body_bytes=100,
        observe=lambda e, s, t: observed.append((e, s)),
        count_error=errors.append,
        webhook_path="/predict",
        webhook_secret=webhook_secret,
    )
    return RequestGuard(app, config=lambda: config, paths=("/predict",))


async def _chunks(parts: list[bytes]) -> Any:
    for part in parts:
        yield part


def test_guard_refuses_before_the_app() -> None:
    errors: list[str] = []
    observed: list[tuple[str, int]] = []

    async def run() -> dict[str, int]:
        transport = httpx.ASGITransport(app=_guarded_app(errors, observed))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            key = {"X-API-Key": "k"}
            return {
                "no key": (await client.post("/predict", json={})).status_code,
                "pickle": (
                    await client.post(
                        "/predict",
                        content=b"x",
                        headers={**key, "Content-Type": "application/vnd.bentoml+pickle"},
                    )
                ).status_code,
                "big": (await client.post("/predict", json={"a": "x" * 200}, headers=key)).status_code,
                "chunked big": (
                    await client.post("/predict", content=_chunks([b"x" * 60, b"y" * 60]), headers=key)
                ).status_code,
                "ok": (await client.post("/predict", json={"a": 1}, headers=key)).status_code,
                "health": (await client.get("/livez")).status_code,
            }

    codes = asyncio.run(run())
    assert codes == {"no key": 401, "pickle": 415, "big": 413, "chunked big": 413, "ok": 200, "health": 200}
    assert errors == ["unauthorized", "unsupported_media_type", "body_too_large", "body_too_large"]
    assert ("/predict", 200) in observed and all(e == "/predict" for e, _ in observed)


def test_guard_accepts_a_signed_mlflow_webhook_instead_of_the_key() -> None:
    import time

    from mlflow.webhooks.delivery import _generate_hmac_signature

    payload = json.dumps(
        {"entity": "model_version_alias", "action": "created", "data": {"alias": "production"}}
    )

    def headers(secret: str, stamp: int) -> dict[str, str]:
        signature = _generate_hmac_signature(secret, "d-1", str(stamp), payload)
        return {
            "X-MLflow-Signature": signature,
            "X-MLflow-Delivery-Id": "d-1",
            "X-MLflow-Timestamp": str(stamp),
        }

    async def run() -> list[int]:
        app = _guarded_app([], [], webhook_secret=b"s3cret")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            now = int(time.time())
            cases = [headers("s3cret", now), headers("wrong", now), headers("s3cret", now - 3600)]
            return [(await client.post("/predict", content=payload, headers=h)).status_code for h in cases]

    assert asyncio.run(run()) == [200, 401, 401]


# -- prediction log ------------------------------------------------------------------------


def _record(i: int, ts: datetime) -> LogRecord:
    return LogRecord(
        request_id=f"r{i}",
        ts=ts,
        endpoint="predict",
        customer_id=f"C{i}",
        model_name="churn",
        model_version="1",
        feature_service="churn_v1",
        score=0.25 if i % 2 == 0 else None,
        status="ok" if i % 2 == 0 else "unknown_customer",
        features=_row() if i % 2 == 0 else None,
    )


def test_prediction_log_appends_partitions_by_date(tmp_path: Path) -> None:
    written: list[int] = []
    log = PredictionLog(directory=tmp_path / "predictions", on_written=written.append)
    day1 = datetime(2024, 3, 1, 23, 59, tzinfo=UTC)
    log.append([_record(0, day1), _record(1, day1 + timedelta(minutes=2))])
    assert log.flush() == 2
    log.append([_record(2, day1)])
    log.close()
    frame = read_prediction_log(tmp_path / "predictions").to_pandas()
    assert sorted(frame["request_id"]) == ["r0", "r1", "r2"]
    assert sorted({ts.strftime("%Y-%m-%d") for ts in frame["ts"]}) == ["2024-03-01", "2024-03-02"]
    assert written == [1, 1, 1]  # per date partition written
    assert len(list((tmp_path / "predictions").glob("date=2024-03-01/part-*.parquet"))) == 2
    first = frame[frame["request_id"] == "r0"].iloc[0]
    assert first["contract"] == _row()["contract"] and first["score"] == 0.25


def test_prediction_log_failure_is_spooled_then_counted_lost_never_raised(tmp_path: Path) -> None:
    blocked = tmp_path / "predictions"
    blocked.write_text("a file where the directory should be")
    failures: list[int] = []
    spooled: list[int] = []
    log = PredictionLog(directory=blocked, on_failure=failures.append, on_spooled=spooled.append)
    log.append([_record(0, datetime.now(UTC))])
    assert log.flush() == 0
    assert (spooled, failures, log.spool.pending_rows()) == ([1], [], 1)  # kept, not lost
    spool_blocked = tmp_path / "spool"
    spool_blocked.write_text("the spool cannot be written either")
    lost = PredictionLog(directory=blocked, spool_dir=spool_blocked, on_failure=failures.append)
    lost.append([_record(1, datetime.now(UTC)), _record(2, datetime.now(UTC))])
    assert lost.flush() == 0
    assert failures == [2]  # only what neither the sink nor the spool took


def _failing_sink(day: str, columns: Any, /, *, batch_id: str | None = None) -> int:
    raise ConnectionError("database down")


def _log_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "serving.spool"]


def test_the_spool_and_sink_errors_are_logged_with_their_exception(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The sink down: rows spooled (counted), and the replay it refuses at the next flush is
    logged with the sink's error; the spool also refusing: rows counted lost, its error logged."""
    spooled: list[int] = []
    log = PredictionLog(
        directory=tmp_path / "predictions", sink=_failing_sink, on_spooled=spooled.append, warn_interval_s=0
    )
    with caplog.at_level("WARNING", logger="serving.spool"):
        log.append([_record(0, datetime.now(UTC))])
        assert log.flush() == 0
        log.append([_record(1, datetime.now(UTC))])
        assert log.flush() == 0  # the replay is refused: it stops there, and says so
    assert spooled == [1, 1] and log.spool.pending_rows() == 2
    messages = [r.getMessage() for r in _log_records(caplog)]
    assert "rows spooled to" in messages[0]
    assert "refused the spooled rows" in messages[1] and "1 spooled files wait" in messages[1]
    assert all(isinstance(r.exc_info[1], ConnectionError) for r in _log_records(caplog) if r.exc_info)
    assert [r.exc_info is not None for r in _log_records(caplog)] == [True, True, True]

    caplog.clear()
    blocked = tmp_path / "spool-blocked"
    blocked.write_text("a file where the spool directory should be")
    lost: list[int] = []
    down = PredictionLog(
        directory=tmp_path / "p2", sink=_failing_sink, spool_dir=blocked, on_failure=lost.append
    )
    with caplog.at_level("WARNING", logger="serving.spool"):
        down.append([_record(2, datetime.now(UTC))])
        assert down.flush() == 0
    assert lost == [1]
    (record,) = _log_records(caplog)
    assert "both failed" in record.getMessage() and "database down" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], OSError)  # the spool's own


def test_a_bug_in_append_is_counted_and_logged_never_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    failures: list[int] = []
    log = PredictionLog(directory=tmp_path, on_failure=failures.append, warn_interval_s=0)
    with caplog.at_level("WARNING", logger="serving.spool"):
        log.append([object()])  # type: ignore[list-item]  # not a record: a bug, not a full buffer
        log.append_request(  # no request time: a bug in the caller
            request_id="r",
            ts=None,  # type: ignore[arg-type]
            endpoint="predict",
            model_name="churn",
            model_version="1",
            feature_service="churn_v1",
            rows=[_record(0, datetime.now(UTC)), _record(1, datetime.now(UTC))],
            feature_times=[None, None],
        )
    assert failures == [1, 2] and log.flush() == 0  # counted lost, nothing half-written
    errors = [r.exc_info[1] for r in _log_records(caplog) if r.exc_info]
    assert [type(e) for e in errors] == [AttributeError, AttributeError]
    assert all("append failed" in r.getMessage() for r in _log_records(caplog))


def test_prediction_log_bounded_buffer(tmp_path: Path) -> None:
    failures: list[int] = []
    log = PredictionLog(directory=tmp_path, max_buffer_rows=2, on_failure=failures.append)
    log.append([_record(i, datetime.now(UTC)) for i in range(3)])
    assert failures == [1] and log.flush() == 2


# -- model watcher -------------------------------------------------------------------------


class _Source:
    """An in-memory registry: the Production ref can be moved and a version can be broken."""

    def __init__(self) -> None:
        self.ref: ModelRef | None = None
        self.broken: set[str] = set()
        self.loads = 0

    def production(self) -> ModelRef | None:
        return self.ref

    def load(self, ref: ModelRef) -> LoadedModel:
        self.loads += 1
        if ref.version in self.broken:
            from churnops.contracts.artifacts import ArtifactIntegrityError

            raise ArtifactIntegrityError("sha mismatch")
        return LoadedModel(ref=ref, estimator=ref.version)


def _ref(version: str) -> ModelRef:
    return ModelRef(name="churn", version=version, sha256="x", feature_service="churn_v1")


def test_watcher_swaps_when_production_moves_and_keeps_serving_on_failure() -> None:
    source = _Source()
    failures: list[str] = []
    watcher: ModelWatcher[LoadedModel] = ModelWatcher(
        source=source,
        build=source.load,
        interval_s=60,
        on_failure=lambda ref, e: failures.append(ref.version if ref else "?"),
    )
    assert not watcher.refresh() and watcher.current is None
    source.ref = _ref("1")
    assert watcher.refresh() and watcher.current is not None and watcher.current.estimator == "1"
    assert not watcher.refresh() and source.loads == 1
    source.ref, source.broken = _ref("2"), {"2"}
    assert not watcher.refresh() and watcher.current.estimator == "1"
    assert not watcher.refresh() and source.loads == 2  # a failed version waits for its backoff
    assert (
        watcher.problem is not None
        and "version 2" in watcher.problem
        and "serving version 1" in watcher.problem
    )
    source.ref = _ref("3")
    assert watcher.refresh() and watcher.current.estimator == "3"
    assert failures == ["2"] and watcher.problem is None


def test_a_failed_version_is_retried_with_backoff_and_at_once_on_request() -> None:
    source = _Source()
    now = [0.0]
    watcher: ModelWatcher[LoadedModel] = ModelWatcher(
        source=source,
        build=source.load,
        interval_s=60,
        retry_base_s=1.0,
        retry_max_s=8.0,
        clock=lambda: now[0],
    )
    source.ref = _ref("1")
    assert watcher.refresh()
    source.ref, source.broken = _ref("2"), {"2"}
    attempts = []
    for t in range(40):  # polls once a second for 40 s while version 2 stays broken
        now[0] = float(t)
        before = source.loads
        watcher.refresh()
        if source.loads > before:
            attempts.append(t)
    # Oracle: retries after 1, 2, 4, 8, 8, ... seconds.
    assert attempts[:6] == [0, 1, 3, 7, 15, 23], attempts
    assert watcher.registry_ref == _ref("2") and watcher.current_ref == _ref("1")
    source.broken = set()  # repaired: the webhook retries now, without waiting for the backoff
    assert watcher.refresh(retry_now=True) and watcher.current_ref == _ref("2") and watcher.problem is None


def test_a_restart_falls_back_to_the_last_verified_version_and_says_so() -> None:
    source = _Source()
    source.ref, source.broken = _ref("2"), {"2"}
    watcher: ModelWatcher[LoadedModel] = ModelWatcher(
        source=source, build=source.load, interval_s=60, fallback=lambda: _ref("1")
    )
    assert not watcher.refresh()
    assert watcher.current_ref == _ref("1") and watcher.current is not None
    assert watcher.problem is not None and "last verified version 1" in watcher.problem
    assert not watcher.refresh(retry_now=True)  # still broken: still says it is the fallback
    assert watcher.problem is not None and "last verified version 1" in watcher.problem
    source.broken = {"1", "2"}
    nothing: ModelWatcher[LoadedModel] = ModelWatcher(
        source=source, build=source.load, interval_s=60, fallback=lambda: _ref("1")
    )
    assert not nothing.refresh() and nothing.current is None
    assert nothing.problem is not None and "failed too" in nothing.problem


def test_watcher_thread_follows_a_nudge() -> None:
    source = _Source()
    source.ref = _ref("1")
    swapped = threading.Event()
    watcher: ModelWatcher[LoadedModel] = ModelWatcher(
        source=source, build=source.load, interval_s=3600, on_swap=lambda ref, d: swapped.set()
    )
    watcher.start()
    try:
        watcher.nudge()
        assert swapped.wait(5)
        assert watcher.current_ref == _ref("1")
    finally:
        watcher.stop()


# -- metrics -------------------------------------------------------------------------------


def test_metrics_register_on_the_given_registry_only() -> None:
    registry = CollectorRegistry()
    metrics = ServingMetrics(registry=registry)
    metrics.set_model(name="churn", version="1", feature_service="churn_v1", scorer="sklearn")
    metrics.set_model(name="churn", version="2", feature_service="churn_v1", scorer="sklearn")
    metrics.predictions.labels("2", "ok").inc(3)
    labels = {"model_name": "churn", "feature_service": "churn_v1", "scorer": "sklearn"}
    assert registry.get_sample_value("churnops_model_info", {**labels, "model_version": "1"}) == 0
    assert registry.get_sample_value("churnops_model_info", {**labels, "model_version": "2"}) == 1
    assert (
        registry.get_sample_value("churnops_predictions_total", {"model_version": "2", "status": "ok"}) == 3
    )
    for metric in registry.collect():
        for sample in metric.samples:
            assert "customer_id" not in sample.labels
