"""What the service does, as plain typed code: hold the parts, follow Production, answer requests.

The parts (Feast store, model source, prediction log, configuration) are built from Settings by
``churnops.wiring.serving_runtime`` and handed in; ``start()`` loads Production and starts the
watcher and log threads. ``predict_ids`` / ``predict_rows`` return an ``Answer`` (rendered to the
``PredictResponse`` JSON once, by ``Answer.json``) or an ``ApiError``; the BentoML service and
``serving.direct`` only translate. ``published_spec`` is the OpenAPI document as served, with
the model in Production and request examples the store answers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic_core import to_json

from churnops.contracts.columns import EVENT_TS, JOIN_KEY
from churnops.contracts.online import OnlineRow, RowStatus, feature_time
from churnops.contracts.prediction_log import PREDICT_ENDPOINT, WHAT_IF_ENDPOINT
from churnops.contracts.redaction import redact
from churnops.features.fastpath.reader import LayoutUnsupported, RedisReader, feast_version_problem
from churnops.features.online import ServiceLayout
from serving.auth import authorized
from serving.config import ServingConfig
from serving.features import FeastReader, FeaturesUnavailable, OnlineReader
from serving.guard import GuardConfig
from serving.metrics import ServingMetrics
from serving.model_source import LoadedModel, ModelRef, ModelSource
from serving.model_watch import ModelWatcher
from serving.openapi import Examples, Identity, corrected_spec
from serving.prediction_log import PredictionLog
from serving.scoring import Scored, Scorer, make_scorer, score_rows
from serving.validation import FeatureRow, Prediction, PredictResponse, error_body

logger = logging.getLogger(__name__)
EXAMPLE_CANDIDATES = 50  # ids of the newest source rows tried as request examples


@dataclass(frozen=True)
class Deployment:
    """Everything one Production version needs to answer, swapped as one reference."""

    model: LoadedModel
    scorer: Scorer
    scorer_kind: str
    feature_service: str
    reader: OnlineReader


@dataclass(frozen=True)
class ApiError:
    status: int
    reason: str
    message: str
    loc: tuple[str | int, ...] = ()

    def body(self) -> dict[str, Any]:
        return error_body(message=redact(self.message), code=self.reason, loc=list(self.loc))


@dataclass(frozen=True)
class Answer:
    """One scored request: what ``PredictResponse`` says, kept as the rows the log also records."""

    model_name: str
    model_version: str
    request_id: str
    predictions: tuple[Scored, ...]

    def json(self) -> bytes:
        """The ``PredictResponse`` body, byte for byte what pydantic would write, without the models."""
        return to_json(
            {
                "model_name": self.model_name,
                "model_version": self.model_version,
                "request_id": self.request_id,
                "predictions": [
                    {"customer_id": s.customer_id, "churn_probability": s.score, "status": s.status}
                    for s in self.predictions
                ],
            }
        )

    def response(self) -> PredictResponse:
        """The same answer as the declared response model (for in-process callers and the schema)."""
        return PredictResponse(
            model_name=self.model_name,
            model_version=self.model_version,
            request_id=self.request_id,
            predictions=[
                Prediction(customer_id=s.customer_id, churn_probability=s.score, status=s.status)
                for s in self.predictions
            ],
        )


def make_reader(
    *, settings: ServingConfig, store: Any, layout: ServiceLayout, feast_version: str | None = None
) -> OnlineReader:
    """The direct Redis reader when the online store is Redis (unless told otherwise), else Feast.

    ``auto`` takes the direct reader only when the installed Feast (or ``feast_version``) is
    the one the Redis layout codec was verified against, logging why not otherwise.
    """
    # Redis: fail fast (2x the socket timeout). The embedded SQLite store has no "slow server"
    # failure mode, only a cold first read, so it gets a generous bound.
    deadline_s = settings.redis_timeout_ms * 2 / 1000 if settings.redis_url else 2.0
    mode = settings.serving_online_reader
    if settings.redis_url is not None and mode in ("auto", "redis"):
        service = layout.service.name
        problem = feast_version_problem(installed=feast_version)
        if problem and mode == "auto":
            logger.warning(
                "feature service %s: direct Redis reader not used (%s); using Feast", service, problem
            )
        else:
            if problem:
                logger.warning("feature service %s: direct Redis reader forced although %s", service, problem)

            # The direct reader's fallback, should its warm-up self-check disagree with Feast.
            def feast_reader() -> OnlineReader:
                return FeastReader(store=store, layout=layout, deadline_s=deadline_s, clock=settings.clock)

            try:
                return RedisReader(
                    redis_url=settings.redis_url,
                    store=store,
                    layout=layout,
                    timeout_ms=settings.redis_timeout_ms,
                    fallback=feast_reader,
                    clock=settings.clock,
                )
            except LayoutUnsupported as why:
                logger.warning(
                    "feature service %s: direct Redis reader not used (%s); using Feast", service, why
                )
    return FeastReader(store=store, layout=layout, deadline_s=deadline_s, clock=settings.clock)


class Runtime:
    """The serving state of one worker process."""

    def __init__(
        self,
        *,
        settings: ServingConfig,
        metrics: ServingMetrics,
        store: Any,
        source: ModelSource,
        log: PredictionLog,
        verified_record: Path | None = None,
    ) -> None:
        self.settings = settings
        self._verified_record = verified_record
        self.metrics = metrics
        self.store = store
        self.log = log
        self.source = source
        self._layouts: dict[str, ServiceLayout] = {}
        self._example_candidates: list[str] | None = None
        self._readers: dict[str, OnlineReader] = {}
        self.watcher: ModelWatcher[Deployment] = ModelWatcher(
            source=source,
            build=self._deploy,
            interval_s=settings.serving_poll_seconds,
            on_swap=self._swapped,
            on_failure=self._load_failed,
            fallback=self._last_verified,
        )
        key = settings.serving_api_key
        self.guard = GuardConfig(
            api_key=key.get_secret_value().encode("utf-8") if key is not None else None,
            max_body_bytes=settings.serving_max_body_bytes,
            body_timeout_s=settings.serving_body_timeout_seconds,
            max_pending_bodies=settings.serving_max_pending_bodies,
            webhook_path="/model/refresh",
            webhook_secret=(
                settings.serving_webhook_secret.get_secret_value().encode("utf-8")
                if settings.serving_webhook_secret is not None
                else None
            ),
            observe=lambda endpoint, status, seconds: metrics.child(
                metrics.request_latency, endpoint, str(status)
            ).observe(seconds),
            count_error=lambda reason: metrics.child(metrics.errors, reason).inc(),
        )

    def start(self) -> Runtime:
        """Load Production if there is one, then start the watcher and the log flusher."""
        self.watcher.refresh()
        self.watcher.start()
        self.log.start()
        return self

    # -- model lifecycle -------------------------------------------------------------------

    def _layout(self, feature_service: str) -> ServiceLayout:
        from churnops.features.online import service_layout

        if feature_service not in self._layouts:
            self._layouts[feature_service] = service_layout(store=self.store, feature_service=feature_service)
        return self._layouts[feature_service]

    def _deploy(self, ref: ModelRef) -> Deployment:
        feature_service = ref.feature_service or self.settings.feature_service
        layout = self._layout(feature_service)
        model = self.source.load(ref)
        scorer, kind = make_scorer(model.estimator)
        if feature_service not in self._readers:
            reader = make_reader(settings=self.settings, store=self.store, layout=layout)
            try:
                reader.warm_up()
            except Exception as error:  # the store may be down now; requests will say so
                logger.warning("online store warm-up failed: %s", error)
            self._readers[feature_service] = reader
        return Deployment(
            model=model,
            scorer=scorer,
            scorer_kind=kind,
            feature_service=feature_service,
            reader=self._readers[feature_service],
        )

    def _last_verified(self) -> ModelRef | None:
        """The last version this host loaded and verified (its digest is checked again on load)."""
        if self._verified_record is None or not self._verified_record.is_file():
            return None
        try:
            found = json.loads(self._verified_record.read_text())
            return ModelRef.from_json(found)
        except (ValueError, KeyError, TypeError, OSError) as error:
            logger.warning("ignoring the last-verified record %s: %s", self._verified_record, error)
            return None

    def _remember_verified(self, ref: ModelRef) -> None:
        if self._verified_record is None:
            return
        try:
            self._verified_record.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._verified_record.with_suffix(".tmp")
            tmp.write_text(json.dumps(dataclasses.asdict(ref)))
            tmp.replace(self._verified_record)
        except OSError as error:
            logger.warning("could not record the verified model version: %s", error)

    def _swapped(self, ref: ModelRef, deployment: Deployment) -> None:
        self._remember_verified(ref)
        self.metrics.model_swaps.inc()
        self.metrics.set_model(
            name=ref.name,
            version=ref.version,
            feature_service=deployment.feature_service,
            scorer=deployment.scorer_kind,
        )
        self._report_versions()

    def _load_failed(self, ref: ModelRef | None, error: Exception) -> None:
        reason = "registry_unreachable" if ref is None else type(error).__name__
        self.metrics.model_load_failures.labels(reason).inc()
        self._report_versions()

    def _report_versions(self) -> None:
        served, named = self.watcher.current_ref, self.watcher.registry_ref
        self.metrics.set_registry_version(
            name=named.name if named else None,
            version=named.version if named else None,
            matches=served is not None and served == named,
        )

    def ready(self) -> bool:
        return self.watcher.current is not None

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready to score (a model loaded and the online store answering), with the reason and
        the served versus registry version; also refreshes the version gauges."""
        watcher = self.watcher
        served, named = watcher.current_ref, watcher.registry_ref
        self._report_versions()
        detail: dict[str, Any] = {
            "served_version": served.version if served else None,
            "registry_version": named.version if named else None,
        }
        if watcher.problem:
            detail["model_problem"] = redact(watcher.problem)
        deployment = watcher.current
        if deployment is None:
            detail["reason"] = redact(watcher.problem or "no Production model is loaded yet")
            return False, detail
        problem = await deployment.reader.problem()
        if problem is not None:
            detail["reason"] = redact(problem)
            return False, detail
        return True, detail

    # -- requests --------------------------------------------------------------------------

    async def predict_ids(self, customer_ids: Sequence[str]) -> Answer | ApiError:
        if len(customer_ids) > self.settings.serving_max_ids:
            return ApiError(
                413,
                "too_many_items",
                f"at most {self.settings.serving_max_ids} customer ids per request, got {len(customer_ids)}",
                ("customer_ids",),
            )
        deployment = self.watcher.current
        if deployment is None:
            return ApiError(503, "model_unavailable", "no Production model is loaded yet")
        started = time.perf_counter()
        try:
            rows = await deployment.reader.fetch(customer_ids)
        except FeaturesUnavailable as error:
            return ApiError(503, "features_unavailable", f"online feature store unavailable ({error})")
        finally:
            self.metrics.feature_latency.observe(time.perf_counter() - started)
        problems: dict[str, int] = {}
        for r in rows:
            if r.status != RowStatus.OK:
                problems[r.status] = problems.get(r.status, 0) + 1
        for status, count in problems.items():
            self.metrics.child(self.metrics.feature_problems, status).inc(count)
        return await self._answer(deployment, rows, endpoint=PREDICT_ENDPOINT)

    async def predict_rows(self, rows: Sequence[FeatureRow]) -> Answer | ApiError:
        if len(rows) > self.settings.serving_max_rows:
            return ApiError(
                413, "too_many_items", f"at most {self.settings.serving_max_rows} rows per request", ("rows",)
            )
        deployment = self.watcher.current
        if deployment is None:
            return ApiError(503, "model_unavailable", "no Production model is loaded yet")
        online = [
            OnlineRow(
                customer_id=row.customer_id or "",
                features=row.features(),
                status=RowStatus.OK,
                event_timestamps={},
            )
            for row in rows
        ]
        return await self._answer(
            deployment, online, endpoint=WHAT_IF_ENDPOINT, ids=[r.customer_id for r in rows]
        )

    async def _answer(
        self,
        deployment: Deployment,
        rows: Sequence[OnlineRow],
        *,
        endpoint: str,
        ids: Sequence[str | None] | None = None,
    ) -> Answer:
        ref = deployment.model.ref
        started = time.perf_counter()
        if deployment.scorer_kind == "sklearn":
            scored = await asyncio.to_thread(score_rows, scorer=deployment.scorer, rows=rows)
        else:
            scored = score_rows(scorer=deployment.scorer, rows=rows)
        self.metrics.child(self.metrics.predict_latency, ref.version).observe(time.perf_counter() - started)
        if ids is not None:
            scored = [
                Scored(customer_id=cid, features=s.features, score=s.score, status=s.status)
                for cid, s in zip(ids, scored, strict=True)
            ]
        request_id = uuid.uuid4().hex
        self._record(
            deployment,
            scored,
            request_id=request_id,
            endpoint=endpoint,
            feature_times=[feature_time(r) for r in rows],
        )
        return Answer(
            model_name=ref.name, model_version=ref.version, request_id=request_id, predictions=tuple(scored)
        )

    def _record(
        self,
        deployment: Deployment,
        scored: Sequence[Scored],
        *,
        request_id: str,
        endpoint: str,
        feature_times: Sequence[datetime | None],
    ) -> None:
        ref = deployment.model.ref
        metrics = self.metrics
        by_status: dict[str, int] = {}
        histogram = metrics.child(metrics.scores, ref.version)
        for s in scored:
            by_status[s.status] = by_status.get(s.status, 0) + 1
            if s.score is not None:
                histogram.observe(s.score)
        for status, count in by_status.items():
            metrics.child(metrics.predictions, ref.version, status).inc(count)
        self.log.append_request(
            request_id=request_id,
            ts=self.settings.clock(),
            endpoint=endpoint,
            model_name=ref.name,
            model_version=ref.version,
            feature_service=deployment.feature_service,
            rows=scored,
            feature_times=feature_times,
        )

    # -- the published document ------------------------------------------------------------

    async def published_spec(
        self,
        spec: dict[str, Any],
        *,
        api_paths: tuple[str, ...],
        description: str,
        presented_key: bytes | None = None,
    ) -> dict[str, Any]:
        """BentoML's OpenAPI dict ``spec``, corrected (``serving.openapi``): the churnops version,
        ``description`` (in place of BentoML's Bento README), the Production model and request
        examples the online store answers ``ok`` for (with an API key set, only for a request that
        presents it: ``presented_key``)."""
        from importlib.metadata import version

        info = spec.get("info", {})
        deployment = self.watcher.current
        ref = deployment.model.ref if deployment is not None else None
        identity = Identity(
            title=str(info.get("title") or ""),
            version=version("churnops"),
            description=description,
            model_name=ref.name if ref else None,
            model_version=ref.version if ref else None,
            feature_service=deployment.feature_service if deployment is not None else None,
        )
        return corrected_spec(
            spec,
            api_paths=api_paths,
            max_ids=self.settings.serving_max_ids,
            max_rows=self.settings.serving_max_rows,
            identity=identity,
            # /docs.json is public (Swagger UI fetches it without credentials): with a key set, real
            # customers' ids and features are shown only to a request that presents the key.
            examples=(
                await self.examples()
                if authorized(expected=self.guard.api_key, presented=presented_key)
                else Examples()
            ),
        )

    async def examples(self, *, limit: int = 2) -> Examples:
        """Up to ``limit`` customers of the newest source rows whose online features are ``ok``
        now, and the first one's features as a what-if row (empty while nothing qualifies)."""
        deployment = self.watcher.current
        if deployment is None:
            return Examples()
        if not self._example_candidates:
            self._example_candidates = await asyncio.to_thread(
                newest_source_ids, store=self.store, layout=self._layout(deployment.feature_service)
            )
        try:
            rows = await deployment.reader.fetch(self._example_candidates)
        except FeaturesUnavailable as error:
            logger.info("no request examples for the OpenAPI document: %s", error)
            return Examples()
        ok = [r for r in rows if r.status == RowStatus.OK][:limit]
        if not ok:
            return Examples()
        try:
            row = FeatureRow.model_validate({**ok[0].features, "customer_id": ok[0].customer_id})
        except ValueError as error:
            logger.info("no what-if example for the OpenAPI document: %s", error)
            return Examples(customer_ids=tuple(r.customer_id for r in ok))
        return Examples(customer_ids=tuple(r.customer_id for r in ok), row=row.model_dump(mode="json"))

    async def refresh(self) -> bool:
        return await asyncio.to_thread(self.watcher.refresh, retry_now=True)

    def close(self) -> None:
        self.watcher.stop()
        self.log.close()


