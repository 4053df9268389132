"""The BentoML service: a declaration. Settings are built in ``__init__``; logic lives in ``Runtime``.

Run it with ``bentoml serve serving.service:ChurnService`` from the project root, or
``churnops serve --port 3000``. Endpoints: ``POST /predict``, ``POST /predict_features``,
``POST /model/refresh`` (registry webhook: re-check the production alias now), ``/livez``,
``/readyz`` (ready once a Production model and the feature store are loaded, JSON with the
reason), ``/metrics``, ``/docs`` (Swagger UI) and ``/docs.json`` (its OpenAPI document).

Everything is attached through BentoML's documented hooks, in this order of a request:
BentoML's timeout and concurrency middleware, then three ASGI middlewares added with
``add_asgi_middleware``: ``serving.front.FrontDoor`` (request metrics with a bounded path
label, ``/readyz``, ``/docs.json``), ``serving.guard.RequestGuard`` (API key, content type,
body size and time, API latency and error metrics) and ``serving.direct.DirectRoutes``
(answers ``POST /predict`` and ``/predict_features`` with the same request classes and the
same ``Runtime``: BentoML's per-call machinery cost as much as the work itself); then BentoML's
router, with the app ``serving.pages`` mounted by ``@bentoml.asgi_app`` (``/docs``,
``/metrics``). The API methods below declare the routes (schema, OpenAPI, in-process calls) and
answer what reaches BentoML's router. BentoML's own request metrics are off: they label raw
paths without bound (``serving.front``).
"""

from __future__ import annotations

import dataclasses
import gc
import inspect
import logging
from collections.abc import Awaitable, Sequence
from typing import Any, cast

import bentoml
from starlette.responses import JSONResponse, Response

from churnops.contracts.log_filters import quiet_known_warnings
from serving.auth import presented_key
from serving.direct import DirectRoute, DirectRoutes, Reply, json_body
from serving.front import FrontDoor, FrontHooks
from serving.guard import ERROR_HEADER, GuardConfig, RequestGuard
from serving.pages import pages_app
from serving.runtime import Answer, ApiError, Runtime
from serving.validation import (
    FeatureRow,
    PredictFeaturesRequest,
    PredictRequest,
    PredictResponse,
    RefreshResponse,
)

NAME = "churn"
MAX_CONCURRENCY = 256  # BentoML's concurrency slots of the worker (traffic.max_concurrency)
API_PATHS = ("/predict", "/predict_features", "/model/refresh")
# Every route of the app (the ``endpoint`` label of the request metrics; anything else is "other").
ROUTES = (*API_PATHS, "/livez", "/healthz", "/readyz", "/metrics", "/", "/docs", "/docs.json", "/schema.json")
logger = logging.getLogger(__name__)
# The imports above loaded feast, which re-enables every DeprecationWarning for the process;
# silence the known ones from library internals before BentoML builds the API schemas below.
quiet_known_warnings()


def _runtime() -> Runtime | None:
    """The running instance's runtime (None until the service has started)."""
    instance: Any = bentoml.get_current_service()
    runtime = getattr(instance, "runtime", None)
    return runtime if isinstance(runtime, Runtime) else None


def _guard_config() -> GuardConfig | None:
    """The runtime's guard settings. A body still arriving holds one of BentoML's concurrency
    slots (the guard runs inside BentoML's concurrency middleware): at most half of them may."""
    runtime = _runtime()
    if runtime is None:
        return None
    config, cap = runtime.guard, MAX_CONCURRENCY // 2
    if config.max_pending_bodies > cap:
        logger.warning(
            "serving_max_pending_bodies %d is over half of the %d concurrency slots; using %d",
            config.max_pending_bodies,
            MAX_CONCURRENCY,
            cap,
        )
        config = dataclasses.replace(config, max_pending_bodies=cap)
    return config


def _front_hooks() -> FrontHooks | None:
    runtime = _runtime()
    if runtime is None:
        return None
    metrics = runtime.metrics

    service = cast("bentoml.Service[Any]", ChurnService)

    async def spec(headers: Sequence[tuple[bytes, bytes]]) -> dict[str, Any]:
        return await runtime.published_spec(
            service.openapi_spec.asdict(),
            api_paths=API_PATHS,
            description=inspect.getdoc(service.inner) or "",
            presented_key=presented_key(headers),
        )

    return FrontHooks(
        observe=lambda endpoint, status, seconds: metrics.child(
            metrics.http_latency, endpoint, str(status)
        ).observe(seconds),
        readiness=runtime.readiness,
        spec=spec,
    )


def _response(result: Answer | ApiError) -> Response:
    if isinstance(result, ApiError):
        return JSONResponse(
            result.body(), status_code=result.status, headers={ERROR_HEADER.decode(): result.reason}
        )
    return Response(result.json(), media_type="application/json")


