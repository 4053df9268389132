"""The running BentoML service, end to end: a real `bentoml serve` subprocess, a private real
redis-server (so stopping it never touches the shared one), a Feast repo materialized into it,
and an MLflow SQLite store with registered models.

The service starts once for the module; the tests run in file order, with the ones that move
Production or stop Redis last.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from churnops.contracts.prediction_log import read_prediction_log
from churnops.settings import Settings
from tests.support.serving_env import (
    Environment,
    RedisServer,
    ServiceProcess,
    load_online_store,
    private_service,
    promote,
)

# slow: starts redis-server and a real BentoML process (about 2 min on the 2-core machine).
pytestmark = [pytest.mark.integration, pytest.mark.slow]
API_KEY = "test-key-0123456789abcdef"
WEBHOOK_SECRET = "webhook-secret-42"
MAX_IDS = 50
MAX_BODY = 65_536


@dataclass
class Stack:
    settings: Settings
    env: Environment
    redis: RedisServer
    service: ServiceProcess
    next_version: str
    client: httpx.Client

    def log_rows(self) -> Any:
        return read_prediction_log(self.settings.home / "predictions").to_pandas()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with (
        private_service(
            work=tmp_path_factory.mktemp("serving"),
            n_customers=300,
            seed=99,
            c=0.05,
            CHURNOPS_SERVING_API_KEY=API_KEY,
            CHURNOPS_SERVING_MAX_IDS=str(MAX_IDS),
            CHURNOPS_SERVING_MAX_BODY_BYTES=str(MAX_BODY),
            CHURNOPS_SERVING_POLL_SECONDS="0.3",
            CHURNOPS_SERVING_WEBHOOK_SECRET=WEBHOOK_SECRET,
        ) as served,
        httpx.Client(
            base_url=served.service.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10
        ) as client,
    ):
        settings, env, service = served.settings, served.env, served.service
        yield Stack(settings, env, served.redis, service, served.second_version, client)
        # Tests run in any order: the log is checked once more after all of them.
        leftover = _unexpected_tracebacks(Path(service.log_path))
        assert leftover == [], leftover[0][:3000]
        warned = [
            line
            for line in Path(service.log_path).read_text(errors="replace").splitlines()
            if "Warning:" in line
        ]
        assert warned == [], warned  # no library deprecation warnings on start or while serving


def _unexpected_tracebacks(log_path: Path) -> list[str]:
    """Tracebacks in the service log other than BentoML's for a request pydantic refused (our 400s)."""
    log = log_path.read_text(errors="replace")
    return [
        chunk
        for chunk in log.split("Traceback (most recent call last):")[1:]
        if "pydantic_core._pydantic_core.ValidationError" not in chunk.split("\n20")[0]
    ]


def _row() -> dict[str, Any]:
    return {
        "gender": "Female",
        "senior_citizen": 0,
        "partner": 1,
        "dependents": 0,
        "tenure": 12,
        "contract": "Month-to-month",
        "paperless_billing": 1,
        "payment_method": "Electronic check",
        "monthly_charges": 80.5,
        "total_charges": 966.0,
        "phone_service": 1,
        "multiple_lines": "No",
        "internet_service": "Fiber optic",
        "online_security": "No",
        "online_backup": "Yes",
        "device_protection": "No",
        "tech_support": "No",
        "streaming_tv": "Yes",
        "streaming_movies": "No",
    }


def _locs(response: httpx.Response) -> list[list[Any]]:
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    return [d["loc"] for d in body["detail"]]


