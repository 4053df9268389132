"""The published OpenAPI document (``GET /docs.json``, read by ``/docs``), corrected to say what
the service really does and what it serves.

BentoML declares every error of every API as ``{"error": str, "detail": str}`` with the
statuses 400/404/500 only, and ``/readyz`` as plain text. The service answers errors with
``serving.validation.ERROR_SCHEMA`` (``detail`` a list), also 401/408/413/415/429/503/504, and
``/readyz`` as JSON. The request domain (enums, ranges) comes from the column contract through
the request models; the item limits come from the running configuration. BentoML titles the
document with the service name and versions it with the Bento's tag ("None" when served from
source), and Swagger UI invents example ids from the id pattern (which the store never has):
``info`` here carries the churnops version and the Production model, and the request examples
are customers the online store answers ``ok`` for (``Examples``, found at run time).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from serving.validation import ERROR_SCHEMA

_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
_API_ERRORS = {
    "400": "Invalid request: each problem's field (loc), what is wrong and the fix (msg)",
    "401": "Missing or wrong API key (when one is configured)",
    "404": "Not found",
    "408": "The request body did not arrive in time",
    "413": "Body or item count over the limit",
    "415": "Content type other than application/json",
    "429": "Too many requests at once",
    "500": "Unexpected error (see the server log)",
    "503": "No model loaded yet, or the online feature store is unavailable (see Retry-After)",
    "504": "Not answered within the request timeout",
}
_READY = {
    "type": "object",
    "properties": {
        "ready": {"type": "boolean"},
        "reason": {"type": "string"},
        "served_version": {"type": "string", "nullable": True},
        "registry_version": {"type": "string", "nullable": True},
        "model_problem": {"type": "string"},
    },
    "required": ["ready"],
}


@dataclass(frozen=True)
class Examples:
    """Request examples that work against the running service: ids it scores, and one row."""

    customer_ids: tuple[str, ...] = ()
    row: dict[str, Any] | None = None


@dataclass(frozen=True)
class Identity:
    """Who answers: the service, the churnops version, and the model version being served."""

    title: str
    version: str
    description: str = ""
    model_name: str | None = None
    model_version: str | None = None
    feature_service: str | None = None


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def corrected_spec(
    spec: dict[str, Any],
    *,
    api_paths: tuple[str, ...],
    max_ids: int | None,
    max_rows: int | None,
    identity: Identity | None = None,
    examples: Examples | None = None,
) -> dict[str, Any]:
    """A copy of BentoML's OpenAPI dict with the error bodies, statuses and limits that hold,
    the service's identity and the model it serves, and request examples that work."""
    doc = copy.deepcopy(spec)
    if identity is not None:
        _identify(doc, identity)
    if examples is not None:
        _exemplify(doc, examples)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["ErrorBody"] = ERROR_SCHEMA
    for path in api_paths:
        post = doc.get("paths", {}).get(path, {}).get("post")
        if post is None:
            continue
        responses = post["responses"] = {str(k): v for k, v in post["responses"].items()}
        for status, description in _API_ERRORS.items():
            responses[status] = _json(_ERROR_REF, description)
        body = post.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
        if body.get("required"):
            post["requestBody"]["required"] = True  # an empty body reads as {}: a missing field
        props = body.get("properties", {})
        if "customer_ids" in props and max_ids is not None:
            props["customer_ids"]["maxItems"] = max_ids
        if "rows" in props and max_rows is not None:
            props["rows"]["maxItems"] = max_rows
        ok = responses.get("200", {}).get("content", {}).get("application/json", {}).get("schema", {})
        for name in ("model_name", "model_version"):
            if path == "/model/refresh" and name in ok.get("properties", {}):
                ok["properties"][name] = {"type": "string", "nullable": True, "title": name}
    readyz = doc.get("paths", {}).get("/readyz", {}).get("get")
    if readyz is not None:
        readyz["responses"] = {
            "200": _json(_READY, "Ready: a model is loaded and the online store answers"),
            "503": _json(_READY, "Not ready; reason says why"),
        }
    return doc


def _identify(doc: dict[str, Any], identity: Identity) -> None:
    info = doc.setdefault("info", {})
    info["title"], info["version"] = identity.title, identity.version
    if identity.model_name is not None and identity.model_version is not None:
        serving = f"Serving model {identity.model_name} version {identity.model_version} (Production)"
        if identity.feature_service:
            serving += f" with features from FeatureService {identity.feature_service}"
    else:
        serving = "No Production model is loaded yet"
    info["description"] = f"{identity.description}\n\n{serving}.".strip()
    info["x-churnops-model"] = {
        "name": identity.model_name,
        "version": identity.model_version,
        "feature_service": identity.feature_service,
    }
    info.pop("contact", None)  # BentoML's own team, not who runs this service


def _exemplify(doc: dict[str, Any], examples: Examples) -> None:
    paths = doc.get("paths", {})
    bodies = {
        "/predict": {"customer_ids": list(examples.customer_ids)} if examples.customer_ids else None,
        "/predict_features": {"rows": [examples.row]} if examples.row is not None else None,
    }
    for path, example in bodies.items():
        media = paths.get(path, {}).get("post", {}).get("requestBody", {}).get("content", {})
        if example is not None and "application/json" in media:
            media["application/json"]["example"] = example
