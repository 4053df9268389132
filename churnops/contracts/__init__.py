"""The contracts every component shares, importing none of them.

``columns`` (the column schema), ``stages`` (Stage and Trigger), ``artifacts`` (the run artifact
layout and the SHA-256 of a model directory), ``online`` (the online-row status rule),
``prediction_log`` (the record, its schema and the window reader), ``monitoring_terms`` (what a
matured label, the drifted share and a drifted window are, and the functions that count them),
``timestamps`` (the one rule for times a user gives), ``model_input`` (the model's input frame
and its dtypes, for every path that calls a model) and ``redaction`` (no URL credential in any
printed text).
Dependencies point one way: contracts <- components <- wiring <- entry points
(docs/architecture.md).
"""
