"""The contracts every component shares, importing none of them.

``columns`` (the column schema), ``stages`` (Stage and Trigger), ``artifacts`` (the run artifact
layout and the SHA-256 of a model directory), ``online`` (the online-row status rule),
``prediction_log`` (the record, its schema and the window reader), ``monitoring_terms`` (what a
matured label, the drifted share and a drifted window are, and the functions that count them),
``timestamps`` (the one rule for times a user gives), ``model_input`` (the model's input frame
and its dtypes, for every path that calls a model), ``redaction`` (no URL credential in any
printed text), ``sources`` (the Feast source parquet files), ``monitoring_runs`` (the MLflow
run a drift report is logged as, which retraining reads back) ``bootstrap`` (the paired
bootstrap intervals of metrics on the same rows: compare and the gates) and ``loop_events``
(the loop's events as Alertmanager alerts: names, labels, grouping, inhibition).
Dependencies point one way: contracts <- components <- wiring <- entry points
(docs/architecture.md).
"""
