"""Reading a declarative policy file (gates, drift, retraining): YAML -> a validated pydantic model.

Every problem is reported at once, each naming its field, in an error of the caller's type.
The shipped policies live in one place, ``churnops/policies/`` (:func:`shipped_policy_path`),
and they are the only home of every default: the models have required fields. A team's policy
file, like a policy built in code, is the shipped file overlaid with the settings that differ
(:func:`shipped_with`).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Policy = TypeVar("Policy", bound=BaseModel)


class ShippedPolicy(StrEnum):
    """The packaged policy files, each ``churnops/policies/<value>.yaml``."""

    GATES = "gates"
    DRIFT = "drift"
    RETRAIN = "retrain"


POLICIES_DIR = "policies"
"""The package directory (under ``churnops``) holding the shipped policy files."""


def shipped_policy_path(kind: ShippedPolicy) -> Path:
    """The packaged policy file of ``kind`` (the one home of its defaults)."""
    return Path(str(resources.files("churnops").joinpath(POLICIES_DIR, f"{kind.value}.yaml")))


def shipped_with(
    kind: ShippedPolicy, overrides: Mapping[str, Any], *, model: type[BaseModel]
) -> dict[str, Any]:
    """The shipped policy's mapping overlaid with ``overrides``: a section (a nested ``model``) is
    merged setting by setting; any other value (a named map such as ``floors``, a list, null)
    replaces the shipped one."""
    data = yaml.safe_load(shipped_policy_path(kind).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"shipped {kind.value} policy: expected a mapping at the top level")
    return overlay(data, overrides, model=model)


def overlay(
    base: Mapping[str, Any], overrides: Mapping[str, Any], *, model: type[BaseModel]
) -> dict[str, Any]:
    """``base`` with ``overrides`` applied, merging only the fields of ``model`` that are models."""
    merged = dict(base)
    for key, value in overrides.items():
        below, field = merged.get(key), model.model_fields.get(key)
        section = field.annotation if field is not None else None
        is_section = isinstance(section, type) and issubclass(section, BaseModel)
        if is_section and isinstance(value, Mapping) and isinstance(below, Mapping):
            merged[key] = overlay(below, value, model=section)  # type: ignore[arg-type]
        else:
            merged[key] = value
    return merged


def read_policy(
    source: Path, *, kind: ShippedPolicy, model: type[Policy], what: str, error: type[Exception]
) -> Policy:
    """``model`` validated from the YAML mapping in ``source`` laid over the shipped policy of
    ``kind`` (:func:`shipped_with`): a team's file holds only the settings it changes, and a
    setting a later release adds comes from the shipped file. ``name`` defaults to the file stem."""
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as problem:
        raise error(f"{what} {source}: cannot be read ({problem.strerror or problem})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as problem:
        raise error(f"{what} {source}: not valid YAML ({problem})") from None
    if not isinstance(data, dict):
        raise error(f"{what} {source}: expected a mapping at the top level")
    data.setdefault("name", source.stem)
    try:
        merged = data if source == shipped_policy_path(kind) else shipped_with(kind, data, model=model)
    except ValueError as problem:
        raise error(f"{what} {source}: {problem}") from None
    try:
        return model.model_validate(merged)
    except ValidationError as problem:
        raise error(f"{what} {source}: {explain(problem)}") from None


def explain(problem: ValidationError) -> str:
    """Every validation problem, ``; ``-separated, and once, where a setting is missing, where the
    shipped values are."""
    errors = problem.errors()
    text = "; ".join(describe(e) for e in errors)
    if any(e["type"] == "missing" for e in errors):
        text += f" (every setting is required; the shipped files in churnops/{POLICIES_DIR}/ hold them all)"
    return text


def describe(problem: Any) -> str:
    """One validation problem as ``field.path: what is wrong`` (pydantic's prefixes dropped)."""
    where = ".".join(str(p) for p in problem["loc"]) or "(top)"
    message = str(problem["msg"]).removeprefix("Value error, ")
    if problem["type"] == "extra_forbidden":
        message += " (remove it, or check its spelling against the packaged default policy)"
    return f"{where}: {message}"