def test_predict_scores_known_ids_and_explains_the_others(stack: Stack) -> None:
    ok_ids = stack.env.customer_ids[:3]
    ids = [ok_ids[0], "NOPE-0000", ok_ids[1], stack.env.stale_ids[0], ok_ids[2]]
    response = stack.client.post("/predict", json={"customer_ids": ids})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "churn" and body["model_version"] == stack.env.model_version
    got = [(p["customer_id"], p["status"]) for p in body["predictions"]]
    assert got == [
        (ok_ids[0], "ok"),
        ("NOPE-0000", "unknown_customer"),
        (ok_ids[1], "ok"),
        (stack.env.stale_ids[0], "stale_features"),
        (ok_ids[2], "ok"),
    ]
    for p in body["predictions"]:
        if p["status"] == "ok":
            assert 0.0 < p["churn_probability"] < 1.0
        else:
            assert p["churn_probability"] is None


def test_predict_features_matches_the_model_offline(stack: Stack) -> None:
    from churnops.contracts.columns import feature_names
    from churnops.wiring import model_source

    rows = [_row(), {**_row(), "contract": "Two year", "tenure": 60, "customer_id": "WHATIF-1"}]
    response = stack.client.post("/predict_features", json={"rows": rows})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["customer_id"] for p in predictions] == [None, "WHATIF-1"]
    assert all(p["status"] == "ok" for p in predictions)
    # The same version loaded offline (sha-verified) gives the same probabilities.
    source = model_source(stack.settings)
    ref = source.production()
    assert ref is not None and ref.version == stack.env.model_version
    import pandas as pd

    expected = source.load(ref).estimator.predict_proba(pd.DataFrame(rows)[feature_names()])[:, 1]
    for p, e in zip(predictions, expected, strict=True):
        assert math.isclose(p["churn_probability"], float(e), abs_tol=1e-9)


def test_docs_serve_swagger_ui_with_the_real_identity_and_examples_that_work(stack: Stack) -> None:
    from importlib.metadata import version

    with httpx.Client(base_url=stack.service.url, timeout=10) as anonymous:  # no key needed to read
        page = anonymous.get("/docs")
        assert page.status_code == 200 and "swagger-ui" in page.text, page.text[:300]
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):  # served here, not from a CDN
            assert anonymous.get(f"/static_content/{asset}").status_code == 200, asset
        public = anonymous.get("/docs.json").json()
    # An API key guards this service: the public document names no real customer ...
    public_text = json.dumps(public)
    assert not any(customer in public_text for customer in stack.env.customer_ids)
    # ... a request that presents the key gets the examples ("Try it out" with them works).
    doc = stack.client.get("/docs.json").json()
    assert doc["info"] == public["info"]
    info = doc["info"]
    assert (info["title"], info["version"]) == ("churn", version("churnops")), info
    assert info["x-churnops-model"]["version"] == stack.env.model_version, info
    assert f"version {stack.env.model_version} (Production)" in info["description"], info
    body = doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert body["customer_ids"] and set(body["customer_ids"]) <= set(stack.env.customer_ids), body
    # "Try it out" as Swagger UI sends it: every example customer is scored.
    tried = stack.client.post("/predict", json=body)
    assert tried.status_code == 200 and {p["status"] for p in tried.json()["predictions"]} == {"ok"}
    rows = doc["paths"]["/predict_features"]["post"]["requestBody"]["content"]["application/json"]["example"]
    tried = stack.client.post("/predict_features", json=rows)
    assert tried.status_code == 200 and tried.json()["predictions"][0]["status"] == "ok", tried.text


BAD_PREDICT: list[tuple[str, bytes, int, Any]] = [
    ("missing field", b"{}", 400, ["customer_ids"]),
    ("extra field", b'{"customer_ids": ["A-1"], "debug": true}', 400, ["debug"]),
    ("wrong type", b'{"customer_ids": "A-1"}', 400, ["customer_ids"]),
    ("number id", b'{"customer_ids": [42]}', 400, ["customer_ids", 0]),
    ("empty list", b'{"customer_ids": []}', 400, ["customer_ids"]),
    ("null id", b'{"customer_ids": [null]}', 400, ["customer_ids", 0]),
    ("blank id", b'{"customer_ids": [""]}', 400, ["customer_ids", 0]),
    ("10 kB id", json.dumps({"customer_ids": ["X" * 10_240]}).encode(), 400, ["customer_ids", 0]),
    (
        "too many ids",
        json.dumps({"customer_ids": [f"C{i}" for i in range(MAX_IDS + 1)]}).encode(),
        413,
        ["customer_ids"],
    ),
    ("invalid UTF-8", b'{"customer_ids": ["\xff\xfe-bad"]}', 400, []),
    ("not JSON", b"customer_ids=A-1", 400, []),
    ("oversized body", b'{"customer_ids": ["' + b"A" * (MAX_BODY + 10) + b'"]}', 413, ["body"]),
]

