"""The `churnops` command line: thin wiring from typer commands to library functions."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import typer

from churnops.commands import (
    demo,
    features,
    generate,
    ingest,
    log,
    loop,
    monitor,
    registry,
    retrain,
    score,
    serve,
    simulate,
    train,
)
from churnops.commands.home_guard import check_home

app = typer.Typer(
    name="churnops",
    help="Feast + MLflow churn prediction: data, features, training, registry, serving.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Bring churn data in: ingest a Telco CSV or generate synthetic data.")
data_app.command("ingest")(ingest.ingest)
data_app.command("generate")(generate.generate)
app.add_typer(data_app, name="data")


app.add_typer(features.app, name="features")
app.add_typer(registry.app, name="registry")
app.add_typer(monitor.app, name="monitor")
app.add_typer(retrain.app, name="retrain")
app.add_typer(log.app, name="log")
app.add_typer(loop.app, name="loop")
app.command("train")(train.train)
app.command("score")(score.score)
app.command("serve")(serve.serve)
app.command("demo")(demo.demo)
app.command("simulate")(simulate.simulate)


def _service_errors_exit_2(callback: Callable[..., Any]) -> Callable[..., Any]:
    """An unreachable service (``wiring.ServiceUnreachableError``) ends any command with its
    one-line message and exit code 2, never a traceback."""

    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        from churnops.commands.common import fail
        from churnops.wiring import ServiceUnreachableError

        try:
            return callback(*args, **kwargs)
        except ServiceUnreachableError as error:
            raise fail(str(error), json_output=bool(kwargs.get("json_output", False))) from None

    return run


def _guarded(command: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` preceded by the home check (same signature, so typer sees the same options)."""

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        check_home(command, json_output=bool(kwargs.get("json_output")))
        return function(*args, **kwargs)

    return run


def _wrap_commands(group: typer.Typer) -> None:
    for command in group.registered_commands:
        if command.callback is not None:
            command.callback = _service_errors_exit_2(command.callback)
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            _wrap_commands(sub.typer_instance)


def _guard_commands(group: typer.Typer, prefix: str = "") -> None:
    """Wrap every command of ``group`` (and its sub-groups) with the home check: a command whose
    inputs are missing from the home exits 2, saying which home and what to run first, before it
    runs or creates anything (``churnops.commands.home_guard``)."""
    for info in group.registered_commands:
        if info.callback is None:
            continue
        name = info.name or info.callback.__name__.replace("_", "-")
        info.callback = _guarded(f"{prefix}{name}", info.callback)
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            _guard_commands(sub.typer_instance, f"{prefix}{sub.name} ")


_wrap_commands(app)
_guard_commands(app)  # the home check runs first
