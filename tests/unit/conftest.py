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
from typing import Any

import pytest

_WHY = "tests/unit needs no service and no subprocess: move this test to tests/integration"


class UnitBoundaryError(RuntimeError):
    """A unit test reached for a service or a subprocess."""


@pytest.fixture(autouse=True)
def _no_services_no_subprocesses(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("launches_on_purpose") is not None:
        return  # a hostile payload shown live: starting a process is what it is meant to do
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def _refuse_inet(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            raise UnitBoundaryError(f"{_WHY} (connect to {address!r})")

    def connect(self: socket.socket, address: Any) -> None:
        _refuse_inet(self, address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _refuse_inet(self, address)
        return real_connect_ex(self, address)

    def popen(*args: Any, **kwargs: Any) -> Any:
        raise UnitBoundaryError(f"{_WHY} (subprocess {args[1] if len(args) > 1 else kwargs.get('args')!r})")

    def system(command: str) -> int:
        raise UnitBoundaryError(f"{_WHY} (os.system {command!r})")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(subprocess.Popen, "__init__", popen)
    monkeypatch.setattr(os, "system", system)
