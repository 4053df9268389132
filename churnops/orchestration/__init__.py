"""Dagster definitions for the monitoring -> retraining loop (the ``churnops[orchestration]`` extra).

``dagster dev -m churnops.orchestration.definitions`` (or a workspace pointing at that module)
loads them. Importing this package imports nothing from Dagster; the definitions module does.
"""
