"""A home applied under DuckDB switches to Feast's Spark offline store and back (issue 19.5).

Under the other store, a training set is refused with the fix (exit 2, never Feast's "requires
SparkSource" or a bare AssertionError); `churnops features apply` re-registers the sources for
the new store; the training sets of both engines are then identical. The Spark training set runs
as a real `churnops` subprocess, so that its JVM is started by this command and whatever it
prints would reach the captured terminal: it must land in <home>/feast/spark.log instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from churnops.cli import app
from churnops.data.generate import generate_churn_data, write_generated
from churnops.features.engine_switch import SourcesForOtherStore
from churnops.features.store import apply
from churnops.features.training_set import build_training_set, label_entity_frame
from churnops.settings import Settings
from churnops.wiring import feast_definitions, feature_store

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CHURNOPS = str(Path(sys.executable).parent / "churnops")
SOURCES = {"profile_source", "account_source", "services_source", "labels_source"}
# What Spark's JVM prints at start (log4j lines, its banner, the JVM's own warnings).
JVM_NOISE = ("log4j", " WARN ", "Setting default log level", "sc.setLogLevel", "WARNING:", "Warning")


def training_set(settings: Settings) -> pd.DataFrame:
    entity = label_entity_frame(sources_dir=settings.sources_dir)
    return build_training_set(store=feature_store(settings), entity_df=entity)


def test_an_applied_duckdb_home_switches_to_spark_and_back(
    settings: Settings, spark: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_generated(
        data=generate_churn_data(customers=200, months=3, seed=19), sources_dir=settings.sources_dir
    )
    apply(store=feature_store(settings), defs=feast_definitions(settings))
    duck = training_set(settings)
    sparked_settings = settings.model_copy(update={"offline_store": spark})
    variables = {"CHURNOPS_HOME": str(settings.home), "CHURNOPS_PROJECT": settings.project}
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CHURNOPS_OFFLINE_STORE", spark)

    # Before the apply: a clear refusal naming the fix, under the library and the CLI.
    with pytest.raises(SourcesForOtherStore, match="run `churnops features apply`"):
        training_set(sparked_settings)
    runner = CliRunner()
    refused = runner.invoke(app, ["features", "training-set", "--json"])
    assert refused.exit_code == 2, refused.output
    error = json.loads(refused.stdout)["error"]
    assert "`churnops features apply`" in error and "FileSource (applied under duckdb)" in error

    switched = runner.invoke(app, ["features", "apply", "--json"])
    assert switched.exit_code == 0, switched.output
    applied = json.loads(switched.stdout)
    assert applied["offline_store"] == "spark"
    assert applied["replaced_sources"] == dict.fromkeys(SOURCES, "FileSource")
    again = runner.invoke(app, ["features", "apply", "--json"])  # idempotent: nothing to replace
    assert json.loads(again.stdout)["replaced_sources"] == {}

    # The Spark training set, from a fresh process: its terminal shows ChurnOps' output only.
    out = settings.home / "spark_training_set.parquet"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHURNOPS_", "MLFLOW_"))}
    env.update(variables, CHURNOPS_OFFLINE_STORE=spark, COLUMNS="80", NO_COLOR="1")
    done = subprocess.run(
        [CHURNOPS, "features", "training-set", "--out", str(out), "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=settings.home.parent,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["rows_out"] == len(duck)  # stdout is the one JSON object
    noise = [n for n in JVM_NOISE if n in done.stderr]
    assert not noise, f"{noise} on the terminal:\n{done.stderr[-3000:]}"
    log = (settings.home / "feast" / "spark.log").read_text()
    assert "log4j" in log  # what the JVM printed went here
    duck.to_parquet(expected := settings.home / "duckdb_training_set.parquet", index=False)
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(expected), check_exact=True)

    # And back to DuckDB: refused until applied, then the same frame.
    with pytest.raises(SourcesForOtherStore, match="SparkSource \\(applied under spark\\)"):
        training_set(settings)
    back = apply(store=feature_store(settings), defs=feast_definitions(settings))
    assert back.replaced == dict.fromkeys(SOURCES, "SparkSource")
    pd.testing.assert_frame_equal(training_set(settings), duck, check_exact=True)


def test_a_spark_home_without_java_says_so_with_its_log(settings: Settings, spark: str) -> None:
    """No Java runtime (JAVA_HOME pointing nowhere): exit 2 quoting the JVM log, no traceback."""
    write_generated(
        data=generate_churn_data(customers=50, months=2, seed=3), sources_dir=settings.sources_dir
    )
    sparked = settings.model_copy(update={"offline_store": spark})
    apply(store=feature_store(sparked), defs=feast_definitions(sparked))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHURNOPS_", "MLFLOW_"))}
    env.update(
        CHURNOPS_HOME=str(settings.home),
        CHURNOPS_PROJECT=settings.project,
        CHURNOPS_OFFLINE_STORE=spark,
        JAVA_HOME=str(settings.home / "no-java"),
    )
    done = subprocess.run(
        [CHURNOPS, "features", "training-set"], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 2, done.stdout + done.stderr
    log = settings.home / "feast" / "spark.log"
    assert done.stderr.startswith("error: the Spark offline store's JVM did not start"), done.stderr
    assert str(log) in done.stderr and "no-java/bin/java" in done.stderr
    assert "Traceback" not in done.stderr and "Warning" not in done.stderr
