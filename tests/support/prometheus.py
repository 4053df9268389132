"""Real ``prometheus`` and ``prometheus-pushgateway`` daemons for tests (Debian packages).

Each runs as a child of the test on a free loopback port with its own temp config and storage,
never the system service. A missing binary skips the test with how to install it, and fails it
under ``CI=true`` (tests/conftest.py's rule).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.conftest import service_missing
from tests.support.serving_env import free_port

INSTALL_HOW = (
    "install it with: apt-get update && apt-get install -y --no-install-recommends "
    "prometheus prometheus-pushgateway"
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

    def start(self, *, timeout_s: float = 30.0, attempts: int = 3) -> None:
        """Start and wait for ``/-/ready``; a port taken in the meantime gets a new one (bounded)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"{self.name}.log"
        for attempt in range(attempts):
            self._log = self.log_path.open("wb")
            self.process = subprocess.Popen(
                self.argv(), cwd=self.workdir, stdout=self._log, stderr=subprocess.STDOUT
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
        return [binary(self.name), f"--web.listen-address=127.0.0.1:{self.port}"]


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
