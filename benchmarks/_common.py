"""Shared bits of the benchmark scripts: run a case in a fresh process, report wall and peak RSS."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any


def peak_rss_mb() -> float:
    """This process's peak resident set size (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(script: str, case: str, *args: str) -> dict[str, Any]:
    """Run ``script --case CASE`` in a new interpreter so peak RSS belongs to that case alone."""
    out = subprocess.run(
        [sys.executable, script, "--case", case, *args], check=True, capture_output=True, text=True
    )
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1]
    result: dict[str, Any] = json.loads(line)
    return result


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def emit(result: dict[str, Any]) -> None:
    print(json.dumps(result), flush=True)