async def _reply(result: Awaitable[Answer | ApiError]) -> Reply:
    answer = await result
    if isinstance(answer, ApiError):
        return Reply(answer.status, json_body(answer.body()), answer.reason)
    return Reply(200, answer.json())


def _direct_routes() -> dict[str, DirectRoute] | None:
    """The scoring routes for ``serving.direct``, validated by the IO descriptors BentoML built."""
    runtime = _runtime()
    if runtime is None:
        return None
    apis = cast("Any", ChurnService).apis
    return {
        "/predict": DirectRoute(
            request_model=apis["predict"].input_spec,
            answer=lambda request: _reply(runtime.predict_ids(request.customer_ids)),
        ),
        "/predict_features": DirectRoute(
            request_model=apis["predict_features"].input_spec,
            answer=lambda request: _reply(runtime.predict_rows(request.rows)),
        ),
    }


@bentoml.asgi_app(pages_app(title=f"{NAME} API"), path="/", name="pages")
@bentoml.service(
    name=NAME,
    workers=1,
    traffic={"timeout": 10, "max_concurrency": MAX_CONCURRENCY},
    logging={"access": {"enabled": False}},
    # Off: they label raw paths without bound; serving.front observes every request instead.
    metrics={"enabled": False},
    # The OpenTelemetry ASGI middleware creates ~6 spans per request even when nothing is sampled
    # (~0.5 ms here); these routes skip it. Override with BENTOML_CONFIG_OPTIONS to trace them.
    tracing={"excluded_urls": ["/predict", "/model/refresh", "/livez", "/readyz", "/metrics"]},
)
class ChurnService:
    """Churn probability by customer id (features from Feast's online store) or by raw features."""

    def __init__(self) -> None:
        from threadpoolctl import threadpool_limits

        from churnops.contracts.redaction import redact_log_handlers
        from churnops.settings import Settings
        from churnops.wiring import serving_runtime
        from serving.metrics import ServingMetrics

        redact_log_handlers()  # BentoML has configured logging: no URL credential reaches a log line
        # One BLAS/OpenMP thread per worker: a one-row predict is dominated by thread start-up.
        self._thread_limits = threadpool_limits(limits=1)
        self.runtime = serving_runtime(Settings(), metrics=ServingMetrics())
        # Feast, MLflow, pandas and sklearn leave millions of long-lived objects; a full GC pass
        # over them stalls the event loop for tens of ms (seen as p99 spikes and Redis read
        # timeouts). Freezing them exempts them from collection; request garbage is still collected.
        gc.collect()
        gc.freeze()

    def __is_ready__(self) -> bool:
        return self.runtime.ready()

    # BentoML's decorators are untyped for mypy; the methods' own annotations are the contract.
    @bentoml.api(route="/predict", input_spec=PredictRequest, output_spec=PredictResponse)  # type: ignore[untyped-decorator]
    async def predict(self, customer_ids: list[str]) -> PredictResponse | Response:
        """Score customers by id; each row has a status (ok, unknown_customer, stale_features, ...)."""
        return _response(await self.runtime.predict_ids(customer_ids))

    @bentoml.api(route="/predict_features", input_spec=PredictFeaturesRequest, output_spec=PredictResponse)  # type: ignore[untyped-decorator]
    async def predict_features(self, rows: list[FeatureRow]) -> PredictResponse | Response:
        """Score raw churn_v1 feature rows (what-if)."""
        return _response(await self.runtime.predict_rows(rows))

    @bentoml.api(route="/model/refresh", output_spec=RefreshResponse)  # type: ignore[untyped-decorator]
    async def refresh_model(self) -> RefreshResponse:
        """Re-read the production alias now (point an MLflow registry webhook here)."""
        changed = await self.runtime.refresh()
        ref = self.runtime.watcher.current_ref
        return RefreshResponse(
            model_name=ref.name if ref else None, model_version=ref.version if ref else None, changed=changed
        )

    @bentoml.on_shutdown  # type: ignore[untyped-decorator]
    def _close(self) -> None:
        self.runtime.close()


# A class decorator's return type is invisible to mypy: ChurnService is a bentoml.Service.
# The first middleware added is the outermost of the three.
_service = cast("bentoml.Service[Any]", ChurnService)
_service.add_asgi_middleware(FrontDoor, known=ROUTES, hooks=_front_hooks)
_service.add_asgi_middleware(RequestGuard, config=_guard_config, paths=API_PATHS)
_service.add_asgi_middleware(
    DirectRoutes, routes=_direct_routes, headers=((b"server", f"BentoML Service/{NAME}".encode()),)
)
