"""Content hashing of model artifacts: the SHA-256 recorded at registration and checked at load."""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20


def sha256_of_path(path: Path) -> str:
    """SHA-256 of a file, or of a directory tree (sorted relative paths and their bytes).

    MLflow logs a model as a directory (MLmodel, model.skops, requirements...), so the hash
    covers every file in it; renaming, adding or editing any file changes the digest.
    """
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        rel = file.name if path.is_file() else file.relative_to(path).as_posix()
        digest.update(rel.encode("utf-8") + b"\0")
        with file.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


class ArtifactIntegrityError(RuntimeError):
    """A model artifact's bytes do not match the SHA-256 recorded when it was registered."""
