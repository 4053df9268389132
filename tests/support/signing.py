"""The registry signing keys of a test run: one Ed25519 pair per run, shared with child processes.

``tests/conftest.py`` points ``CHURNOPS_SIGNING_KEY_FILE`` / ``CHURNOPS_TRUSTED_KEYS_FILE`` at it
for every test, so versions that helpers register (``tests.support.registry``) verify in the CLI
and in services the tests start; a worker process inherits the variables and signs with the same
key. Tests of the embedded default (keys created under the home) unset both variables.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

SIGNING_VARIABLE = "CHURNOPS_SIGNING_KEY_FILE"
TRUSTED_VARIABLE = "CHURNOPS_TRUSTED_KEYS_FILE"
_MADE: list[Any] = []


def signing_key_files() -> Any:
    """The run's key files (created on first use), or those the environment names."""
    from registry_ext.signing import KeyFiles, init_keys

    signing, trusted = os.environ.get(SIGNING_VARIABLE), os.environ.get(TRUSTED_VARIABLE)
    if signing and trusted:
        return KeyFiles(signing_key=Path(signing), trusted_keys=Path(trusted))
    if not _MADE:
        root = Path(tempfile.mkdtemp(prefix="churnops-test-keys-"))
        atexit.register(shutil.rmtree, root, True)
        files = KeyFiles(signing_key=root / "signing_key.pem", trusted_keys=root / "trusted_keys")
        init_keys(files=files)
        _MADE.append(files)
    return _MADE[0]
