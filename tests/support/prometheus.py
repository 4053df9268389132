"""Real ``prometheus`` and ``prometheus-pushgateway`` daemons for tests (Debian packages).

Each runs as a child of the test on a free loopback port with its own temp config and storage,
never the system service. A missing binary skips the test with how to install it, and fails it
under ``CI=true`` (tests/conftest.py's rule).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.conftest import service_missing
from tests.support.serving_env import free_port

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_YML = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
# Grafana's $__rate_interval is at least four scrape intervals; the tests scrape every 2 s.
SCRAPE_INTERVAL = "2s"
RATE_INTERVAL = "30s"

INSTALL_HOW = (
    "install it with: apt-get update && apt-get install -y --no-install-recommends "
    "prometheus prometheus-pushgateway prometheus-alertmanager"
)


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        service_missing(name, INSTALL_HOW, FileNotFoundError(name))
        raise AssertionError("unreachable")  # service_missing skips or fails
    return path


class Daemon:
    """A loopback daemon that answers ``GET /-/ready`` once it is up."""

    name = ""

    def __init__(self, *, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str] | None:
        """The child's environment (None: this process's)."""
        return None

    def start(self, *, timeout_s: float = 30.0, attempts: int = 3) -> None:
        """Start and wait for ``/-/ready``; a port taken in the meantime gets a new one (bounded)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"{self.name}.log"
        for attempt in range(attempts):
            self._log = self.log_path.open("wb")
            self.process = subprocess.Popen(
                self.argv(),
                cwd=self.workdir,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=self.environment(),
            )
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    code = self.process.returncode
                    self.process = None
                    self._log.close()
                    if "address already in use" in self.log_path.read_text() and attempt + 1 < attempts:
                        self.port = free_port()  # another process took the port between pick and bind
                        break
                    raise RuntimeError(f"{self.name} exited with {code}; see {self.log_path}")
                try:
                    if httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            else:
                self.stop()
                raise RuntimeError(f"{self.name} was not ready within {timeout_s:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None
            self._log.close()


class Pushgateway(Daemon):
    name = "prometheus-pushgateway"

    def argv(self) -> list[str]:
        # In memory only: the Debian package's default persistence file
        # (/var/lib/prometheus/pushgateway.data) is shared by every gateway on the host, so a
        # fresh one would start with what other tests (other checkouts) pushed.
        return [binary(self.name), f"--web.listen-address=127.0.0.1:{self.port}", "--persistence.file="]


class Prometheus(Daemon):
    """Prometheus with ``config`` (a prometheus.yml mapping) and rule files copied next to it."""

    name = "prometheus"

    def __init__(self, *, workdir: Path, config: dict[str, Any], rule_files: tuple[Path, ...] = ()) -> None:
        super().__init__(workdir=workdir)
        self.config = config
        self.rule_files = rule_files

    def argv(self) -> list[str]:
        for rule in self.rule_files:
            shutil.copy(rule, self.workdir / rule.name)
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config), encoding="utf-8")
        return [
            binary(self.name),
            f"--config.file={config}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]

    def query(self, expr: str, *, at: float | None = None) -> dict[str, Any]:
        """``/api/v1/query``: the ``data`` of a successful answer; a PromQL error raises with its text."""
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = at
        response = httpx.get(f"{self.url}/api/v1/query", params=params, timeout=10)
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise AssertionError(
                f"{expr!r}: {response.status_code} {body.get('errorType')}: {body.get('error')}"
            )
        data: dict[str, Any] = body["data"]
        return data


def scrape_config(*, serving: str | None, gateway: str, alertmanager: str | None = None) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with this test's targets and a short scrape/evaluation
    interval; its ``alerting`` block points at ``alertmanager`` (host:port), or is dropped."""
    config = yaml.safe_load(PROMETHEUS_YML.read_text(encoding="utf-8"))
    config["global"].update(scrape_interval=SCRAPE_INTERVAL, evaluation_interval="1s")
    (alertmanagers,) = config["alerting"]["alertmanagers"]
    if alertmanager is None:
        del config["alerting"]
    else:
        assert [t for sc in alertmanagers["static_configs"] for t in sc["targets"]] == ["alertmanager:9093"]
        alertmanagers["static_configs"] = [{"targets": [alertmanager]}]
    targets = {"pushgateway": gateway} | ({} if serving is None else {"churnops-serving": serving})
    jobs = [job for job in config["scrape_configs"] if job["job_name"] in targets]
    assert {job["job_name"] for job in jobs} == set(targets), "prometheus.yml lost a scrape job"
    for job in jobs:
        job["scrape_interval"] = SCRAPE_INTERVAL
        for static in job["static_configs"]:
            static["targets"] = [targets[job["job_name"]]]
    config["scrape_configs"] = jobs
    return config


def first_data(prometheus: Prometheus, expr: str, *, timeout_s: float = 20.0) -> list[Any]:
    """The first non-empty result of ``expr`` within ``timeout_s`` (else empty).

    A scrape that times out on a loaded machine marks the target's series stale until the next
    good scrape, so an instant query is retried for a few scrape intervals before it counts as
    returning nothing.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        result = list(prometheus.query(expr)["result"])
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def wait_for(prometheus: Prometheus, expr: str, *, timeout_s: float = 60.0) -> list[Any]:
    result = first_data(prometheus, expr, timeout_s=timeout_s)
    if not result:
        raise AssertionError(f"{expr!r} returned nothing for {timeout_s:.0f} s")
    return result


def send_traffic(*, service: Any, env: Any, api_key: str) -> list[str]:
    """Scores (ok, unknown and stale rows), a what-if row, a bad request and an unauthorized one."""
    ids = [*env.customer_ids[:20], "NOPE-0001", env.stale_ids[0]]
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=service.url, headers=headers, timeout=10) as client:
        for start in range(0, len(ids), 5):
            response = client.post("/predict", json={"customer_ids": ids[start : start + 5]})
            assert response.status_code == 200, response.text
        assert client.post("/predict", json={"customer_ids": []}).status_code == 400
    assert httpx.post(f"{service.url}/predict", json={"customer_ids": ids[:1]}, timeout=10).status_code == 401
    return ids


def dashboard_exprs() -> list[tuple[str, str]]:
    """Every PromQL target of every Grafana dashboard, named by dashboard, panel and refId."""
    out = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text(encoding="utf-8"))["panels"]:
            for inner in [panel, *panel.get("panels", [])]:
                for target in inner.get("targets", []):
                    out.append((f"{path.stem}: {inner['title']} [{target['refId']}]", target["expr"]))
    return out
