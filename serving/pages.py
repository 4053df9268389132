"""Routes the service adds beside BentoML's: ``GET /docs`` (Swagger UI) and ``GET /metrics``.

A small Starlette app that ``serving.service`` mounts with ``@bentoml.asgi_app`` (BentoML's
documented way to add routes; it enters the app's lifespan and routes only the paths it has).

- ``/docs``: Swagger UI over the service's ``/docs.json``, from the Swagger UI files BentoML
  ships and serves at ``/static_content`` (nothing is loaded from another host: the page works
  offline, and BentoML's own index page at ``/`` also loads a tag manager from the internet).
- ``/metrics``: the Prometheus exposition of every metric of the service's workers
  (prometheus_client's multiprocess collector over ``PROMETHEUS_MULTIPROC_DIR``, which BentoML
  sets for each worker). BentoML's own request metrics are off (``serving.front`` says why),
  and with them BentoML's ``/metrics`` route.
"""

from __future__ import annotations

import asyncio
import html
import os
from typing import Any

SWAGGER_PAGE = """<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <title>{title}</title>
    <link rel="stylesheet" type="text/css" href="./static_content/swagger-ui.css" />
    <link rel="icon" type="image/png" href="./static_content/favicon-light-32x32.png" sizes="32x32" />
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="./static_content/swagger-ui-bundle.js" charset="UTF-8"></script>
    <script src="./static_content/swagger-ui-standalone-preset.js" charset="UTF-8"></script>
    <script>
      window.onload = function () {{
        window.ui = SwaggerUIBundle({{
          url: "./docs.json",
          dom_id: "#swagger-ui",
          deepLinking: true,
          presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
          layout: "BaseLayout",
        }});
      }};
    </script>
  </body>
</html>
"""


def exposition() -> tuple[bytes, str]:
    """The metrics of every worker of this service (or of this process when not under BentoML)."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def pages_app(*, title: str) -> Any:
    """The Starlette app with ``/docs`` and ``/metrics`` (built at import of the service module:
    BentoML reads mounted apps from the declaration; building it registers and opens nothing)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, Response
    from starlette.routing import Route

    page = SWAGGER_PAGE.format(title=html.escape(title))

    async def docs(_: Request) -> Response:
        return HTMLResponse(page)

    async def metrics(_: Request) -> Response:
        body, media_type = await asyncio.to_thread(exposition)
        return Response(body, media_type=media_type)

    return Starlette(
        routes=[Route("/docs", docs, methods=["GET", "HEAD"]), Route("/metrics", metrics, methods=["GET"])]
    )
