"""The online-row status rule: when a served feature row is usable, and why not.

Shared by Feast's read path (``churnops.features.online``) and serving's direct Redis reader,
so both judge a row the same way. Feast does not enforce a view's TTL on online reads (an old
value comes back as present), so staleness is judged here from each view's event time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd


class RowStatus(StrEnum):
    """Why a row was (not) scored: the response's ``status`` and the prediction log's."""

    OK = "ok"
    UNKNOWN_CUSTOMER = "unknown_customer"
    STALE_FEATURES = "stale_features"
    MISSING_FEATURES = "missing_features"


RowStatusName = Literal["ok", "unknown_customer", "stale_features", "missing_features"]
""":class:`RowStatus`'s values as a type, for the response model's JSON schema (a test pins the two
to each other)."""


def is_missing(value: Any) -> bool:
    """The one missing-value rule: None, or a NaN stored as a float, is never scored (no imputed,
    made-up answer)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def scored_status(status: RowStatus | str, values: Iterable[Any]) -> RowStatus:
    """A row's status once its values are checked: an ``ok`` row with a missing value is not."""
    status = RowStatus(status)
    if status is RowStatus.OK and any(is_missing(v) for v in values):
        return RowStatus.MISSING_FEATURES
    return status


def complete_rows(frame: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """:func:`is_missing` over a frame: True for a row with every value (batch scoring's rows)."""
    complete: npt.NDArray[np.bool_] = frame.notna().all(axis=1).to_numpy()
    return complete


@dataclass(frozen=True)
class OnlineRow:
    """One customer's feature vector as served, and why it may not be usable."""

    customer_id: str
    features: dict[str, Any]
    status: RowStatus
    event_timestamps: dict[str, datetime | None]
    stale_views: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()


def classify(
    *,
    customer_id: str,
    features: dict[str, Any],
    view_ts: dict[str, datetime | None],
    missing: list[str],
    ttl: dict[str, timedelta | None],
    now: datetime,
) -> OnlineRow:
    """One row's status, by precedence: unknown > missing > stale > ok (shared with serving's
    direct Redis reader, so both judge a row the same way)."""
    stale = tuple(
        sorted(
            view
            for view, ts in view_ts.items()
            if ts is not None and (limit := ttl.get(view)) is not None and now - ts > limit
        )
    )
    status: RowStatus
    if len(missing) == len(features):
        status = RowStatus.UNKNOWN_CUSTOMER
    elif missing:
        status = RowStatus.MISSING_FEATURES
    elif stale:
        status = RowStatus.STALE_FEATURES
    else:
        status = RowStatus.OK
    return OnlineRow(
        customer_id=customer_id,
        features=features,
        status=status,
        event_timestamps=view_ts,
        stale_views=stale,
        missing=tuple(missing),
    )


def feature_time(row: OnlineRow) -> datetime | None:
    """The event time of the feature snapshot a row used: the newest of its views' times."""
    stamps = [ts for ts in row.event_timestamps.values() if ts is not None]
    return max(stamps) if stamps else None
