"""A unit test needs no service and no subprocess: this makes the rule a failure, not a convention.

Every test under ``tests/unit`` runs with outgoing TCP/UDP connections and new processes
refused (``socket.connect`` on an internet address, ``subprocess.Popen``, ``os.system``).
A test that needs Redis, PostgreSQL, an MLflow server, promtool, Chromium or a CLI in a child
process belongs in ``tests/integration``. Unix sockets, socket pairs (asyncio's self-pipe) and
in-process HTTP (Starlette's TestClient) stay allowed: they are not services.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

_WHY = "tests/unit needs no service and no subprocess: move this test to tests/integration"


# What libraries run on their own to learn about the machine (not a service, not the test's
# doing), by program name and leading arguments: joblib/loky counting physical cores, GitPython (through
# MLflow) asking git's version, the platform module's processor name, ctypes finding a library.
LIBRARY_PROBES = frozenset(
    {
        ("lscpu", "--parse=core"),
        ("cat", "/proc/cpuinfo"),
        ("git", "version"),
        ("git", "check-ignore"),  # MLflow asking whether a run's source directory is ignored
        ("uname", "-p"),
        ("ldconfig", "-p"),
    }
)


class UnitBoundaryError(RuntimeError):
    """A unit test reached for a service or a subprocess."""


@pytest.fixture(autouse=True, scope="module")
def _no_services_no_subprocesses(request: pytest.FixtureRequest) -> Iterator[None]:
    """Module-scoped and autouse, so it is in place before any other module fixture is built."""
    if request.node.get_closest_marker("launches_on_purpose") is not None:
        yield  # a hostile payload shown live: starting a process is what it is meant to do
        return
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield from _guarded(monkeypatch)


def _guarded(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_popen = subprocess.Popen.__init__
    refused: list[str] = []

    def _refuse_inet(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            refused.append(f"connect to {address!r}")
            sock.close()  # refused here: nothing of it may leak into a later test's GC
            raise UnitBoundaryError(f"{_WHY} (connect to {address!r})")

    def connect(self: socket.socket, address: Any) -> None:
        _refuse_inet(self, address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _refuse_inet(self, address)
        return real_connect_ex(self, address)

    def popen(*args: Any, **kwargs: Any) -> Any:
        argv = args[1] if len(args) > 1 else kwargs.get("args")
        listed = isinstance(argv, list | tuple) and bool(argv)
        command = (os.path.basename(str(argv[0])), *map(str, argv[1:])) if listed else ()
        if command and any(command[: len(probe)] == probe for probe in LIBRARY_PROBES):
            return real_popen(*args, **kwargs)
        refused.append(f"subprocess {args[1] if len(args) > 1 else kwargs.get('args')!r}")
        raise UnitBoundaryError(f"{_WHY} (subprocess {args[1] if len(args) > 1 else kwargs.get('args')!r})")

    def system(command: str) -> int:
        refused.append(f"os.system {command!r}")
        raise UnitBoundaryError(f"{_WHY} (os.system {command!r})")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(subprocess.Popen, "__init__", popen)
    monkeypatch.setattr(os, "system", system)
    yield
    # A caller that swallowed the refusal (a reachability probe, a retry loop) still fails here.
    if refused:
        pytest.fail(f"{_WHY}: {'; '.join(refused)}", pytrace=False)
