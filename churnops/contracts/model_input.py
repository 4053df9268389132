"""The model's input: one builder, one dtype per column kind, for every path that calls a model.

Training (fit and evaluation), serving (the sklearn scorer and the parity probe of its fast
path) and batch scoring all hand the model :func:`model_frame`'s output, and the MLflow
signature declares the same types (:data:`MLFLOW_TYPES`), so ``mlflow.pyfunc`` accepts that
frame as is:

========  ==========================================  ================  ==============
kind      pandas dtype                                missing value     MLflow type
========  ==========================================  ================  ==============
category  ``object`` (Python ``str``)                 ``None``          ``string``
flag      ``int64``; ``Int64`` when a value is missing ``pd.NA``        ``long``
int       ``int64``; ``Int64`` when a value is missing ``pd.NA``        ``long``
float     ``float64``                                 ``NaN``           ``double``
========  ==========================================  ================  ==============

Integers stay integers: a non-integral value in an integer column is refused (never truncated),
and a missing one makes the column pandas' nullable integer type rather than a float. Only
training sees missing values (the model's imputers learn them); serving and batch scoring score
complete rows only, whose integer columns are plain ``int64``.

Imports pandas only when called: serving imports this module on its start-up path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from churnops.contracts.columns import FEATURES, KIND_TYPES, Column, Kind

if TYPE_CHECKING:
    import pandas as pd

PANDAS_DTYPES: dict[Kind, str] = {kind: types.pandas for kind, types in KIND_TYPES.items()}
"""The dtype of each kind's column when no value is missing."""
NULLABLE_INTEGER = KIND_TYPES["int"].pandas_nullable
"""The dtype of an integer or flag column with a missing value."""
MLFLOW_TYPES: dict[Kind, str] = {kind: types.mlflow for kind, types in KIND_TYPES.items()}
"""The MLflow signature type of each kind (``mlflow.types.DataType`` names)."""


class ModelInputError(ValueError):
    """Rows the model cannot be given as they are; the message names the column."""


def model_frame(
    data: pd.DataFrame | Sequence[Mapping[str, Any]], *, columns: Sequence[Column] = FEATURES
) -> pd.DataFrame:
    """``data`` (a frame, or rows as mappings) as the model's input: ``columns`` in that order,
    each with its kind's dtype (module docstring); other columns are dropped and the index kept.

    Raises :class:`ModelInputError` for a missing column or a value its kind cannot hold.
    """
    import pandas as pd

    if not isinstance(data, pd.DataFrame):
        return _from_rows(data, columns=columns)
    absent = [c.name for c in columns if c.name not in data.columns]
    if absent:
        raise ModelInputError(f"the model input lacks feature column(s) {absent}")
    out = {c.name: _column(data[c.name], c) for c in columns}
    return pd.DataFrame(out, index=data.index)


def _from_rows(rows: Sequence[Mapping[str, Any]], *, columns: Sequence[Column]) -> pd.DataFrame:
    """Rows (mappings; an absent key is a missing value) as :func:`model_frame` builds them."""
    import numpy as np
    import pandas as pd

    rows = list(rows)
    out: dict[str, Any] = {}
    for col in columns:
        values = [row.get(col.name) for row in rows]
        plain = KIND_TYPES[col.kind].python  # converted without pandas' per-column inference:
        if all(type(v) in plain for v in values):  # bool is not an int here: it takes the checked way
            out[col.name] = np.array(values, dtype=PANDAS_DTYPES[col.kind])
        else:
            out[col.name] = _column(pd.Series(values, dtype="object"), col)
    return pd.DataFrame(out, index=pd.RangeIndex(len(rows)))


def _column(values: pd.Series, col: Column) -> pd.Series:
    import pandas as pd

    kind = col.kind
    missing = values.isna()
    has_missing = bool(missing.any())
    if kind == "category":
        as_object = values.astype("object")
        return as_object.where(~missing, None) if has_missing else as_object
    try:
        if kind == "float":
            return pd.to_numeric(values).astype("float64")
        numbers = values if values.dtype.kind in "iub" else pd.to_numeric(values)
        if numbers.dtype.kind in "iub" and not isinstance(numbers.dtype, pd.api.extensions.ExtensionDtype):
            return numbers.astype("int64")
        # floats, objects or a nullable integer: through Int64, which refuses 1.5 rather than truncate
        nullable = numbers.astype(pd.Int64Dtype())
        return nullable if has_missing else nullable.astype("int64")
    except (TypeError, ValueError) as error:
        raise ModelInputError(
            f"feature {col.name!r} ({kind}) has a value its kind cannot hold: {error}"
        ) from None
