"""What a registered version was trained against: the baselines monitoring compares a window with.

``reference/reference.parquet`` (a seeded sample of the training rows with the model's score)
and ``evaluation/holdout.parquet`` (the out-of-time test rows with the score and the label) are
written into every training run (``churnops.contracts.artifacts``); this reads them back for a
model version through MLflow's API.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from churnops.contracts.artifacts import HOLDOUT_ARTIFACT, REFERENCE_ARTIFACT
from churnops.contracts.columns import SCORE
from churnops.contracts.mlflow_keys import TRAINING_SPLITS, window_param
from monitoring.errors import MonitoringError

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    import pyarrow as pa
    from mlflow import MlflowClient

    from churnops.contracts.monitoring_terms import Rows


@dataclass(frozen=True)
class TrainingWindow:
    """The feature times a version's run learned from or was selected on (train .. test): a
    prediction on a snapshot inside it is in-sample, never evidence of live performance."""

    start: datetime
    end: datetime

    def to_json(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


def training_window(params: Mapping[str, str]) -> TrainingWindow | None:
    """The window a training run recorded in its params, or None for a run that recorded none
    (a model registered by other means): its in-sample rows cannot be told apart, and the
    reports say so instead of assuming."""
    names = [window_param(split, bound) for split in TRAINING_SPLITS for bound in ("start", "end")]
    present = [name for name in names if name in params]
    if not present:
        return None
    if len(present) != len(names):
        missing = sorted(set(names) - set(present))
        raise MonitoringError(f"the training run records part of its window only (missing {missing})")
    starts = [pd.Timestamp(params[window_param(split, "start")]) for split in TRAINING_SPLITS]
    ends = [pd.Timestamp(params[window_param(split, "end")]) for split in TRAINING_SPLITS]
    return TrainingWindow(
        start=min(starts).tz_convert("UTC").to_pydatetime(), end=max(ends).tz_convert("UTC").to_pydatetime()
    )


@dataclass(frozen=True)
class Baselines:
    model_name: str
    version: str
    run_id: str
    reference: pd.DataFrame
    holdout: pd.DataFrame | None
    test_metrics: dict[str, float]
    training_window: TrainingWindow | None


def load_baselines(*, client: MlflowClient, model_name: str, version: str) -> Baselines:
    """The version's reference sample, holdout rows and recorded metrics (threshold included)."""
    from mlflow.exceptions import MlflowException

    try:
        model_version = client.get_model_version(model_name, str(version))
    except MlflowException as error:
        raise MonitoringError(f"model {model_name!r} has no version {version}: {error.message}") from None
    run_id = model_version.run_id
    if not run_id:
        raise MonitoringError(f"model {model_name!r} version {version} has no training run to compare with")
    run = client.get_run(run_id)
    metrics = dict(run.data.metrics)
    with tempfile.TemporaryDirectory(prefix="churnops-baseline-") as tmp:
        try:
            reference = pd.read_parquet(client.download_artifacts(run_id, REFERENCE_ARTIFACT, tmp))
        except (MlflowException, OSError) as error:
            raise MonitoringError(
                f"version {version} (run {run_id}) has no {REFERENCE_ARTIFACT}: retrain it with this "
                f"version of ChurnOps ({error})"
            ) from None
        holdout: pd.DataFrame | None
        try:
            holdout = pd.read_parquet(client.download_artifacts(run_id, HOLDOUT_ARTIFACT, tmp))
        except (MlflowException, OSError) as error:  # concept drift: insufficient_data, 0 holdout rows
            logger.warning(
                "version %s (run %s): no %s, so no concept-drift baseline (%s)",
                version,
                run_id,
                HOLDOUT_ARTIFACT,
                error,
                exc_info=error,
            )
            holdout = None
    if holdout is not None and SCORE not in holdout.columns:
        holdout = None  # trained before the holdout carried its score: no concept-drift baseline
    return Baselines(
        model_name=model_name,
        version=str(version),
        run_id=run_id,
        reference=reference,
        holdout=holdout,
        test_metrics=metrics,
        training_window=training_window(run.data.params),
    )


def label_rows(sources_dir: Path) -> Rows:
    """The label source for DuckDB to read in place (an empty Arrow table when there is none)."""
    from churnops.contracts.columns import LABEL_SOURCE
    from churnops.contracts.prediction_log import ParquetRows
    from churnops.contracts.sources import source_schema

    files = tuple(sorted(str(f) for f in (sources_dir / LABEL_SOURCE).glob("*.parquet")))
    return ParquetRows(files=files) if files else source_schema(LABEL_SOURCE).empty_table()


def read_labels(
    sources_dir: Path,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    as_of: datetime | None = None,
) -> pa.Table:
    """The label source with ``created`` (when each label became known), as an Arrow table.

    ``start`` / ``end``: only the snapshots (``event_timestamp``) in ``[start, end]``; ``as_of``:
    only the label rows known then (``created <= as_of``). The filters are pushed into the parquet
    scan, so a join with a window reads the labels it can use, not the whole source."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    from churnops.contracts.columns import CREATED_TS, EVENT_TS, LABEL_SOURCE, TS_TYPE
    from churnops.contracts.sources import source_schema

    schema = source_schema(LABEL_SOURCE)
    files = sorted(str(f) for f in (sources_dir / LABEL_SOURCE).glob("*.parquet"))
    if not files:
        return schema.empty_table()
    condition = None
    for part in (
        None if start is None else ds.field(EVENT_TS) >= pa.scalar(start, TS_TYPE),
        None if end is None else ds.field(EVENT_TS) <= pa.scalar(end, TS_TYPE),
        None if as_of is None else ds.field(CREATED_TS) <= pa.scalar(as_of, TS_TYPE),
    ):
        if part is not None:
            condition = part if condition is None else condition & part
    return ds.dataset(files, schema=schema, format="parquet").to_table(filter=condition)
