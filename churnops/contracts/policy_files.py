"""Reading a declarative policy file (gates, drift, retraining): YAML -> a validated pydantic model.

Every problem is reported at once, each naming its field, in an error of the caller's type.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

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
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in problem.errors()
        )
        raise error(f"{what} {source}: {problems}") from None
