"""The ASGI guard in front of the API routes: auth, content type, body size, latency and error metrics.

An ASGI middleware the service adds with ``add_asgi_middleware`` (after ``serving.front``),
inside BentoML's timeout and concurrency middleware. It refuses before BentoML parses anything:
401 without the API key, 415 for a content type other than JSON (BentoML's
``application/vnd.bentoml+pickle`` included), 413 for a body over the limit (by Content-Length,
and by counting a chunked body). Health, readiness and /metrics pass
through untouched so the scraper and probes never need the key. Every API response's latency
is observed by endpoint, and every error is counted by reason (the service names its own
reasons in the ``x-churnops-error`` header; a 400 from BentoML's validation is
``invalid_request``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from churnops.contracts.clock import wall_clock
from serving.auth import authorized, presented_key
from serving.validation import error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ERROR_HEADER = b"x-churnops-error"
SIGNATURE_HEADER = b"x-mlflow-signature"
JSON_TYPES = (b"application/json", b"")
_STATUS_REASON = {
    400: "invalid_request",
    401: "unauthorized",
    408: "body_timeout",
    413: "body_too_large",
    415: "unsupported_media_type",
}
RETRY_AFTER_SECONDS = b"1"


@dataclass(frozen=True)
class GuardConfig:
    """What the guard enforces, and where it reports (resolved from the running service)."""

    api_key: bytes | None
    max_body_bytes: int
    body_timeout_s: float = 5.0
    max_pending_bodies: int = 64
    webhook_path: str | None = None
    webhook_secret: bytes | None = None
    observe: Callable[[str, int, float], None] = lambda endpoint, status, seconds: None
    count_error: Callable[[str], None] = lambda reason: None


class RequestGuard:
    """ASGI middleware; ``config`` is resolved lazily (the service instance exists after start-up)."""

    def __init__(
        self, app: ASGIApp, *, config: Callable[[], GuardConfig | None], paths: tuple[str, ...]
    ) -> None:
        self.app = app
        self._resolve = config
        self._config: GuardConfig | None = None
        self._paths = frozenset(paths)
        self._pending = 0  # requests whose body is still arriving (one event loop per worker)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") not in self._paths:
            await self.app(scope, receive, send)
            return
        config = self._config
        if config is None:  # resolved once the service has started, then kept
            config = self._config = self._resolve()
        if config is None:
            await _reply(send, 503, error_body(message="service is starting", code="model_unavailable"))
            return
        start = time.perf_counter()
        endpoint = str(scope["path"])
        status = await self._guarded(config, scope, receive, send)
        config.observe(endpoint, status, time.perf_counter() - start)

    async def _guarded(self, config: GuardConfig, scope: Scope, receive: Receive, send: Send) -> int:
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        key_ok = authorized(expected=config.api_key, presented=presented_key(headers))
        # An MLflow registry webhook cannot send the API key; it signs the body instead.
        signed = (
            not key_ok
            and config.webhook_secret is not None
            and scope.get("path") == config.webhook_path
            and any(name == SIGNATURE_HEADER for name, _ in headers)
        )
        if not key_ok and not signed:
            return await _unauthorized(config, send)
        if scope.get("method") != "POST":
            return await self._forward(config, scope, receive, send)
        content_type = b""
        length: int | None = None
        for name, value in headers:
            if name == b"content-type":
                content_type = value.split(b";")[0].strip().lower()
            elif name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = None
        if content_type not in JSON_TYPES:
            config.count_error("unsupported_media_type")
            body = error_body(
                message=f"content type {content_type.decode('latin-1')[:80]!r} is not accepted; "
                "send application/json",
                code="unsupported_media_type",
                loc=["header", "content-type"],
            )
            await _reply(send, 415, body)
            return 415
        limit = config.max_body_bytes
        if length is not None and length > limit:
            config.count_error("body_too_large")
            await _reply(send, 413, _too_large(limit))
            return 413

        # Read the whole body here (bounded in size, time and in how many requests may be
        # receiving one at once), then replay it: BentoML turns any exception raised while it
        # reads into a 500. A client that sends its body slowly holds one of BentoML's
        # concurrency slots until the body deadline, and at most max_pending_bodies of them do
        # (the service caps it at half of BentoML's max_concurrency), so
        # slow clients never take the slots real requests need.
        read = await self._read_body(config, receive, send)
        if isinstance(read, int):
            return read
        payload = read
        if signed and not mlflow_signature_valid(
            secret=config.webhook_secret or b"",
            headers=headers,
            body=payload,
            now=wall_clock().timestamp(),  # signatures are checked against the real clock
        ):
            return await _unauthorized(config, send)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": payload, "more_body": False}
            return await receive()

        return await self._forward(config, scope, replay, send)

    async def _read_body(self, config: GuardConfig, receive: Receive, send: Send) -> bytes | int:
        """The body, or the status already answered (408 too slow, 413 too large, 503 too many
        slow bodies at once, 499 the client left). A body complete in its first message (every
        ordinary client) needs no slot; only a body still arriving takes one of
        ``max_pending_bodies``."""
        limit = config.max_body_bytes
        chunks: list[bytes] = []
        seen = 0
        pending = False
        refusal: tuple[int, str, str] | None = None
        try:
            async with asyncio.timeout(config.body_timeout_s):
                while True:
                    message = await receive()
                    if message["type"] != "http.request":
                        return 499  # client went away
                    chunk = message.get("body", b"")
                    seen += len(chunk)
                    if seen > limit:
                        refusal = (413, "body_too_large", f"request body exceeds {limit} bytes")
                        break
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
                    if not pending:
                        if self._pending >= config.max_pending_bodies:
                            refusal = (
                                503,
                                "too_many_slow_bodies",
                                f"more than {config.max_pending_bodies} request bodies are arriving "
                                "slowly at once; send the body with the headers, or retry",
                            )
                            break
                        pending = True
                        self._pending += 1
        except TimeoutError:
            late = f"the request body did not arrive within {config.body_timeout_s:g} s"
            refusal = (408, "body_timeout", late)
        finally:
            if pending:
                self._pending -= 1
        assert refusal is not None
        status, code, text = refusal
        config.count_error(code)
        await _reply(send, status, error_body(message=text, code=code, loc=["body"]))
        return status

    async def _forward(self, config: GuardConfig, scope: Scope, receive: Receive, send: Send) -> int:
        status = 500

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if status >= 400:
                    reason = None
                    for name, value in message.get("headers", []):
                        if name == ERROR_HEADER:
                            reason = value.decode("latin-1")
                    config.count_error(
                        reason
                        or _STATUS_REASON.get(status)
                        or ("invalid_request" if status < 500 else "internal")
                    )
            await send(message)

        await self.app(scope, receive, observed_send)
        return status


async def _unauthorized(config: GuardConfig, send: Send) -> int:
    config.count_error("unauthorized")
    body = error_body(
        message="missing or wrong API key", code="unauthorized", loc=["header", "authorization"]
    )
    await _reply(send, 401, body, extra=[(b"www-authenticate", b"Bearer")])
    return 401


def mlflow_signature_valid(
    *, secret: bytes, headers: list[tuple[bytes, bytes]], body: bytes, now: float, max_age_s: float = 300
) -> bool:
    """MLflow webhook signature: ``v1,base64(HMAC-SHA256(secret, f"{delivery_id}.{timestamp}.{body}"))``."""
    found = dict(headers)
    signature = found.get(SIGNATURE_HEADER, b"")
    delivery = found.get(b"x-mlflow-delivery-id", b"")
    stamp = found.get(b"x-mlflow-timestamp", b"")
    try:
        age = abs(now - int(stamp))
    except ValueError:
        return False
    if not signature.startswith(b"v1,") or not delivery or age > max_age_s:
        return False
    digest = hmac.new(secret, delivery + b"." + stamp + b"." + body, hashlib.sha256).digest()
    return hmac.compare_digest(base64.b64encode(digest), signature[3:])


def _too_large(limit: int) -> dict[str, Any]:
    return error_body(message=f"request body exceeds {limit} bytes", code="body_too_large", loc=["body"])


async def _reply(
    send: Send, status: int, body: dict[str, Any], extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = json.dumps(body).encode("utf-8")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (ERROR_HEADER, str(body["detail"][0]["type"]).encode("latin-1")),
        *(extra or []),
    ]
    if status == 503:
        headers.append((b"retry-after", RETRY_AFTER_SECONDS))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
