"""How to write a follow-up command so that it runs as printed in the user's shell.

``./dev demo`` and ``uv run churnops ...`` run inside uv's environment, but the user's shell
does not have ``.venv/bin`` on its PATH afterwards: a bare ``churnops serve`` or ``mlflow ui``
would fail there. Inside ``uv run`` the prefix is ``uv run``; with the environment's ``bin``
on PATH (an activated venv, a pipx or system install) nothing; otherwise the path of the
environment's ``bin`` directory.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path


def command_prefix(*, environ: Mapping[str, str] | None = None, executable: str | None = None) -> str:
    """``"uv run "``, ``""`` or ``"<venv>/bin/"``: what goes before ``churnops`` / ``mlflow``."""
    env = os.environ if environ is None else environ
    if env.get("UV_RUN_RECURSION_DEPTH"):
        return "uv run "
    scripts = Path(executable or sys.executable).parent
    on_path = [Path(p) for p in env.get("PATH", "").split(os.pathsep) if p]
    if any(_same(p, scripts) for p in on_path):
        return ""
    try:
        shown = scripts.relative_to(Path.cwd())
    except ValueError:
        shown = scripts
    return f"{shown}{os.sep}"


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
