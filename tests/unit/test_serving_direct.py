"""The fast request path: answers rendered without pydantic models, log rows appended without
records, and the ASGI scoring routes, each against an independent oracle (pydantic's own
serializer, the record fields, BentoML's own endpoint)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnops.contracts.columns import feature_names
from churnops.contracts.prediction_log import COLUMNS, LogRecord
from serving.direct import DirectRoute, DirectRoutes, Reply
from serving.prediction_log import LogBatch
from serving.runtime import Answer
from serving.scoring import Scored
from serving.validation import PredictFeaturesRequest, PredictRequest, PredictResponse

# BentoML 1.4 here: importing it builds a pathspec pattern pathspec deprecated, its IO descriptors
# call a pydantic schema hook deprecated in 2.11, and its endpoint reads ``model_fields`` on an
# instance per request. Only the oracle app below imports BentoML.
pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:GitWildMatchPattern .'gitwildmatch'. is deprecated:DeprecationWarning"
    ),
    pytest.mark.filterwarnings("ignore:The `__get_pydantic_core_schema__` method:DeprecationWarning"),
    pytest.mark.filterwarnings(
        "ignore:Accessing the 'model_fields' attribute on the instance:DeprecationWarning"
    ),
]
STATUSES = ("ok", "unknown_customer", "stale_features", "missing_features")
scores = st.one_of(
    st.none(),
    st.floats(min_value=0.0, max_value=1.0),
    st.floats(min_value=1e-300, max_value=1e-4),  # exponent notation
)
scored_rows = st.builds(
    Scored,
    customer_id=st.one_of(st.none(), st.text(max_size=20)),
    features=st.none(),
    score=scores,
    status=st.sampled_from(STATUSES),
)


@settings(max_examples=200, deadline=None)
@given(
    name=st.text(max_size=10),
    version=st.text(max_size=5),
    request_id=st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
    rows=st.lists(scored_rows, max_size=8),
)
def test_answer_json_is_what_pydantic_writes(
    name: str, version: str, request_id: str, rows: list[Scored]
) -> None:
    answer = Answer(model_name=name, model_version=version, request_id=request_id, predictions=tuple(rows))
    assert answer.json() == answer.response().model_dump_json().encode()
    assert PredictResponse.model_validate_json(answer.json()) == answer.response()


# -- prediction log: one request's rows, column by column ----------------------------------------


def _features(seed: int) -> dict[str, Any]:
    return {name: f"{name}-{seed}" if i % 2 else seed + i for i, name in enumerate(feature_names())}


def _expected(records: list[LogRecord]) -> dict[str, dict[str, list[Any]]]:
    """The oracle: every record's fields, its features spread out, grouped by UTC day."""
    days: dict[str, dict[str, list[Any]]] = {}
    for record in records:
        fields = asdict(record)
        features = fields.pop("features") or {}
        row = {**fields, **{name: features.get(name) for name in feature_names()}}
        cols = days.setdefault(record.ts.strftime("%Y-%m-%d"), {name: [] for name in COLUMNS})
        for name in COLUMNS:
            cols[name].append(row[name])
    return days


def test_request_rows_land_in_the_same_columns_as_records() -> None:
    late = datetime(2024, 3, 1, 23, 59, 59, tzinfo=UTC)
    snapshot = datetime(2024, 3, 1, tzinfo=UTC)
    requests = [
        ("r1", late, [Scored("A", _features(1), 0.25, "ok"), Scored("B", None, None, "unknown_customer")]),
        ("r2", late + timedelta(seconds=2), [Scored(None, _features(2), 0.5, "ok")]),  # next day
        ("r3", late, [Scored("C", {**_features(3), "tenure": None}, None, "missing_features")]),
    ]
    feature_times = {"A": snapshot, "B": None, None: None, "C": snapshot}
    batch = LogBatch()
    records = []
    for request_id, ts, rows in requests:
        batch.add_request(
            request_id=request_id,
            ts=ts,
            endpoint="predict",
            model_name="churn",
            model_version="3",
            feature_service="churn_v1",
            rows=rows,
            feature_times=[feature_times[r.customer_id] for r in rows],
        )
        records += [
            LogRecord(
                request_id,
                ts,
                "predict",
                r.customer_id,
                "churn",
                "3",
                "churn_v1",
                r.score,
                r.status,
                r.features,
                feature_ts=feature_times[r.customer_id],
            )
            for r in rows
        ]
    assert batch.days == _expected(records)
    assert batch.rows == 4
    by_records = LogBatch()
    by_records.add(records)
    assert by_records.days == batch.days and by_records.rows == 4


