"""The BentoML service: a declaration. Settings are built in ``__init__``; logic lives in ``Runtime``.

Run it with ``bentoml serve serving.service:ChurnService`` from the project root, or
``churnops serve --port 3000``. Endpoints: ``POST /predict``, ``POST /predict_features``,
``POST /model/refresh`` (registry webhook: re-check the production alias now), and BentoML's
``/livez``, ``/readyz`` (ready once a Production model and the feature store are loaded) and
``/metrics``.

``/predict`` and ``/predict_features`` are declared here (schema, OpenAPI, in-process calls) and
answered over HTTP by ``serving.direct`` in front of BentoML's router, with the same request
classes and the same ``Runtime``: BentoML's per-call machinery cost as much as the work itself.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, cast

import bentoml
from starlette.responses import JSONResponse, Response

from churnops.contracts.log_filters import quiet_known_warnings
from serving.direct import DirectRoute, DirectRoutes, Reply, json_body
from serving.guard import ERROR_HEADER, GuardConfig, RequestGuard
from serving.runtime import Answer, ApiError, Runtime
from serving.validation import (
    FeatureRow,
    PredictFeaturesRequest,
    PredictRequest,
    PredictResponse,
    RefreshResponse,
)

API_PATHS = ("/predict", "/predict_features", "/model/refresh")
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
    runtime = _runtime()
    return runtime.guard if runtime is not None else None


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


@bentoml.service(
    name="churn",
    workers=1,
    traffic={"timeout": 10, "max_concurrency": 256},
    logging={"access": {"enabled": False}},
    metrics={"enabled": True, "namespace": "bentoml_service"},
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


@dataclass(frozen=True)
class _Spec:
    """What BentoML's /docs.json view calls: ``asdict()``."""

    doc: dict[str, Any]

    def asdict(self) -> dict[str, Any]:
        return self.doc


def _runtime_or_none() -> Runtime | None:
    try:
        return _runtime()
    except bentoml.exceptions.BentoMLException:  # not instantiated (building the spec offline)
        return None


async def _readiness() -> tuple[bool, dict[str, Any]]:
    runtime = _runtime()
    if runtime is None:
        return False, {"reason": "the service is starting"}
    return await runtime.readiness()


class _FrontedService(bentoml.Service):  # type: ignore[misc]
    """``bentoml.Service`` whose ASGI app is wrapped in ``FrontDoor`` and ``RequestGuard``.

    BentoML's request metrics are its outermost middleware and label the raw path, and its
    concurrency limit is taken before any user middleware reads a body; BentoML has no
    setting for either. Wrapping the app it builds puts the path bound (``serving.front``)
    before its metrics and the guard's bounded body read before its concurrency slots.
    """

    __slots__ = ()

    @property
    def openapi_spec(self) -> Any:
        from serving.openapi import corrected_spec

        runtime = _runtime_or_none()
        doc = corrected_spec(
            super().openapi_spec.asdict(),
            api_paths=API_PATHS,
            max_ids=runtime.settings.serving_max_ids if runtime else None,
            max_rows=runtime.settings.serving_max_rows if runtime else None,
        )
        return _Spec(doc)

    def to_asgi(self, is_main: bool = True) -> Any:
        from serving.front import FrontDoor, known_paths

        app = super().to_asgi(is_main=is_main)
        guarded = RequestGuard(app, config=_guard_config, paths=API_PATHS)
        return FrontDoor(guarded, known=known_paths(app), readiness=_readiness)


# A class decorator's return type is invisible to mypy: ChurnService is a bentoml.Service.
# In front of BentoML: the path bound and /readyz, then the guard (key, content type, body
# size and time, latency and error metrics); inside BentoML's metrics, timeout and concurrency
# middleware: the scoring routes; BentoML's router gets everything else.
cast("Any", ChurnService).__class__ = _FrontedService
cast("bentoml.Service[Any]", ChurnService).add_asgi_middleware(
    DirectRoutes, routes=_direct_routes, headers=((b"server", b"BentoML Service/churn"),)
)
