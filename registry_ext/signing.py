"""Ed25519 keys of the registry: who may sign a version (writers) and whose signatures count.

Two files, both plain text:

- the **signing key** (registry writers only: training, ``registry`` write commands): an
  unencrypted PKCS#8 PEM Ed25519 private key, mode 0600;
- the **trusted keys** (every loader: serving, batch scoring, the registry): one public key a
  line, ``<key id> ed25519 <base64 of the 32 raw bytes>``, ``#`` comments allowed. Several lines
  make rotation possible: a new signing key is added, the old public key stays until an
  operator deletes its line (then versions it signed are refused).

A key id is the first :data:`~churnops.contracts.artifacts.KEY_ID_CHARS` hex digits of the
SHA-256 of the raw public key, so a trusted-keys line whose id does not match its key is refused.
The trusted-keys file is read again at each verification (a few hundred bytes, only when a model
is loaded), so adding or removing a key needs no restart.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from churnops.contracts.artifacts import KEY_ID_CHARS, SignatureError
from registry_ext.errors import RegistryError

ALGORITHM = "ed25519"
TRUSTED_KEYS_HEADER = (
    "# ChurnOps trusted registry signing keys: one per line, '<key id> ed25519 <base64 public key>'.\n"
    "# Delete a line to stop trusting the versions that key signed.\n"
)


class KeyFileError(RegistryError):
    """A key file is missing, unreadable or malformed; the message names the file, its setting
    and the fix."""


@dataclass(frozen=True, slots=True)
class KeyFiles:
    """Where the keys are, and the settings that name them (for messages)."""

    signing_key: Path
    trusted_keys: Path
    signing_setting: str = "CHURNOPS_SIGNING_KEY_FILE"
    trusted_setting: str = "CHURNOPS_TRUSTED_KEYS_FILE"
    create: bool = False
    """Create the pair on first use (the embedded default under ``<home>/keys``)."""


@dataclass(frozen=True, slots=True)
class PublicKeyInfo:
    key_id: str
    public_key: str  # base64 of the raw 32 bytes

    def line(self) -> str:
        return f"{self.key_id} {ALGORITHM} {self.public_key}"


@dataclass(frozen=True, slots=True)
class KeysReport:
    """What ``churnops registry keys show|init|rotate`` reports."""

    signing_key_file: str
    trusted_keys_file: str
    signing_key: PublicKeyInfo | None
    trusted: tuple[PublicKeyInfo, ...]
    created: bool = False
    retired_key_id: str | None = None

    @property
    def signing_key_trusted(self) -> bool:
        return self.signing_key is not None and any(k.key_id == self.signing_key.key_id for k in self.trusted)

    def to_json(self) -> dict[str, object]:
        return {
            "signing_key_file": self.signing_key_file,
            "trusted_keys_file": self.trusted_keys_file,
            "signing_key": None
            if self.signing_key is None
            else {"key_id": self.signing_key.key_id, "public_key": self.signing_key.public_key},
            "signing_key_trusted": self.signing_key_trusted,
            "trusted": [{"key_id": k.key_id, "public_key": k.public_key} for k in self.trusted],
            "created": self.created,
            "retired_key_id": self.retired_key_id,
        }


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw)


def key_id_of(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(_raw(public)).hexdigest()[:KEY_ID_CHARS]


def public_info(public: Ed25519PublicKey) -> PublicKeyInfo:
    return PublicKeyInfo(key_id=key_id_of(public), public_key=base64.b64encode(_raw(public)).decode("ascii"))


# --- reading --------------------------------------------------------------------------------------


def read_signing_key(files: KeyFiles) -> Ed25519PrivateKey:
    path = files.signing_key
    fix = "run `churnops registry keys init`, or point it at the registry's key"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"no signing key at {path} ({files.signing_setting}): {fix}") from None
    except OSError as error:
        raise KeyFileError(f"cannot read the signing key {path} ({files.signing_setting}): {error}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as error:
        raise KeyFileError(
            f"{path} ({files.signing_setting}) is not an unencrypted PEM private key: {error}; {fix}"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} ({files.signing_setting}) is not an Ed25519 key; {fix}")
    return key


def parse_trusted_keys(text: str, *, source: str) -> dict[str, Ed25519PublicKey]:
    """Key id -> public key from a trusted-keys file's text; :class:`KeyFileError` on a bad line."""
    keys: dict[str, Ed25519PublicKey] = {}
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        where = f"{source} line {number}"
        if len(parts) != 3 or parts[1] != ALGORITHM:
            raise KeyFileError(f"{where}: expected '<key id> {ALGORITHM} <base64 public key>'")
        key_id, _, encoded = parts
        try:
            raw = base64.b64decode(encoded, validate=True)
            public = Ed25519PublicKey.from_public_bytes(raw)
        except (binascii.Error, ValueError):
            raise KeyFileError(f"{where}: not a base64 Ed25519 public key (32 bytes)") from None
        if key_id_of(public) != key_id:
            raise KeyFileError(f"{where}: the key id {key_id} does not match its key ({key_id_of(public)})")
        keys[key_id] = public
    return keys


