"""The scoring routes answered by an ASGI middleware (``add_asgi_middleware``), in front of
BentoML's router.

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
middleware runs inside BentoML's timeout and concurrency middleware and inside ``FrontDoor``
(request metrics) and ``RequestGuard``, which has already checked the key, the content type and
the body size.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from serving.guard import ERROR_HEADER, RETRY_AFTER_SECONDS, ASGIApp, Receive, Scope, Send

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


MAX_ERRORS = 20  # problems listed in one 400; the message says how many more there were
_LOG_INTERVAL_S = 60.0


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "body"


_FIXES = {
    "missing": "add it",
    "extra_forbidden": "remove it (not a field of this request)",
    "json_invalid": "send a JSON object",
    "model_type": "send a JSON object",
    "model_attributes_type": "send a JSON object",
    "too_short": "send at least one item",
    "string_pattern_mismatch": "use printable ASCII without spaces, starting with a letter or digit",
    "string_too_short": "use a non-empty value",
    "string_too_long": "shorten it",
    "string_type": "send a JSON string",
    "int_type": "send a whole number",
    "int_from_float": "send a whole number",
    "float_type": "send a number",
    "finite_number": "send a finite number",
    "list_type": "send a JSON array",
    "too_long": "send fewer items",
}


def problem_detail(*, loc: tuple[int | str, ...], kind: str, msg: str) -> dict[str, Any]:
    """One problem: where (``loc``), what (``msg``), and how to fix it (in ``msg`` too)."""
    msg = msg.removeprefix("Value error, ")
    fix = _FIXES.get(kind)
    text = f"{msg}; {fix}" if fix else msg
    return {"type": kind, "loc": list(loc), "msg": text}


def validation_reply(error: ValidationError) -> Reply:
    """A 400 naming each refused field, the problem and the fix: at most ``MAX_ERRORS`` of them,
    with the count of the rest, and no internal class names or documentation URLs."""
    problems = error.errors(include_url=False, include_context=False, include_input=False)
    shown = [problem_detail(loc=tuple(p["loc"]), kind=p["type"], msg=p["msg"]) for p in problems[:MAX_ERRORS]]
    return _problems_reply(shown, total=len(problems))


def _problems_reply(shown: list[dict[str, Any]], *, total: int) -> Reply:
    first = shown[0]
    summary = f"{_where(tuple(first['loc']))}: {first['msg']}"
    if total == 1:
        message = f"invalid request: {summary}"
    else:
        message = f"invalid request, {total} problems; the first: {summary}"
        if total > len(shown):
            message += f" ({total - len(shown)} more not listed; fix these and send again)"
    return Reply(400, json_body({"error": message, "detail": shown}), "invalid_request")


class DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise DuplicateKey(key)
        seen[key] = value
    return seen


def duplicate_key(body: bytes) -> str | None:
    """The first key that appears twice in one JSON object of ``body`` (None: none, or not JSON:
    pydantic then says what is wrong). JSON parsers keep the last of two equal keys silently."""
    if b'"' not in body:
        return None
    try:
        json.loads(body, object_pairs_hook=_refuse_duplicates)
    except DuplicateKey as found:
        return found.key
    except ValueError:
        return None
    return None


class RefusalLog:
    """4xx answers logged at INFO without a traceback, at most one line per interval (with counts)."""

    def __init__(self, *, interval_s: float = _LOG_INTERVAL_S) -> None:
        self._interval = interval_s
        self._last = -interval_s
        self._counts: dict[int, int] = {}

    def note(self, status: int, summary: str) -> None:
        import time

        self._counts[status] = self._counts.get(status, 0) + 1
        now = time.monotonic()
        if now - self._last >= self._interval:
            counts = ", ".join(f"{n} x {code}" for code, n in sorted(self._counts.items()))
            logger.info(
                "refused requests in the last %.0f s: %s; latest: %s", self._interval, counts, summary[:200]
            )
            self._counts.clear()
            self._last = now


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
        self._refusals = RefusalLog()

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
        if reply.status == 503:
            headers.append((b"retry-after", RETRY_AFTER_SECONDS))
        if 400 <= reply.status < 500:
            self._refusals.note(reply.status, reply.body.decode("utf-8", "replace"))
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body})


async def _answer(route: DirectRoute, body: bytes) -> Reply:
    try:
        request = route.request_model.model_validate_json(body or b"{}")  # BentoML reads "" as {}
    except ValidationError as error:
        return validation_reply(error)
    repeated = duplicate_key(body)
    if repeated is not None:
        detail = problem_detail(
            loc=("body", repeated[:64]),
            kind="duplicate_key",
            msg="this key appears twice in one object; send each key once",
        )
        return _problems_reply([detail], total=1)
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
