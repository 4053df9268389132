"""The run artifact layout, the content hash of model artifacts, and what makes a version trusted.

Training writes these paths into every MLflow run; registry_ext, serving, batch scoring and
monitoring read them. The SHA-256 of the model directory is recorded at registration (registry
row and the ``sha256`` model-version tag) for display. What is *verified* before anything is
deserialized is the signed manifest: registry_ext records the SHA-256 of every model file as
logged and signs (model name, version, manifest digest, feature service) with Ed25519
(:func:`signed_payload`); loaders check the signature with a trusted public key, then the files
against the manifest, then deserialize with skops trusting :data:`TRUSTED_TYPES` only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from churnops.contracts.mlflow_keys import MANIFEST_TAG, SIGNATURE_TAG, SIGNING_KEY_ID_TAG

_CHUNK = 1 << 20

MODEL_PATH = "model"
"""The run's model directory (MLflow skops flavour: MLmodel, model.skops, ...)."""
HOLDOUT_PARTS = ("evaluation", "holdout.parquet")
"""Out-of-time test rows: features, label, and the chosen model's ``score``."""
REFERENCE_PARTS = ("reference", "reference.parquet")
"""Seeded sample of training rows with the model's ``score``: the monitoring baseline."""
HOLDOUT_ARTIFACT = "/".join(HOLDOUT_PARTS)
REFERENCE_ARTIFACT = "/".join(REFERENCE_PARTS)

TRUSTED_TYPES: tuple[str, ...] = (
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)
"""The only types, beyond skops' own defaults, that a ChurnOps model may contain.

Derived with ``skops.io.get_untrusted_types`` on the pipelines training fits for every family
of ``churnops.training.candidates`` (tests/unit/test_model_trust.py re-derives it). Training
writes it into the MLmodel file; loaders pass *this* tuple to skops and never a list read
from an artifact, so an artifact asking for anything else is refused, whatever it says."""

# --- signed versions (the tags' names are in churnops.contracts.mlflow_keys) -------------------

SIGNATURE_COLUMN = "signature"
SIGNING_KEY_ID_COLUMN = "signing_key_id"
MANIFEST_COLUMN = "manifest"
"""The same three values in registry_ext's ``models`` table (migration 0004)."""
MAX_MANIFEST_CHARS = 5000
"""Longest manifest JSON registered: a ChurnOps model directory's is ~700 characters. MLflow 3.17
validates model-version tag values up to 100,000 characters (a TEXT column in the SQL store);
5,000 keeps it within what older MLflow releases and other stores accept."""
KEY_ID_CHARS = 16
SIGNED_PAYLOAD_FORMAT = "churnops-signed-version-v1"
MLFLOW_WRITTEN_FILES = frozenset({"registered_model_meta"})
"""Files MLflow writes into a model directory it downloads through ``models:/`` (MLflow 3.17:
``ModelsArtifactRepository._add_registered_model_meta_file``, the only such write on load).
Left out of the manifest at registration and ignored at verification, top level only."""
REREGISTER_HINT = "re-register or retrain"


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
    """A model artifact cannot be trusted: its files, signature or types are not what registry_ext
    registered; nothing was deserialized."""


class UntrustedTypeError(ArtifactIntegrityError):
    """A model file needs a type outside :data:`TRUSTED_TYPES`; the message names it."""


class SignatureError(ArtifactIntegrityError):
    """The version's signature is missing, malformed, by an untrusted key, or does not match."""


class UnsignedVersionError(SignatureError):
    """The version carries no registry_ext signature (an older release, or made outside it)."""


@dataclass(frozen=True, slots=True)
class VersionSignature:
    """What registry_ext records for a version: the manifest JSON, the signature, the key id."""

    manifest: str
    signature: str
    key_id: str

    TAGS: ClassVar[tuple[str, ...]] = (MANIFEST_TAG, SIGNATURE_TAG, SIGNING_KEY_ID_TAG)

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> VersionSignature | None:
        """From model-version tags; None when none of the three is there (an unsigned version)."""
        values = [tags.get(key) for key in cls.TAGS]
        if all(value is None for value in values):
            return None
        manifest, signature, key_id = (value or "" for value in values)
        return cls(manifest=manifest, signature=signature, key_id=key_id)

    def tags(self) -> dict[str, str]:
        return {MANIFEST_TAG: self.manifest, SIGNATURE_TAG: self.signature, SIGNING_KEY_ID_TAG: self.key_id}


def _manifest_name(name: str) -> bool:
    parts = name.split("/")
    return bool(name) and not name.startswith("/") and all(p not in ("", ".", "..") for p in parts)


def file_digest(file: Path) -> str:
    digest = hashlib.sha256()
    _feed(digest, file)
    return digest.hexdigest()


def file_manifest(path: Path) -> dict[str, str]:
    """The SHA-256 of every file of a model directory (relative POSIX path -> hex), leaving out
    the files MLflow itself writes beside them on load (:data:`MLFLOW_WRITTEN_FILES`)."""
    return {name: file_digest(file) for name, file in _files(path) if name not in MLFLOW_WRITTEN_FILES}


def manifest_json(manifest: Mapping[str, str]) -> str:
    """The canonical JSON of a manifest (sorted keys, no spaces, ASCII): what is tagged and hashed."""
    return json.dumps(dict(manifest), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def parse_manifest(text: str, *, label: str) -> dict[str, str]:
    """A manifest from its JSON; :class:`SignatureError` when it is not one."""
    try:
        data = json.loads(text)
    except ValueError:
        raise SignatureError(f"{label}: its manifest is not JSON; refusing to load it") from None
    if (
        not isinstance(data, dict)
        or not data
        or not all(isinstance(k, str) and _manifest_name(k) for k in data)
        or not all(isinstance(v, str) and len(v) == 64 for v in data.values())
    ):
        raise SignatureError(f"{label}: its manifest is malformed; refusing to load it")
    return {str(k): str(v) for k, v in data.items()}


def manifest_digest(manifest: Mapping[str, str]) -> str:
    return hashlib.sha256(manifest_json(manifest).encode("ascii")).hexdigest()


def signed_payload(*, name: str, version: int | str, manifest_digest: str, feature_service: str) -> bytes:
    """The canonical bytes registry_ext signs and loaders verify: a JSON array, so no field can
    bleed into the next."""
    fields = [SIGNED_PAYLOAD_FORMAT, name, str(int(version)), manifest_digest, feature_service]
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def manifest_problems(path: Path, manifest: Mapping[str, str]) -> list[str]:
    """How the directory ``path`` differs from ``manifest`` (changed, missing or added files);
    empty when it holds exactly the manifest's files (plus MLflow's own, which are ignored)."""
    present = {name: file for name, file in _files(path) if name not in MLFLOW_WRITTEN_FILES}
    problems = [f"missing file {name!r}" for name in sorted(set(manifest) - set(present))]
    problems += [f"added file {name!r}" for name in sorted(set(present) - set(manifest))]
    problems += [
        f"changed file {name!r}"
        for name in sorted(set(manifest) & set(present))
        if file_digest(present[name]) != manifest[name]
    ]
    return problems