def newest_source_ids(*, store: Any, layout: ServiceLayout, limit: int = EXAMPLE_CANDIDATES) -> list[str]:
    """Ids of the newest rows of the service's first feature view's source: the row group with
    the latest event time (by the parquet statistics) is read, nothing else. Empty, and logged,
    when the source is not parquet files."""
    import glob

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    view = store.get_feature_view(next(iter(layout.ttl)))
    path = getattr(view.batch_source, "path", None)
    files = sorted(glob.glob(path)) if isinstance(path, str) else []
    best: tuple[Any, str, int] | None = None  # (newest event time, file, row group)
    for file in files:
        meta = pq.ParquetFile(file).metadata
        column = meta.schema.names.index(EVENT_TS) if EVENT_TS in meta.schema.names else None
        for group in range(meta.num_row_groups):
            stats = meta.row_group(group).column(column).statistics if column is not None else None
            newest = stats.max if stats is not None and stats.has_min_max else None
            if newest is not None and (best is None or newest > best[0]):
                best = (newest, file, group)
    if best is None:
        logger.info("no request examples: view %s has no parquet rows with event times (%r)", view.name, path)
        return []
    table = pq.ParquetFile(best[1]).read_row_group(best[2], columns=[JOIN_KEY, EVENT_TS])
    newest_rows = table.filter(pc.equal(table[EVENT_TS], pc.max(table[EVENT_TS])))
    return [str(i) for i in newest_rows[JOIN_KEY].to_pylist()[:limit]]
