"""The Spark session of Feast's Spark offline store, with the JVM's output kept off the terminal.

Feast starts its session on the first retrieval through PySpark, whose JVM inherits the
terminal: Spark's log4j lines, its "Setting default log level" banner and the JVM's own
warnings land between a command's output lines. :func:`start_spark_session` starts the same
session first (the store's ``spark_conf``), with the JVM's stdout and stderr appended to
``<feast repo>/spark.log`` (``<home>/feast/spark.log`` for the CLI) through PySpark's
``launch_gateway(popen_kwargs=...)``; Feast then finds it active and uses it. One JVM serves
the process: a session already running is left as it is (its log stays where it was).
"""

from __future__ import annotations

from pathlib import Path

from feast import FeatureStore

JVM_LOG = "spark.log"
_TAIL_LINES = 5


class SparkStartError(RuntimeError):
    """The JVM behind the Spark offline store did not start; the message quotes its log."""


def quiet_alpha_warnings(*, offline_store: str) -> None:
    """Ignore the RuntimeWarning Feast's Spark store and SparkSource give on every use, even on
    reading a SparkSource from the registry under DuckDB (alpha status: nothing a user can act
    on). On Spark, Feast's Spark store is imported first: its import puts
    ``simplefilter("once", RuntimeWarning)`` in front of every filter, which would outrank this."""
    import warnings

    if offline_store == "spark":
        import feast.infra.offline_stores.contrib.spark_offline_store.spark  # noqa: F401

    warnings.filterwarnings(
        "ignore",
        message="The spark (offline store|data source API) is an experimental feature",
        category=RuntimeWarning,
    )


def jvm_log_path(store: FeatureStore) -> Path:
    """Where the JVM of ``store``'s Spark session writes its output."""
    return Path(str(store.repo_path)) / JVM_LOG


def start_spark_session(*, store: FeatureStore) -> None:
    """Start the store's Spark session unless one is running; a no-op for other offline stores."""
    if getattr(store.config.offline_store, "type", None) != "spark":
        return
    from pyspark import SparkConf, SparkContext
    from pyspark.errors import PySparkRuntimeError
    from pyspark.java_gateway import launch_gateway
    from pyspark.sql import SparkSession

    if SparkContext._active_spark_context is not None:
        return  # Feast's builder reuses it
    conf = SparkConf().setAll(list((store.config.offline_store.spark_conf or {}).items()))
    gateway = None
    if SparkContext._gateway is None:  # a stopped session's JVM is reused as PySpark does
        log_path = jvm_log_path(store)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
            offset = log.tell()
            try:
                gateway = launch_gateway(conf, popen_kwargs={"stdout": log, "stderr": log})  # type: ignore[no-untyped-call]
            except PySparkRuntimeError as error:
                raise SparkStartError(
                    f"the Spark offline store's JVM did not start ({error.getCondition()}); "
                    f"its log {log_path} ends: {_tail(log_path, offset=offset)}"
                ) from None
    SparkContext(conf=conf, gateway=gateway)
    SparkSession.builder.config(conf=conf).getOrCreate()


def _tail(path: Path, *, offset: int) -> str:
    """The last lines this start wrote to the log (it is appended to by every run)."""
    with path.open("rb") as log:
        log.seek(offset)
        lines = log.read().decode("utf-8", errors="replace").strip().splitlines()
    return " | ".join(lines[-_TAIL_LINES:]) or "(nothing)"
