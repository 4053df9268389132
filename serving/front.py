"""The outermost of the service's ASGI middlewares: request metrics with a bounded path label,
``/readyz`` with its reason, and the published OpenAPI document.

BentoML 1.4's own HTTP metrics label every request with its raw path (5,000 requests to
distinct unknown paths made 100,000 series and /metrics timed out). BentoML has no setting for
that label, and its metrics middleware is the outermost one it builds, so nothing added through
its documented hooks runs before it. The service therefore turns those metrics off
(``metrics={"enabled": False}``, a documented setting) and this middleware observes every
request instead, in ``churnops_http_request_duration_seconds``, with an ``endpoint`` label
from a fixed set: a route of the service, else ``other`` (a NUL byte or any other unknown path
never reaches a label). ``/metrics`` itself is served by the mounted ``serving.pages`` app.

It is added first with ``Service.add_asgi_middleware``, so it runs inside BentoML's timeout and
concurrency middleware and in front of ``RequestGuard``, ``DirectRoutes`` and BentoML's router.
A middleware may answer a request itself: ``GET /readyz`` is answered here from
``readiness()`` (JSON with the reason and the served versus registry version, 503 with
``Retry-After`` when not ready) instead of BentoML's fixed text, and ``GET /docs.json`` with
``spec()`` (BentoML's document corrected by ``serving.openapi``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from serving.guard import ASGIApp, Message, Receive, Scope, Send

OTHER_PATH = "other"
READYZ = "/readyz"
SPEC = "/docs.json"


@dataclass(frozen=True)
class FrontHooks:
    """What the front door reports to and answers from (resolved from the running service)."""

    observe: Callable[[str, int, float], None]
    readiness: Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]
    spec: Callable[[Sequence[tuple[bytes, bytes]]], Awaitable[dict[str, Any]]]
    """The OpenAPI document for a request with these headers (its examples need the API key)."""


class FrontDoor:
    """ASGI middleware; ``hooks`` is resolved lazily (the service instance exists after start-up)."""

    def __init__(self, app: ASGIApp, *, known: Iterable[str], hooks: Callable[[], FrontHooks | None]) -> None:
        self.app = app
        self._known = frozenset(known)
        self._resolve = hooks
        self._hooks: FrontHooks | None = None

    def hooks(self) -> FrontHooks | None:
        if self._hooks is None:
            self._hooks = self._resolve()
        return self._hooks

    def label(self, path: object) -> str:
        """The ``endpoint`` label of a path: the path when it is a route, else ``other``."""
        return path if isinstance(path, str) and path in self._known else OTHER_PATH

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        hooks = self.hooks()
        endpoint = self.label(scope.get("path"))
        if scope.get("method") in ("GET", "HEAD") and endpoint in (READYZ, SPEC):
            if endpoint == READYZ:
                await _ready(hooks, send)
                return
            if hooks is not None:
                await _json(send, 200, await hooks.spec(scope.get("headers") or []))
                return
        if hooks is None:  # starting: nothing to report to yet
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            hooks.observe(endpoint, status, time.perf_counter() - start)


async def _ready(hooks: FrontHooks | None, send: Send) -> None:
    if hooks is None:
        ready, detail = False, {"reason": "the service is starting"}
    else:
        ready, detail = await hooks.readiness()
    extra = [] if ready else [(b"retry-after", b"1")]
    await _json(send, 200 if ready else 503, {"ready": ready, **detail}, extra)


async def _json(
    send: Send, status: int, content: dict[str, Any], extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps(content).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*headers, *(extra or [])]})
    await send({"type": "http.response.body", "body": body})