BAD_FEATURES: list[tuple[str, dict[str, Any] | bytes, Any]] = [
    ("missing feature", {k: v for k, v in _row().items() if k != "tenure"}, ["rows", 0, "tenure"]),
    ("extra feature", {**_row(), "shoe_size": 44}, ["rows", 0, "shoe_size"]),
    ("wrong type", {**_row(), "tenure": "twelve"}, ["rows", 0, "tenure"]),
    ("float for int", {**_row(), "tenure": 12.5}, ["rows", 0, "tenure"]),
    ("bool for flag", {**_row(), "partner": True}, ["rows", 0, "partner"]),
    ("flag out of range", {**_row(), "partner": 2}, ["rows", 0, "partner"]),
    ("negative charges", {**_row(), "monthly_charges": -5.0}, ["rows", 0, "monthly_charges"]),
    ("unknown category", {**_row(), "contract": "Forever"}, ["rows", 0, "contract"]),
    (
        "NaN",
        json.dumps({"rows": [{**_row(), "total_charges": float("nan")}]}).encode(),
        ["rows", 0, "total_charges"],
    ),
    (
        "Infinity",
        json.dumps({"rows": [{**_row(), "monthly_charges": float("inf")}]}).encode(),
        ["rows", 0, "monthly_charges"],
    ),
    ("empty rows", b'{"rows": []}', ["rows"]),
]


def _logged_through(stack: Stack) -> int:
    """Rows in the log once a fresh request's row is there: the service has one worker whose
    writer appends in arrival order, so every row of an earlier request is in the log by then."""
    request_id = stack.client.post("/predict", json={"customer_ids": [stack.env.customer_ids[0]]}).json()[
        "request_id"
    ]
    deadline = time.monotonic() + 30
    while True:
        frame = stack.log_rows()
        if (frame["request_id"] == request_id).any():
            return len(frame)
        assert time.monotonic() < deadline, f"request {request_id} never reached the prediction log"
        time.sleep(0.1)


