"""The churn data contract: one declaration of every column, shared by ingestion, the
synthetic generator, the Feast definitions and serving-side validation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

Kind = Literal["category", "flag", "int", "float"]
View = Literal["profile", "account", "services"]

ENTITY = "customer"
JOIN_KEY = "customer_id"
EVENT_TS = "event_timestamp"
CREATED_TS = "created"
LABEL = "churned"
FEATURE_SERVICE = "churn_v1"
SCORE = "score"
"""The model's churn probability as a column: the run's holdout and reference artifacts, the
prediction log, batch scoring's output and every monitoring frame."""

YES_NO = ("No", "Yes")
NO_PHONE = ("No", "Yes", "No phone service")
NO_INTERNET = ("No", "Yes", "No internet service")


@dataclass(frozen=True)
class Column:
    """One feature column: its name in the Feast views, its Telco CSV header and its domain."""

    name: str
    telco: str
    view: View
    kind: Kind
    categories: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None


FEATURES: tuple[Column, ...] = (
    Column("gender", "gender", "profile", "category", ("Female", "Male")),
    Column("senior_citizen", "SeniorCitizen", "profile", "flag"),
    Column("partner", "Partner", "profile", "flag"),
    Column("dependents", "Dependents", "profile", "flag"),
    Column("tenure", "tenure", "account", "int", minimum=0, maximum=1200),
    Column("contract", "Contract", "account", "category", ("Month-to-month", "One year", "Two year")),
    Column("paperless_billing", "PaperlessBilling", "account", "flag"),
    Column(
        "payment_method",
        "PaymentMethod",
        "account",
        "category",
        ("Electronic check", "Mailed check", "Bank transfer (automatic)", "Credit card (automatic)"),
    ),
    Column("monthly_charges", "MonthlyCharges", "account", "float", minimum=0.0, maximum=10_000.0),
    Column("total_charges", "TotalCharges", "account", "float", minimum=0.0, maximum=1_000_000.0),
    Column("phone_service", "PhoneService", "services", "flag"),
    Column("multiple_lines", "MultipleLines", "services", "category", NO_PHONE),
    Column("internet_service", "InternetService", "services", "category", ("DSL", "Fiber optic", "No")),
    Column("online_security", "OnlineSecurity", "services", "category", NO_INTERNET),
    Column("online_backup", "OnlineBackup", "services", "category", NO_INTERNET),
    Column("device_protection", "DeviceProtection", "services", "category", NO_INTERNET),
    Column("tech_support", "TechSupport", "services", "category", NO_INTERNET),
    Column("streaming_tv", "StreamingTV", "services", "category", NO_INTERNET),
    Column("streaming_movies", "StreamingMovies", "services", "category", NO_INTERNET),
)

VIEWS: tuple[View, ...] = ("profile", "account", "services")
LABEL_SOURCE = "labels"
TELCO_ID = "customerID"
TELCO_LABEL = "Churn"


def view_columns(view: View) -> list[Column]:
    """The feature columns that belong to one feature view, in declaration order."""
    return [c for c in FEATURES if c.view == view]


def feature_names() -> list[str]:
    """All feature names in declaration order (the model's raw input columns)."""
    return [c.name for c in FEATURES]


def column(name: str) -> Column:
    """Look a feature column up by name."""
    for c in FEATURES:
        if c.name == name:
            return c
    raise KeyError(name)


@dataclass(frozen=True)
class KindTypes:
    """What a column of one kind is in each system that holds it: the one kind -> type table."""

    arrow: pa.DataType
    """Sources, training sets and the prediction log (whose SQL type derives from it,
    :func:`churnops.contracts.prediction_log.sql_type`)."""
    feast: str
    """The ``feast.types.PrimitiveFeastType`` member name of the Feast field (contracts do not
    import Feast: ``churnops.features.definitions`` looks it up)."""
    pandas: str
    """The model input's dtype when no value is missing (``churnops.contracts.model_input``)."""
    pandas_nullable: str
    """The dtype of a column that may miss values (training sets; integers stay integers)."""
    mlflow: str
    """The MLflow signature type (``mlflow.types.DataType`` names)."""
    python: tuple[type, ...]
    """The plain Python types a complete column of this kind holds (serving's rows)."""


_INTEGER = KindTypes(
    arrow=pa.int64(),
    feast="INT64",
    pandas="int64",
    pandas_nullable="Int64",
    mlflow="long",
    python=(int,),
)
KIND_TYPES: dict[Kind, KindTypes] = {
    "category": KindTypes(
        arrow=pa.string(),
        feast="STRING",
        pandas="object",
        pandas_nullable="object",
        mlflow="string",
        python=(str,),
    ),
    "flag": _INTEGER,
    "int": _INTEGER,
    "float": KindTypes(
        arrow=pa.float64(),
        feast="FLOAT64",
        pandas="float64",
        pandas_nullable="float64",
        mlflow="double",
        python=(float, int),
    ),
}
"""Every kind's type in Arrow, Feast, pandas, MLflow and Python; the SQL type follows Arrow's."""
TS_TYPE = pa.timestamp("us", tz="UTC")
"""Every timestamp in sources, training sets and the prediction log: microseconds, UTC."""


def arrow_type(col: Column) -> pa.DataType:
    """The Arrow type a column is stored as (sources, prediction log)."""
    return KIND_TYPES[col.kind].arrow