def read_trusted_keys(files: KeyFiles) -> dict[str, Ed25519PublicKey]:
    path = files.trusted_keys
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise KeyFileError(
            f"no trusted keys at {path} ({files.trusted_setting}): run `churnops registry keys init` "
            "(or copy the registry's trusted-keys file there)"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise KeyFileError(
            f"cannot read the trusted keys {path} ({files.trusted_setting}): {error}"
        ) from None
    return parse_trusted_keys(text, source=f"{path} ({files.trusted_setting})")


# --- writing --------------------------------------------------------------------------------------


def _write_private(path: Path, key: Ed25519PrivateKey, *, replace: bool) -> None:
    """Write atomically with mode 0600 from the start (never readable by others, even briefly).

    ``replace=False`` never overwrites: when two processes create the key at once, the first one
    wins and the other uses it."""
    pem = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".signing-", dir=path.parent)  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        os.chmod(tmp, 0o600)
        if replace:
            os.replace(tmp, path)
        else:
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
            Path(tmp).unlink()
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _add_trusted(files: KeyFiles, public: Ed25519PublicKey) -> None:
    path = files.trusted_keys
    existing = path.read_text(encoding="ascii") if path.exists() else TRUSTED_KEYS_HEADER
    if key_id_of(public) in parse_trusted_keys(existing, source=str(path)):
        return
    text = existing if existing.endswith("\n") else existing + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".trusted-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(text + public_info(public).line() + "\n")
        os.chmod(tmp, 0o644)  # public keys: readable by the serving user
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _report(files: KeyFiles, *, created: bool = False, retired: str | None = None) -> KeysReport:
    signing = public_info(read_signing_key(files).public_key()) if files.signing_key.exists() else None
    trusted = read_trusted_keys(files) if files.trusted_keys.exists() else {}
    return KeysReport(
        signing_key_file=str(files.signing_key),
        trusted_keys_file=str(files.trusted_keys),
        signing_key=signing,
        trusted=tuple(public_info(k) for k in trusted.values()),
        created=created,
        retired_key_id=retired,
    )


def show_keys(*, files: KeyFiles) -> KeysReport:
    """The signing key's id (when this process has it) and every trusted key."""
    return _report(files)


def init_keys(*, files: KeyFiles) -> KeysReport:
    """Create the signing key (if there is none) and trust its public key; idempotent."""
    created = False
    if not files.signing_key.exists():
        _write_private(files.signing_key, Ed25519PrivateKey.generate(), replace=False)
        created = True
    _add_trusted(files, read_signing_key(files).public_key())
    return _report(files, created=created)


def rotate_keys(*, files: KeyFiles) -> KeysReport:
    """A new signing key replaces the old one; both public keys stay trusted (delete the old
    line from the trusted-keys file once every version it signed is retired or re-registered)."""
    old = key_id_of(read_signing_key(files).public_key()) if files.signing_key.exists() else None
    new = Ed25519PrivateKey.generate()
    _add_trusted(files, new.public_key())  # trusted before it signs anything
    _write_private(files.signing_key, new, replace=True)
    return _report(files, created=True, retired=old)


# --- signing and verifying ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Signature:
    key_id: str
    signature: str  # base64


class Signer:
    """Signs with the registry's private key, read (or, on the embedded default, created) on first use."""

    def __init__(self, *, files: KeyFiles) -> None:
        self.files = files

    def sign(self, payload: bytes) -> Signature:
        if self.files.create and not self.files.signing_key.exists():
            init_keys(files=self.files)
        key = read_signing_key(self.files)
        if self.files.create:
            _add_trusted(self.files, key.public_key())
        return Signature(
            key_id=key_id_of(key.public_key()), signature=base64.b64encode(key.sign(payload)).decode("ascii")
        )


class Verifier:
    """Checks signatures against the trusted public keys (the file is read at every check)."""

    def __init__(self, *, files: KeyFiles) -> None:
        self.files = files

    def verify(self, *, payload: bytes, signature: str, key_id: str, label: str) -> None:
        """Raise :class:`SignatureError` (naming ``label``) unless a trusted key signed ``payload``."""
        try:
            keys = read_trusted_keys(self.files)
        except KeyFileError as error:
            raise SignatureError(f"{label}: cannot verify its signature: {error}") from None
        public = keys.get(key_id)
        if public is None:
            raise SignatureError(
                f"{label} was signed by key {key_id!r}, which is not trusted "
                f"({self.files.trusted_setting}={self.files.trusted_keys}); refusing to load it"
            )
        try:
            public.verify(base64.b64decode(signature, validate=True), payload)
        except (binascii.Error, ValueError, InvalidSignature):
            raise SignatureError(
                f"{label}: its signature does not match its name, version, manifest and feature "
                "service (created or re-tagged outside registry_ext?); refusing to load it"
            ) from None
