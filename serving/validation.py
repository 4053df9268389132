"""Request and response models of the serving API, and the structured error body.

The request models are strict: unknown fields, wrong JSON types, NaN/Infinity, values outside
the declared domain of ``churnops.contracts.columns`` and over-long ids are refused by pydantic, which
BentoML turns into a 400 whose ``detail[].loc`` names the field. Errors raised by the service
itself use the same shape (``error_body``).
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator

from churnops.contracts.columns import FEATURES, column
from churnops.contracts.ids import ID_PATTERN, MAX_ID_LENGTH
from churnops.contracts.online import RowStatusName

# The one id rule of the contracts (ingestion and the generator apply the same one).
CustomerId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)]

_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
CATEGORY_FIELDS = tuple(c.name for c in FEATURES if c.kind == "category")
NUMERIC_FIELDS = tuple(c.name for c in FEATURES if c.kind != "category")


class PredictRequest(BaseModel):
    """``POST /predict``: score customers by id with features from the online store."""

    model_config = _STRICT
    customer_ids: list[CustomerId] = Field(min_length=1)


def _contract_schema(schema: dict[str, Any]) -> None:
    """The column contract's domain in the published JSON schema: enums, minimum, maximum."""
    for col in FEATURES:
        prop = schema.get("properties", {}).get(col.name)
        if prop is None:
            continue
        if col.kind == "category":
            prop["enum"] = list(col.categories)
        elif col.kind == "flag":
            prop["enum"] = [0, 1]
        else:
            if col.minimum is not None:
                prop["minimum"] = col.minimum
            if col.maximum is not None:
                prop["maximum"] = col.maximum


class FeatureRow(BaseModel):
    """One raw churn_v1 feature row (the FeatureService schema), for what-if scoring."""

    model_config = ConfigDict(
        extra="forbid", strict=True, allow_inf_nan=False, json_schema_extra=_contract_schema
    )

    customer_id: CustomerId | None = None
    gender: str
    senior_citizen: int
    partner: int
    dependents: int
    tenure: int
    contract: str
    paperless_billing: int
    payment_method: str
    monthly_charges: float
    total_charges: float
    phone_service: int
    multiple_lines: str
    internet_service: str
    online_security: str
    online_backup: str
    device_protection: str
    tech_support: str
    streaming_tv: str
    streaming_movies: str

    @field_validator(*CATEGORY_FIELDS)
    @classmethod
    def _known_category(cls, value: str, info: ValidationInfo) -> str:
        allowed = column(str(info.field_name)).categories
        if value not in allowed:
            raise ValueError(f"unknown category {value[:40]!r}; expected one of {list(allowed)}")
        return value

    @field_validator(*NUMERIC_FIELDS)
    @classmethod
    def _in_range(cls, value: float, info: ValidationInfo) -> float:
        col = column(str(info.field_name))
        if col.kind == "flag" and value not in (0, 1):
            raise ValueError("must be 0 or 1")
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        if col.minimum is not None and value < col.minimum:
            raise ValueError(f"must be >= {col.minimum:g}")
        if col.maximum is not None and value > col.maximum:
            raise ValueError(f"must be <= {col.maximum:g}")
        return value

    def features(self) -> dict[str, Any]:
        return self.model_dump(exclude={"customer_id"})


class PredictFeaturesRequest(BaseModel):
    """``POST /predict_features``: score raw feature rows."""

    model_config = _STRICT
    rows: list[FeatureRow] = Field(min_length=1)


class Prediction(BaseModel):
    customer_id: str | None
    churn_probability: float | None
    status: RowStatusName


class PredictResponse(BaseModel):
    model_name: str
    model_version: str
    request_id: str
    predictions: list[Prediction]


class RefreshResponse(BaseModel):
    model_name: str | None
    model_version: str | None
    changed: bool


ERROR_SCHEMA: dict[str, Any] = {
    "title": "ErrorBody",
    "type": "object",
    "description": "Every error: a message, and (for the service's own errors) one item per problem.",
    "properties": {
        "error": {"type": "string", "title": "Message"},
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "type": {"type": "string", "description": "the reason code"},
                    "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                    "msg": {"type": "string", "description": "the problem and the fix"},
                },
                "required": ["type", "loc", "msg"],
            },
        },
    },
    "required": ["error"],
}


def error_body(*, message: str, code: str, loc: list[str | int] | None = None) -> dict[str, Any]:
    """The service's own errors, shaped like BentoML's validation errors."""
    return {"error": message, "detail": [{"type": code, "loc": loc or [], "msg": message}]}
