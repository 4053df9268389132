"""Follow-up commands are printed so that they run as printed in the user's shell."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from churnops.commands.invocation import command_prefix

BIN = Path(sys.executable).parent


def test_inside_uv_run_the_prefix_is_uv_run() -> None:
    assert command_prefix(environ={"UV_RUN_RECURSION_DEPTH": "1", "PATH": str(BIN)}) == "uv run "


def test_with_the_environment_on_path_the_bare_command_works() -> None:
    assert command_prefix(environ={"PATH": f"/usr/bin{os.pathsep}{BIN}"}) == ""


def test_otherwise_the_printed_command_names_the_environment_and_runs_from_a_bare_shell(
    tmp_path: Path,
) -> None:
    bare = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    prefix = command_prefix(environ=bare)
    assert prefix and Path(prefix.rstrip(os.sep)).resolve() == BIN.resolve()
    for command in ("churnops --help", "mlflow --version"):
        done = subprocess.run(
            f"{prefix}{command}",
            shell=True,
            env=bare,
            cwd=Path.cwd(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
