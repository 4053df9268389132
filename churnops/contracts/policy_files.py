"""Reading a declarative policy file (gates, drift, retraining): YAML -> a validated pydantic model.

Every problem is reported at once, each naming its field, in an error of the caller's type.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Policy = TypeVar("Policy", bound=BaseModel)


def read_policy(source: Path, *, model: type[Policy], what: str, error: type[Exception]) -> Policy:
    """``model`` validated from the YAML mapping in ``source`` (``name`` defaults to the file stem)."""
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
        return model.model_validate(data)
    except ValidationError as problem:
        problems = "; ".join(describe(e) for e in problem.errors())
        raise error(f"{what} {source}: {problems}") from None


def describe(problem: Any) -> str:
    """One validation problem as ``field.path: what is wrong`` (pydantic's prefixes dropped)."""
    where = ".".join(str(p) for p in problem["loc"]) or "(top)"
    message = str(problem["msg"]).removeprefix("Value error, ")
    if problem["type"] == "extra_forbidden":
        message += " (remove it, or check its spelling against the packaged default policy)"
    return f"{where}: {message}"