def test_bad_input_is_a_structured_4xx_naming_the_field_and_nothing_is_logged(stack: Stack) -> None:
    before = _logged_through(stack)  # earlier tests' rows are in; the barrier's own row too
    for name, body, status, loc in BAD_PREDICT:
        response = stack.client.post("/predict", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == status, (name, response.text)
        locs = _locs(response)
        if loc:
            assert loc in locs, (name, locs)
    for name, row, loc in BAD_FEATURES:
        content = row if isinstance(row, bytes) else json.dumps({"rows": [row]}).encode()
        response = stack.client.post(
            "/predict_features", content=content, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400, (name, response.text)
        # pydantic nests a row's location under the model; the field name must be in it.
        assert any(loc[-1] in path for path in _locs(response)), (name, _locs(response))
    assert _logged_through(stack) == before + 1  # the second barrier's row, nothing of the refused


def test_pickle_and_other_content_types_are_refused(stack: Stack) -> None:
    for content_type in ("application/vnd.bentoml+pickle", "text/plain", "multipart/form-data; boundary=x"):
        response = stack.client.post(
            "/predict", content=b"\x80\x04K\x01.", headers={"Content-Type": content_type}
        )
        assert response.status_code == 415, (content_type, response.text)
        assert _locs(response) == [["header", "content-type"]]


def test_api_key_is_required_except_for_health_and_metrics(stack: Stack) -> None:
    body = {"customer_ids": stack.env.customer_ids[:1]}
    with httpx.Client(base_url=stack.service.url, timeout=10) as anonymous:
        assert anonymous.post("/predict", json=body).status_code == 401
        wrong = anonymous.post("/predict", json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and _locs(wrong) == [["header", "authorization"]]
        assert anonymous.post("/predict", json=body, headers={"X-API-Key": API_KEY}).status_code == 200
        assert anonymous.post("/predict_features", json={"rows": [_row()]}).status_code == 401
        for path in ("/metrics", "/livez", "/readyz"):
            assert anonymous.get(path).status_code == 200, path


def test_every_error_has_the_reason_header_and_the_same_body_shape(stack: Stack) -> None:
    ids = stack.env.customer_ids[:1]
    json_type = {"Content-Type": "application/json"}
    with httpx.Client(base_url=stack.service.url, timeout=10) as anonymous:
        post = stack.client.post
        too_many = {"customer_ids": [f"C-{i}" for i in range(MAX_IDS + 1)]}
        twice = b'{"customer_ids": ["A"], "customer_ids": ["B"]}'
        cases = [
            ("unauthorized", anonymous.post("/predict", json={"customer_ids": ids})),
            ("invalid_request", post("/predict", json={"customer_ids": []})),
            ("invalid_request", post("/predict", content=twice, headers=json_type)),
            ("unsupported_media_type", post("/predict", content=b"x", headers={"Content-Type": "text/x"})),
            ("body_too_large", post("/predict", content=b" " * (MAX_BODY + 1), headers=json_type)),
            ("too_many_items", post("/predict", json=too_many)),
        ]
    for reason, response in cases:
        assert response.status_code in (400, 401, 413, 415), (reason, response.text)
        assert response.headers.get("x-churnops-error") == reason, (reason, dict(response.headers))
        body = response.json()
        assert isinstance(body["error"], str) and body["error"], body
        # A 400's items name pydantic's problem kinds; every other error's item is the reason.
        assert body["detail"] and (reason == "invalid_request" or body["detail"][0]["type"] == reason), body
        assert all(set(d) == {"type", "loc", "msg"} for d in body["detail"]), body


def test_metrics_expose_the_serving_figures_without_customer_ids(stack: Stack) -> None:
    stack.client.post("/predict", json={"customer_ids": [*stack.env.customer_ids[:5], "NOPE-1"]})
    # One refused and one invalid request of its own, whatever ran before.
    assert (
        httpx.post(f"{stack.service.url}/predict", json={"customer_ids": ["A-1"]}, timeout=10).status_code
        == 401
    )
    assert (
        stack.client.post("/predict", content=b"{}", headers={"Content-Type": "application/json"}).status_code
        == 400
    )
    text = httpx.get(f"{stack.service.url}/metrics", timeout=10).text
    for name in (
        "churnops_request_duration_seconds_bucket",
        "churnops_feature_fetch_duration_seconds_bucket",
        "churnops_model_predict_duration_seconds_bucket",
        "churnops_predictions_total",
        "churnops_score_bucket",
        "churnops_feature_rows_unusable_total",
        "churnops_errors_total",
        "churnops_model_info",
        "churnops_prediction_log_rows_total",
        "churnops_http_request_duration_seconds_bucket",
    ):
        assert name in text, name
    assert 'status="unknown_customer"' in text
    assert 'reason="unauthorized"' in text and 'reason="invalid_request"' in text
    assert f'model_version="{stack.env.model_version}"' in text
    for cid in [*stack.env.customer_ids, *stack.env.stale_ids, "NOPE-1"]:
        assert cid not in text


def test_prediction_log_has_every_answered_row(stack: Stack) -> None:
    ids = [stack.env.customer_ids[10], "NOPE-LOG"]
    response = stack.client.post("/predict", json={"customer_ids": ids})
    request_id = response.json()["request_id"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        frame = stack.log_rows()
        rows = frame[frame["request_id"] == request_id]
        if len(rows) == 2:
            break
        time.sleep(0.3)
    assert list(rows["customer_id"]) == ids
    assert list(rows["status"]) == ["ok", "unknown_customer"]
    known = rows.iloc[0]
    assert known["model_name"] == "churn" and known["model_version"] == stack.env.model_version
    assert known["feature_service"] == "churn_v1" and known["endpoint"] == "predict"
    assert 0 < known["score"] < 1 and known["contract"] in ("Month-to-month", "One year", "Two year")
    assert math.isnan(rows.iloc[1]["score"]) and rows.iloc[1]["contract"] is None
    assert (stack.settings.home / "predictions").glob("date=*/part-*.parquet")


def test_hot_swap_under_load_fails_no_request(stack: Stack) -> None:
    failures: list[str] = []
    versions: list[str] = []
    stop = threading.Event()
    ids = stack.env.customer_ids[:20]

    def load() -> None:
        with httpx.Client(base_url=stack.service.url, headers={"X-API-Key": API_KEY}, timeout=10) as client:
            i = 0
            while not stop.is_set():
                try:
                    r = client.post("/predict", json={"customer_ids": [ids[i % 20]]})
                    if r.status_code != 200 or r.json()["predictions"][0]["status"] != "ok":
                        failures.append(f"{r.status_code} {r.text[:200]}")
                    else:
                        versions.append(r.json()["model_version"])
                except httpx.HTTPError as error:
                    failures.append(repr(error))
                i += 1

    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()

    def until(done: Any, what: str) -> None:
        deadline = time.monotonic() + 30
        while not done():
            assert time.monotonic() < deadline and not failures, (what, failures[:3])
            time.sleep(0.05)

    try:
        until(lambda: len(versions) >= 20, "the load is answered before the swap")
        promote(settings=stack.settings, version=stack.next_version)
        until(lambda: stack.next_version in versions, "the new version answers")
        swapped_at = versions.index(stack.next_version)
        until(lambda: len(versions) >= swapped_at + 50, "fifty answers after the swap")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert versions[0] == stack.env.model_version and versions[-1] == stack.next_version
    # Once swapped, never back.
    first_new = versions.index(stack.next_version)
    assert set(versions[first_new:]) == {stack.next_version}
    refreshed = stack.client.post("/model/refresh", json={})
    assert refreshed.status_code == 200
    assert refreshed.json() == {"model_name": "churn", "model_version": stack.next_version, "changed": False}
    # An MLflow registry webhook (signed, no API key) is accepted too.
    from mlflow.webhooks.delivery import _generate_hmac_signature

    payload = json.dumps(
        {"entity": "model_version_alias", "action": "created", "data": {"alias": "production"}}
    )
    stamp = str(int(time.time()))
    signed = {
        "Content-Type": "application/json",
        "X-MLflow-Signature": _generate_hmac_signature(WEBHOOK_SECRET, "d-1", stamp, payload),
        "X-MLflow-Delivery-Id": "d-1",
        "X-MLflow-Timestamp": stamp,
    }
    webhook = httpx.post(f"{stack.service.url}/model/refresh", content=payload, headers=signed, timeout=10)
    assert webhook.status_code == 200, webhook.text
    text = httpx.get(f"{stack.service.url}/metrics", timeout=10).text
    assert f'model_version="{stack.next_version}",scorer="linear_tables"}} 1.0' in text
    # The module's other tests see the Production they started with: roll back and wait for it.
    from churnops.wiring import open_registry

    with open_registry(stack.settings, write=True) as registry:
        registry.rollback(reason="the hot-swap test is over", actor="tests")
    deadline = time.monotonic() + 30
    while stack.client.post("/model/refresh", json={}).json()["model_version"] != stack.env.model_version:
        assert time.monotonic() < deadline, "serving never followed the rollback"
        time.sleep(0.1)


def test_slow_redis_answers_503_fast_and_recovers(stack: Stack) -> None:
    import redis

    ids = stack.env.customer_ids[:3]
    blocker = redis.Redis.from_url(stack.redis.url, socket_timeout=5)
    # Redis stops answering every client for 1.5 s (a stand-in for a saturated server).
    blocker.execute_command("CLIENT", "PAUSE", "1500", "ALL")
    try:
        started = time.perf_counter()
        response = stack.client.post("/predict", json={"customer_ids": ids})
        elapsed = time.perf_counter() - started
    finally:
        blocker.execute_command("CLIENT", "UNPAUSE")
        blocker.close()
    assert response.status_code == 503, response.text
    assert response.json()["detail"][0]["type"] == "features_unavailable"
    # Behaviour, not speed: the answer came on the read deadline, not after Redis's 1.5 s pause.
    assert elapsed < 1.0, f"answered in {elapsed * 1000:.0f} ms (Redis was paused for 1,500 ms)"
    after = stack.client.post("/predict", json={"customer_ids": ids})
    assert after.status_code == 200 and {p["status"] for p in after.json()["predictions"]} == {"ok"}


def test_redis_down_answers_503_fast_and_recovers_when_it_returns(stack: Stack) -> None:
    from churnops.wiring import feature_store

    ids = stack.env.customer_ids[:3]
    stack.redis.stop()
    try:
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            response = stack.client.post("/predict", json={"customer_ids": ids})
            timings.append(time.perf_counter() - started)
            assert response.status_code == 503, response.text
            assert response.json()["detail"][0]["type"] == "features_unavailable"
            assert response.headers["retry-after"] == "1"
        assert max(timings) < 0.15, timings
        assert httpx.get(f"{stack.service.url}/livez", timeout=5).status_code == 200
        # Readiness says why (a load balancer stops sending traffic here meanwhile).
        ready = httpx.get(f"{stack.service.url}/readyz", timeout=5)
        assert ready.status_code == 503 and "unreachable" in ready.json()["reason"], ready.text
    finally:
        stack.redis.start()
    # Redis is back but empty: a store problem (503 features_unavailable), not unknown customers.
    empty = stack.client.post("/predict", json={"customer_ids": ids})
    assert empty.status_code == 503, empty.text
    assert empty.json()["detail"][0]["type"] == "features_unavailable", empty.text
    assert "materialize" in empty.json()["error"]
    ready = httpx.get(f"{stack.service.url}/readyz", timeout=5)
    assert ready.status_code == 503 and "materialize" in ready.json()["reason"], ready.text
    # The restarted Redis is empty (no persistence): load it again, as an operator would, and
    # as the stack was built (stale customers too: tests after this one need them).
    load_online_store(store=feature_store(stack.settings), as_of=stack.env.as_of)
    deadline = time.monotonic() + 10
    statuses: set[str] = set()
    while time.monotonic() < deadline:
        response = stack.client.post("/predict", json={"customer_ids": ids})
        if response.status_code == 200:
            statuses = {p["status"] for p in response.json()["predictions"]}
            if statuses == {"ok"}:
                break
        time.sleep(0.2)
    assert statuses == {"ok"}
    deadline = time.monotonic() + 10  # the emptiness verdict is cached for a second
    while httpx.get(f"{stack.service.url}/readyz", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, "/readyz did not recover after the store was reloaded"
        time.sleep(0.2)


def test_the_service_log_has_no_unexpected_tracebacks(stack: Stack) -> None:
    # BentoML logs a traceback for each request its pydantic validation refuses (our 400s);
    # anything else would be a bug. (The stack fixture checks again after the last test.)
    leftover = _unexpected_tracebacks(Path(stack.service.log_path))
    assert leftover == [], leftover[0][:3000]
