"""A real ``prometheus-alertmanager`` (Debian package) and a local webhook sink for tests.

Alertmanager is started through the repo's own ``deploy/alertmanager/start.sh`` (which renders
the webhook URL into the config, as compose and Kubernetes do) with a test copy of
``alertmanager.yml`` whose only change is shorter timings; it runs as a child of the test on a
free loopback port with its own storage directory. The sink is an ``http.server`` in a thread
that records every POST body.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from tests.support.prometheus import Daemon, binary

ROOT = Path(__file__).resolve().parents[2]
ALERTMANAGER_DIR = ROOT / "deploy" / "alertmanager"
ALERTMANAGER_YML = ALERTMANAGER_DIR / "alertmanager.yml"
START_SH = ALERTMANAGER_DIR / "start.sh"
BINARY = "prometheus-alertmanager"
# Test timings: a group is flushed 1 s after its first alert, new alerts of a flushed group wait
# 1 s more; nothing is repeated within a test.
GROUP_WAIT_S = 1.0
TIMINGS = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"}


def fast_config() -> dict[str, Any]:
    """deploy/alertmanager/alertmanager.yml with test timings (routes, receivers, inhibition kept)."""
    config: dict[str, Any] = yaml.safe_load(ALERTMANAGER_YML.read_text(encoding="utf-8"))
    config["route"].update(TIMINGS)
    for route in config["route"].get("routes", []):
        if "repeat_interval" in route:
            route["repeat_interval"] = TIMINGS["repeat_interval"]
    return config


class Alertmanager(Daemon):
    """``start.sh`` -> ``prometheus-alertmanager`` with ``config`` sending to ``webhook_url``."""

    name = "alertmanager"

    def __init__(self, *, workdir: Path, webhook_url: str, config: dict[str, Any] | None = None) -> None:
        super().__init__(workdir=workdir)
        self.webhook_url = webhook_url
        self.config = config if config is not None else fast_config()
        self.cluster_port = 0

    def argv(self) -> list[str]:
        template = self.workdir / "alertmanager.template.yml"
        template.write_text(yaml.safe_dump(self.config), encoding="utf-8")
        return [
            "/bin/sh",
            str(START_SH),
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--web.external-url=http://127.0.0.1:{self.port}",
            "--cluster.listen-address=",  # no gossip port: one instance, nothing to clash with
        ]

    def environment(self) -> dict[str, str]:
        import os

        return {
            **os.environ,
            "ALERTMANAGER_WEBHOOK_URL": self.webhook_url,
            "ALERTMANAGER_TEMPLATE": str(self.workdir / "alertmanager.template.yml"),
            "ALERTMANAGER_RENDERED": str(self.workdir / "alertmanager.yml"),
            "ALERTMANAGER_BIN": binary(BINARY),  # skips (fails under CI) with how to install it
        }

    def alerts(self) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts``: every alert Alertmanager holds, with its status."""
        import httpx

        response = httpx.get(f"{self.url}/api/v2/alerts", timeout=10)
        response.raise_for_status()
        alerts: list[dict[str, Any]] = response.json()
        return alerts


class WebhookSink:
    """A local HTTP server recording the JSON of every POST (Alertmanager's webhook payloads)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"null")
                with sink._lock:
                    sink.received.append(body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return  # the test reads .received; no stderr noise

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/alertmanager"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def notifications(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.received)

    def wait_for(self, count: int, *, timeout_s: float) -> list[dict[str, Any]]:
        """The notifications once at least ``count`` arrived, or all there are at the deadline."""
        deadline = time.monotonic() + timeout_s
        while True:
            got = self.notifications()
            if len(got) >= count or time.monotonic() > deadline:
                return got
            time.sleep(0.05)