# -- the ASGI scoring routes against BentoML's own endpoint -----------------------------------


def _http(app: Any, method: str, path: str, body: bytes) -> tuple[int, bytes, dict[str, str]]:
    async def run() -> tuple[int, bytes, dict[str, str]]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            response = await client.request(
                method, path, content=body, headers={"Content-Type": "application/json"}
            )
            return response.status_code, response.content, dict(response.headers)

    return asyncio.run(run())


@pytest.fixture(scope="module")
def bentoml_app() -> Iterator[tuple[Any, Any]]:
    """A BentoML service declaring the same request models, and its ASGI app started in process."""
    import bentoml

    @bentoml.service(name="direct_oracle", metrics={"enabled": False})
    class Oracle:
        @bentoml.api(route="/predict", input_spec=PredictRequest, output_spec=PredictResponse)  # type: ignore[untyped-decorator]
        async def predict(self, customer_ids: list[str]) -> dict[str, Any]:
            raise RuntimeError("boom")  # only reached by valid bodies

        @bentoml.api(
            route="/predict_features", input_spec=PredictFeaturesRequest, output_spec=PredictResponse
        )  # type: ignore[untyped-decorator]
        async def predict_features(self, rows: list[Any]) -> dict[str, Any]:
            raise RuntimeError("boom")

    service: Any = Oracle
    app = service.to_asgi(is_main=True)
    loop = asyncio.new_event_loop()
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    started = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message["type"].startswith("lifespan.startup"):
            started.set()

    async def start() -> asyncio.Task[None]:
        await inbox.put({"type": "lifespan.startup"})
        task = asyncio.ensure_future(
            app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, send)
        )
        await started.wait()
        return task

    task = loop.run_until_complete(start())
    try:
        yield service, lambda method, path, body: loop.run_until_complete(_call(app, method, path, body))
    finally:
        loop.run_until_complete(inbox.put({"type": "lifespan.shutdown"}))
        loop.run_until_complete(asyncio.wait_for(task, 20))
        loop.close()


async def _call(app: Any, method: str, path: str, body: bytes) -> tuple[int, bytes, dict[str, str]]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.request(
            method, path, content=body, headers={"Content-Type": "application/json"}
        )
        return response.status_code, response.content, dict(response.headers)


def _row() -> dict[str, Any]:
    return {
        "gender": "Female", "senior_citizen": 0, "partner": 1, "dependents": 0, "tenure": 12,
        "contract": "Month-to-month", "paperless_billing": 1, "payment_method": "Electronic check",
        "monthly_charges": 80.5, "total_charges": 966.0, "phone_service": 1, "multiple_lines": "No",
        "internet_service": "Fiber optic", "online_security": "No", "online_backup": "Yes",
        "device_protection": "No", "tech_support": "No", "streaming_tv": "Yes", "streaming_movies": "No",
    }  # fmt: skip


BAD = [
    ("/predict", b""),
    ("/predict", b"{}"),
    ("/predict", b"customer_ids=A-1"),
    ("/predict", b'{"customer_ids": ["\xff\xfe-bad"]}'),
    ("/predict", b'{"customer_ids": [42, null, "", "a b"], "debug": true}'),
    ("/predict", json.dumps({"customer_ids": ["X" * 10_240]}).encode()),
    ("/predict", b'{"customer_ids": []}'),
    ("/predict_features", b'{"rows": []}'),
    ("/predict_features", json.dumps({"rows": [{**_row(), "tenure": 12.5, "contract": "Forever"}]}).encode()),
    ("/predict_features", json.dumps({"rows": [{**_row(), "total_charges": float("nan")}]}).encode()),
    ("/predict_features", json.dumps({"rows": [{"partner": True, "shoe_size": 44}]}).encode()),
]


