"""The outermost ASGI layer: bounded path labels, and ``/readyz`` with its reason.

BentoML's own request metrics label every request with its raw path, so 5,000 requests to
distinct unknown paths made 100,000 series and /metrics timed out. BentoML offers no setting
for it and its metrics middleware is the outermost one it builds, so this layer wraps the
whole app (``serving.service`` installs it in ``to_asgi``): a path that is not one of the
app's routes (or a file of a static mount) is rewritten to ``other`` before anything inside
sees it. The router then answers 404 for it exactly as before, and every label value comes
from a fixed set (a NUL byte or any other unknown path never reaches a label).

``/readyz`` is answered here from ``readiness()`` (JSON with the reason and the served versus
registry version, 503 with ``Retry-After`` when not ready) instead of BentoML's fixed text.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from serving.guard import ASGIApp, Receive, Scope, Send

OTHER_PATH = "other"
READYZ = "/readyz"


def known_paths(app: Any) -> frozenset[str]:
    """Every path ``app`` (a Starlette app) answers: its routes and the files of its static mounts."""
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    paths: set[str] = set()
    for route in getattr(app, "routes", []):
        if isinstance(route, Route) and "{" not in route.path:
            paths.add(route.path)
        elif isinstance(route, Mount) and isinstance(route.app, StaticFiles) and route.app.directory:
            root = Path(route.app.directory)
            files = (f for f in root.rglob("*") if f.is_file())
            paths.update(f"{route.path}/{f.relative_to(root).as_posix()}" for f in files)
    return frozenset(paths)


class FrontDoor:
    """ASGI wrapper: unknown paths become ``other``; ``GET /readyz`` answers ``readiness()``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        known: Iterable[str],
        readiness: Callable[[], Awaitable[tuple[bool, dict[str, Any]]]] | None = None,
    ) -> None:
        self.app = app
        self._known = frozenset(known)
        self._readiness = readiness

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            path = scope.get("path")
            if path not in self._known:
                scope["path"] = OTHER_PATH
                scope["raw_path"] = OTHER_PATH.encode()
            elif (
                path == READYZ
                and self._readiness is not None
                and scope["type"] == "http"
                and scope.get("method") in ("GET", "HEAD")
            ):
                await self._ready(send)
                return
        await self.app(scope, receive, send)

    async def _ready(self, send: Send) -> None:
        assert self._readiness is not None
        ready, detail = await self._readiness()
        body = json.dumps({"ready": ready, **detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if not ready:
            headers.append((b"retry-after", b"1"))
        await send({"type": "http.response.start", "status": 200 if ready else 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})
