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


TRAINING_SPLITS = ("train", "validation", "test")
"""The time-ordered splits of a training run; each run records its window as params."""


def window_param(split: str, bound: str) -> str:
    """The run param holding one bound (``start`` / ``end``) of a split's window of feature times."""
    if split not in TRAINING_SPLITS or bound not in ("start", "end"):
        raise ValueError(f"no window param for split {split!r} bound {bound!r}")
    return f"window_{split}_{bound}"


TREE_ENCODING = "churnops-tree-v2"
"""Name of the tree encoding :func:`sha256_of_path` hashes (also its first bytes)."""


def _files(path: Path) -> list[tuple[str, Path]]:
    if path.is_file():
        return [(path.name, path)]
    files = sorted(p for p in path.rglob("*") if p.is_file())
    return [(file.relative_to(path).as_posix(), file) for file in files]


def _feed(digest: hashlib._Hash, file: Path) -> None:
    with file.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)


def sha256_of_path(path: Path) -> str:
    """SHA-256 of a file, or of a directory tree, over an unambiguous encoding of the tree.

    MLflow logs a model as a directory (MLmodel, model.skops, requirements...), so the hash
    covers every file in it. The encoding is ``TREE_ENCODING``, then per file (sorted by
    relative POSIX path) the 8-byte big-endian length of the UTF-8 name, the name, the 8-byte
    length of the content and the content. Lengths make every boundary explicit: moving bytes
    from one file into another, renaming, adding, deleting or editing any file changes it.
    """
    digest = hashlib.sha256()
    digest.update(TREE_ENCODING.encode("ascii") + b"\0")
    for name, file in _files(path):
        encoded = name.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "big") + encoded)
        digest.update(file.stat().st_size.to_bytes(8, "big"))
        _feed(digest, file)
    return digest.hexdigest()


def legacy_sha256_of_path(path: Path) -> str:
    """The pre-v2 digest (name, NUL, bytes, NUL per file): ambiguous, so never trusted.

    Only used to tell an operator that a version was registered with the old encoding (and must
    be re-registered) instead of reporting it as tampered.
    """
    digest = hashlib.sha256()
    for name, file in _files(path):
        digest.update(name.encode("utf-8") + b"\0")
        _feed(digest, file)
        digest.update(b"\0")
    return digest.hexdigest()


class ArtifactIntegrityError(RuntimeError):
    """A model artifact's bytes do not match the SHA-256 recorded when it was registered."""
