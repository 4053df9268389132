"""The run artifact layout and the content hash of model artifacts.

Training writes these paths into every MLflow run; registry_ext, serving, batch scoring and
monitoring read them. The SHA-256 is recorded at registration (registry row and the
``sha256`` model-version tag) and checked before anything is deserialized.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20

MODEL_PATH = "model"
"""The run's model directory (MLflow skops flavour: MLmodel, model.skops, ...)."""
HOLDOUT_PARTS = ("evaluation", "holdout.parquet")
"""Out-of-time test rows: features, label, and the chosen model's ``score``."""
REFERENCE_PARTS = ("reference", "reference.parquet")
"""Seeded sample of training rows with the model's ``score``: the monitoring baseline."""
HOLDOUT_ARTIFACT = "/".join(HOLDOUT_PARTS)
REFERENCE_ARTIFACT = "/".join(REFERENCE_PARTS)
SHA256_TAG = "sha256"
"""Model-version tag holding the artifact digest (serving checks it before loading)."""
FEATURE_SERVICE_TAG = "feature_service"
"""Model-version tag naming the FeatureService the model was trained on."""
RUN_FEATURE_SERVICE_TAG = "feast.feature_service"
"""Run tag Feast's native MLflow integration writes (the lineage fallback)."""


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
