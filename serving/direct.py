"""The scoring routes answered in the ASGI layer, in front of BentoML's router.

Why (profiled in process on the real app, sequential 1-id ``/predict``, p50 per layer): of
~1.6 ms, BentoML's per-call machinery for an API method took ~0.6 ms (request context, router,
IO descriptor parsing, ``inspect.signature`` of the method and a deprecation warning on every
call, the response model and its serialization, response headers, background tasks) while the
Redis read took ~0.55 ms and everything else of ours ~0.2 ms. With this module the whole app
takes ~0.5 ms, ~0.28 ms of it the Redis read. Here
the body is validated by the same classes BentoML validates with (the service's own IO
descriptors, so every 400 is the body BentoML would send, byte for byte), the same ``Runtime``
answers, and the JSON is written once. Everything else (``/livez``, ``/readyz``, ``/metrics``,
``/model/refresh``, the OpenAPI docs, other methods and paths) goes on to BentoML, and the
middleware runs inside BentoML's own metrics, timeout and concurrency middleware and inside
``RequestGuard``, which has already checked the key, the content type and the body size.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from serving.guard import ERROR_HEADER, ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)

# What BentoML answers for an exception it did not expect (``api_endpoint_wrapper``).
INTERNAL_ERROR = {"error": "An unexpected error has occurred, please check the server log."}


@dataclass(frozen=True)
class Reply:
    """A finished response: status, JSON body, and the error reason header (if any)."""

    status: int
    body: bytes
    reason: str | None = None


@dataclass(frozen=True)
class DirectRoute:
    """One POST route: ``request_model`` validates the JSON body, ``answer`` turns it into a reply."""

    request_model: type[BaseModel]
    answer: Callable[[Any], Awaitable[Reply]]


def json_body(content: Any) -> bytes:
    """JSON the way Starlette's ``JSONResponse`` renders it (what BentoML sends for errors)."""
    text = json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))
    return text.encode("utf-8")


def validation_reply(error: ValidationError) -> Reply:
    """BentoML's 400 for a request its IO descriptor refuses (same text, same detail list)."""
    data = {
        "error": f"{error.error_count()} validation error for {error.title}",
        "detail": error.errors(include_context=False, include_input=False),
    }
    return Reply(400, json_body(data))


class DirectRoutes:
    """ASGI middleware; ``routes`` is resolved lazily (the service instance exists after start-up)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Callable[[], Mapping[str, DirectRoute] | None],
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        self.app = app
        self._resolve = routes
        self._routes: Mapping[str, DirectRoute] | None = None
        self._headers = [(b"content-type", b"application/json"), *headers]

    def routes(self) -> Mapping[str, DirectRoute] | None:
        if self._routes is None:
            self._routes = self._resolve()
        return self._routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = None
        if scope["type"] == "http" and scope.get("method") == "POST":
            routes = self.routes()
            route = routes.get(scope["path"]) if routes is not None else None
        if route is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            return  # the client went away
        reply = await _answer(route, body)
        headers = [*self._headers, (b"content-length", str(len(reply.body)).encode())]
        if reply.reason is not None:
            headers.append((ERROR_HEADER, reply.reason.encode("latin-1")))
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body})


async def _answer(route: DirectRoute, body: bytes) -> Reply:
    try:
        request = route.request_model.model_validate_json(body or b"{}")  # BentoML reads "" as {}
    except ValidationError as error:
        return validation_reply(error)
    try:
        return await route.answer(request)
    except Exception:
        logger.exception("unexpected error answering a request")
        return Reply(500, json_body(INTERNAL_ERROR))


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
