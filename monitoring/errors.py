"""Errors of drift monitoring; each names the problem and what to do about it."""

from __future__ import annotations


class MonitoringError(ValueError):
    """Drift could not be computed from the frames given (the message says why and how to fix it)."""


class DriftPolicyError(MonitoringError):
    """The drift policy file is missing, unreadable or invalid."""
