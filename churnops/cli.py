"""The `churnops` command line: thin wiring from typer commands to library functions."""

from __future__ import annotations

import typer

from churnops.commands import (
    demo,
    features,
    generate,
    ingest,
    monitor,
    registry,
    retrain,
    score,
    serve,
    simulate,
    train,
)

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
app.command("train")(train.train)
app.command("score")(score.score)
app.command("serve")(serve.serve)
app.command("demo")(demo.demo)
app.command("simulate")(simulate.simulate)
