"""Errors of the training step; each names the problem and what to do about it."""

from __future__ import annotations


class TrainingError(ValueError):
    """Training could not produce a trustworthy candidate (the message says why)."""


class TrainingDataError(TrainingError):
    """The training set cannot support a model: too few rows, no positives, no negatives, ..."""


class MetricError(TrainingError):
    """A metric came out non-finite (NaN or infinite): the evaluation cannot be trusted."""


class GatePolicyError(TrainingError):
    """The gate policy file is missing, unreadable or invalid."""