def _direct(service: Any, answer: Callable[[Any], Awaitable[Reply]]) -> DirectRoutes:
    async def fallback(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"passed through"})

    routes = {
        "/predict": DirectRoute(request_model=service.apis["predict"].input_spec, answer=answer),
        "/predict_features": DirectRoute(
            request_model=service.apis["predict_features"].input_spec, answer=answer
        ),
    }
    return DirectRoutes(fallback, routes=lambda: routes)


def test_refused_bodies_are_400s_naming_field_problem_and_fix_without_internals(
    bentoml_app: tuple[Any, Any],
) -> None:
    # BentoML refuses each of these too (its body names "...IODescriptor" and pydantic URLs).
    service, bento = bentoml_app

    async def never(request: Any) -> Reply:
        raise AssertionError("a refused body reached the runtime")

    direct = _direct(service, never)
    for path, body in BAD:
        status, content, _ = bento("POST", path, body)
        assert status == 400, (path, body[:40], content[:200])
        got_status, got, headers = _http(direct, "POST", path, body)
        assert got_status == 400, (path, body[:40])
        assert headers["content-type"] == "application/json"
        assert headers["x-churnops-error"] == "invalid_request"
        text = got.decode()
        for internal in ("IODescriptor", "pydantic", "errors.pydantic.dev", "Request"):
            assert internal not in text, (path, body[:40], text)
        reply = json.loads(got)
        assert reply["error"].startswith("invalid request")
        assert reply["detail"] and all(set(d) == {"type", "loc", "msg"} and d["msg"] for d in reply["detail"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bad_rows=st.integers(min_value=1, max_value=1000))
def test_a_body_with_many_bad_rows_lists_at_most_max_errors_and_counts_the_rest(
    bentoml_app: tuple[Any, Any], bad_rows: int
) -> None:
    from serving.direct import MAX_ERRORS

    service, _ = bentoml_app

    async def never(request: Any) -> Reply:
        raise AssertionError("a refused body reached the runtime")

    rows = [{**_row(), "tenure": -1, "contract": ""} for _ in range(bad_rows)]
    status, content, _ = _http(
        _direct(service, never), "POST", "/predict_features", json.dumps({"rows": rows}).encode()
    )
    reply = json.loads(content)
    total = 2 * bad_rows  # the oracle: two refused fields per row
    assert status == 400 and len(reply["detail"]) == min(total, MAX_ERRORS)
    if total > MAX_ERRORS:
        assert f"{total} problems" in reply["error"] and f"{total - MAX_ERRORS} more" in reply["error"]
    assert len(content) < 8_000


@pytest.mark.parametrize(
    "body",
    [
        b'{"customer_ids": ["A-1"], "customer_ids": ["B-2"]}',
        ('{"rows": [{' + json.dumps(_row())[1:-1] + ', "gender": "Male"}]}').encode(),
    ],
)
def test_duplicate_json_keys_are_refused(bentoml_app: tuple[Any, Any], body: bytes) -> None:
    service, _ = bentoml_app

    async def answer(request: Any) -> Reply:
        return Reply(200, b"{}")

    path = "/predict" if b"customer_ids" in body else "/predict_features"
    status, content, _ = _http(_direct(service, answer), "POST", path, body)
    assert status == 400, content
    assert json.loads(content)["detail"][0]["type"] == "duplicate_key"


def test_an_unexpected_error_is_bentomls_500_and_other_requests_pass_through(
    bentoml_app: tuple[Any, Any],
) -> None:
    service, bento = bentoml_app

    async def boom(request: Any) -> Reply:
        raise RuntimeError("boom")

    direct = _direct(service, boom)
    body = b'{"customer_ids": ["A-1"]}'
    assert _http(direct, "POST", "/predict", body)[:2] == bento("POST", "/predict", body)[:2]
    assert _http(direct, "GET", "/predict", b"")[:2] == (299, b"passed through")
    assert _http(direct, "POST", "/model/refresh", b"{}")[:2] == (299, b"passed through")


def test_answers_and_api_errors_carry_status_body_and_reason() -> None:
    async def answer(request: Any) -> Reply:
        ids = request.customer_ids
        return Reply(413, b'{"error":"too many"}', "too_many_items") if len(ids) > 1 else Reply(200, b"{}")

    routes = {"/predict": DirectRoute(request_model=PredictRequest, answer=answer)}
    direct = DirectRoutes(lambda s, r, se: None, routes=lambda: routes)  # type: ignore[arg-type,return-value]
    status, content, headers = _http(direct, "POST", "/predict", b'{"customer_ids": ["A", "B"]}')
    assert (status, content, headers["x-churnops-error"]) == (413, b'{"error":"too many"}', "too_many_items")
    status, content, headers = _http(direct, "POST", "/predict", b'{"customer_ids": ["A"]}')
    assert (status, content, int(headers["content-length"])) == (200, b"{}", 2)
    assert "x-churnops-error" not in headers


def test_refused_requests_are_logged_at_info_once_per_interval_without_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from serving.direct import RefusalLog

    log = RefusalLog(interval_s=3600)
    with caplog.at_level(logging.DEBUG, logger="serving.direct"):
        for i in range(1_000):
            log.note(400 + i % 2, '{"error":"x' + "y" * 10_000 + '"}')
    records = [r for r in caplog.records if r.name == "serving.direct"]
    assert len(records) == 1 and records[0].levelno == logging.INFO and records[0].exc_info is None
    assert len(records[0].getMessage()) < 400


def test_unknown_paths_are_labelled_other_and_readyz_and_the_spec_are_answered() -> None:
    from serving.front import OTHER_PATH, FrontDoor, FrontHooks

    seen: list[str] = []
    observed: list[tuple[str, int]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["path"])
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def readiness() -> tuple[bool, dict[str, Any]]:
        return False, {"reason": "online store unreachable"}

    async def spec(headers: Any) -> dict[str, Any]:
        return {"openapi": "3.0.2", "info": {"title": "churn"}}

    hooks = FrontHooks(
        observe=lambda endpoint, status, seconds: observed.append((endpoint, status)),
        readiness=readiness,
        spec=spec,
    )
    front = FrontDoor(app, known={"/predict", "/readyz", "/docs.json"}, hooks=lambda: hooks)  # type: ignore[arg-type]
    hostile = ["/nope", "/a%00b", "/predict/x", "/PREDICT", "/" + "x" * 4000]
    for path in [*hostile, "/predict"]:
        _http(front, "POST", path, b"{}")
    # The app sees every path as sent (its router answers 404); the label is from a fixed set.
    assert seen == [*[p.replace("%00", "\x00") for p in hostile], "/predict"]
    assert observed == [(OTHER_PATH, 404)] * len(hostile) + [("/predict", 404)]
    status, content, headers = _http(front, "GET", "/readyz", b"")
    assert status == 503 and json.loads(content)["reason"] == "online store unreachable"
    assert headers["retry-after"] == "1"
    status, content, _ = _http(front, "GET", "/docs.json", b"")
    assert status == 200 and json.loads(content)["info"]["title"] == "churn"
    _http(front, "POST", "/readyz", b"")  # other methods go on to the app (its 405)
    assert seen[-1] == "/readyz"

    starting = FrontDoor(app, known={"/readyz"}, hooks=lambda: None)  # type: ignore[arg-type]
    status, content, _ = _http(starting, "GET", "/readyz", b"")
    assert status == 503 and json.loads(content) == {"ready": False, "reason": "the service is starting"}
