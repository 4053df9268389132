"""A real 3-master Redis Cluster on loopback ports, started by the test that needs it.

``redis-server --cluster-enabled yes`` per node (no persistence, its own directory for
``nodes.conf``), then ``redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes``, then
wait until every node reports ``cluster_state:ok``. Each node also binds its cluster bus on
port + 10000, so ports are picked where both are free.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.conftest import service_missing

INSTALL_HOW = "install it with: apt-get install -y redis-server redis-tools"


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_ports(count: int) -> list[int]:
    """``count`` ports below 55535 whose port and cluster-bus port (+10000) are both free now."""
    picked: list[int] = []
    while len(picked) < count:
        port = random.randint(20_000, 55_000)
        if port not in picked and _free(port) and _free(port + 10_000):
            picked.append(port)
    return picked


class RedisCluster:
    """Three cluster-enabled redis-server children forming one cluster (0 replicas)."""

    def __init__(self, *, workdir: Path, nodes: int = 3) -> None:
        self.workdir = workdir
        self.count = nodes
        self.ports: list[int] = []
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """``CHURNOPS_REDIS_URL`` naming every node."""
        return "redis://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def start(self, *, timeout_s: float = 30.0) -> RedisCluster:
        server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if server is None or cli is None:
            service_missing("redis-server and redis-cli", INSTALL_HOW, FileNotFoundError("redis-server"))
            raise AssertionError("unreachable")
        self.ports = cluster_ports(self.count)
        for port in self.ports:
            directory = self.workdir / str(port)
            directory.mkdir(parents=True, exist_ok=True)
            log = (directory / "redis.log").open("wb")
            self.processes.append(
                subprocess.Popen(
                    [
                        server,
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        str(directory / "nodes.conf"),
                        "--cluster-node-timeout",
                        "5000",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                        str(directory),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            log.close()
        try:
            for port in self.ports:
                self._wait(cli, port, ["ping"], "PONG", timeout_s)
            subprocess.run(
                [
                    cli,
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{p}" for p in self.ports),
                    "--cluster-replicas",
                    "0",
                    "--cluster-yes",
                ],
                check=True,
                capture_output=True,
                timeout=timeout_s,
            )
            for port in self.ports:
                self._wait(cli, port, ["cluster", "info"], "cluster_state:ok", timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait(self, cli: str, port: int, command: list[str], expect: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"a cluster node exited with {process.returncode}; see {self.workdir}")
            done = subprocess.run(
                [cli, "-p", str(port), *command], capture_output=True, text=True, timeout=5, check=False
            )
            if expect in done.stdout:
                return
            time.sleep(0.1)
        raise RuntimeError(f"node {port}: no {expect!r} within {timeout_s:.0f} s; see {self.workdir}")

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self.processes = []
