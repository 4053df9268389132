"""Writers that meet on one embedded home at the same instant (issue 17.8), made to meet with a
barrier: training runs logging the same dataset into one SQLite MLflow store (MLflow checks,
then inserts: `UNIQUE constraint failed: datasets...` for all but one of 8 runs without the
retry), monitoring reports creating their experiment, and drift reports writing one Evidently
workspace (JSON files: one project each, or a file read half written, without the lock).

Real MLflow (SQLite) and Evidently; threads instead of processes only to line the calls up
(``flock`` excludes two open files of one process just as of two processes).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pytest

from churnops.contracts.home_lock import home_lock, lock_path

pytestmark = pytest.mark.integration

T = TypeVar("T")
WRITERS = 8


def _at_once(count: int, work: Callable[[int], T]) -> list[T | BaseException]:
    """Run ``work(i)`` in ``count`` threads released together; each result or exception."""
    barrier = threading.Barrier(count)
    out: list[T | BaseException] = [RuntimeError("not run")] * count

    def one(i: int) -> None:
        barrier.wait(timeout=60)
        try:
            out[i] = work(i)
        except BaseException as error:  # collected, asserted on by the test
            out[i] = error

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return out


def test_runs_logging_the_same_dataset_at_once_all_succeed(tmp_path: Path) -> None:
    from mlflow import MlflowClient
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.entities import DatasetInput, InputTag

    from churnops.training.pipeline import log_dataset_inputs

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("concurrent-datasets")
    runs = [client.create_run(experiment).info.run_id for _ in range(WRITERS)]
    frame = pd.DataFrame({"customer_id": [f"c{i}" for i in range(200)], "churned": [0, 1] * 100})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's schema hint and source-resolution notes
        dataset = from_pandas(
            frame, source=f"file://{tmp_path}/holdout.parquet", targets="churned", name="holdout"
        )
        entity = dataset._to_mlflow_entity()

    def log(i: int) -> None:
        inputs = [DatasetInput(entity, tags=[InputTag("mlflow.data.context", "evaluation")])]
        log_dataset_inputs(client=MlflowClient(uri), run_id=runs[i], inputs=inputs)

    results = _at_once(WRITERS, log)
    assert [r for r in results if r is not None] == []
    for run_id in runs:
        inputs = client.get_run(run_id).inputs
        assert inputs is not None
        (logged,) = inputs.dataset_inputs
        assert logged.dataset.name == "holdout" and logged.dataset.digest == entity.digest


@pytest.fixture(scope="module")
def drift_result() -> Any:
    from churnops.contracts.columns import FEATURES
    from churnops.data.generate import generate_churn_data
    from churnops.training.candidates import fit_candidate, score
    from churnops.training.frame import labels, model_input
    from monitoring.drift import detect_drift
    from monitoring.policy import load_policy

    frame = generate_churn_data(customers=1500, months=3, seed=4).frame
    x = model_input(frame, columns=list(FEATURES))
    fitted = fit_candidate(family="logistic_regression", columns=list(FEATURES), x=x, y=labels(frame))
    scored = frame.assign(score=score(fitted.pipeline, x)).reset_index(drop=True)
    ts = scored["event_timestamp"]
    reference, current = scored[ts < ts.max()], scored[ts == ts.max()]
    return detect_drift(
        reference=reference,
        current=current,
        holdout=reference,
        labelled=current,
        policy=load_policy(),
        model_name="churn",
        model_version=1,
        window_start=current["event_timestamp"].min().to_pydatetime(),
        window_end=current["event_timestamp"].max().to_pydatetime(),
    )


def test_drift_reports_at_once_share_one_workspace_project_and_say_they_wait(
    drift_result: Any, tmp_path: Path
) -> None:
    from evidently.ui.workspace import Workspace
    from mlflow import MlflowClient

    from monitoring.report import add_to_workspace, log_to_mlflow

    workspace_dir = tmp_path / "evidently"
    said: list[str] = []
    entries = _at_once(
        4,
        lambda _i: add_to_workspace(
            result=drift_result, workspace_dir=workspace_dir, project_name="churn", on_wait=said.append
        ),
    )
    failures = [e for e in entries if isinstance(e, BaseException)]
    assert failures == []
    assert len({e.project_id for e in entries if not isinstance(e, BaseException)}) == 1
    assert said and all("waiting for another drift report" in s for s in said), said
    workspace = Workspace(str(workspace_dir))
    [project] = workspace.search_project("churn")
    listed = {str(i) for i in workspace.list_runs(project.id)}
    assert len(listed) == sum(len(e.snapshot_ids) for e in entries if not isinstance(e, BaseException))
    assert lock_path(workspace_dir).is_file() and not list(workspace_dir.glob("*.lock"))

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri).search_experiments()  # create the schema once (MLflow's own migration)
    runs = _at_once(
        4, lambda _i: log_to_mlflow(client=MlflowClient(uri), result=drift_result, html_path=None)
    )
    assert [r for r in runs if isinstance(r, BaseException)] == []
    assert len(set(runs)) == 4


def test_a_writer_that_cannot_get_the_lock_in_time_says_who_holds_it(tmp_path: Path) -> None:
    from churnops.contracts.home_lock import HomeBusyError

    target = tmp_path / "evidently"
    said: list[str] = []
    with (
        home_lock(target, what="drift report"),
        pytest.raises(HomeBusyError, match="another drift report held"),
        home_lock(target, what="drift report", timeout_s=0.2, on_wait=said.append),
    ):
        pass
    assert said == [f"waiting for another drift report on {target} to finish (lock {lock_path(target)})..."]
    with home_lock(target, what="drift report", timeout_s=0.2):  # released: free again
        pass
