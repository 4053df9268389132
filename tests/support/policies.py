"""Policy files for tests: the shipped file with a few settings changed (the models have no defaults)."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel

from churnops.contracts.policy_files import ShippedPolicy, shipped_with
from churnops.retraining.policy import RetrainPolicy
from churnops.training.gates import GatePolicy
from monitoring.policy import DriftPolicy

MODELS: dict[ShippedPolicy, type[BaseModel]] = {
    ShippedPolicy.GATES: GatePolicy,
    ShippedPolicy.DRIFT: DriftPolicy,
    ShippedPolicy.RETRAIN: RetrainPolicy,
}


def write_over_shipped(path: Path, kind: ShippedPolicy, text: str) -> None:
    """Write to ``path`` the shipped ``kind`` policy overlaid with the YAML ``text`` (its ``name``,
    else none: the reader takes it from the file name); ``text`` as it is when it is not a YAML
    mapping."""
    try:
        overrides = yaml.safe_load(text)
    except yaml.YAMLError:
        overrides = None
    if not isinstance(overrides, dict):
        path.write_text(text, encoding="utf-8")
        return
    data = shipped_with(kind, overrides, model=MODELS[kind])
    if "name" not in overrides:
        data.pop("name", None)  # the reader names it after the file, as it would a team's file
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
