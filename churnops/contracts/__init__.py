"""The contracts every component shares, importing none of them.

``columns`` (the column schema), ``stages`` (Stage and Trigger), ``artifacts`` (the run artifact
layout and the SHA-256 of a model directory), ``online`` (the online-row status rule),
``prediction_log`` (the record, its schema and the window reader) and ``timestamps`` (the one
rule for times a user gives). Dependencies point one way: contracts <- components <- wiring
<- entry points (docs/architecture.md).
"""
