"""The MLflow names of model versions and training runs that one component writes and another
reads: version tags, run tags, run params and run metrics, each defined once here.

Writers and readers import the constant; a reader of a key every writer records uses
:func:`required`, which raises :class:`MissingKeyError` naming the key instead of defaulting.
A drift report's run has its own names in :mod:`churnops.contracts.monitoring_runs`; a tag
name means one thing whatever it is on (the training labels window of a version is
``churnops.training_labels_*``, the drift window of a monitoring run ``churnops.window_*``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

V = TypeVar("V")


class MissingKeyError(LookupError):
    """An MLflow tag, param or metric every writer records is absent: the message names it."""


def required(values: Mapping[str, V], key: str, *, where: str) -> V:
    """``values[key]``, or :class:`MissingKeyError` naming the key and ``where`` it was read."""
    try:
        return values[key]
    except KeyError:
        raise MissingKeyError(f"{where} has no {key!r}: it was not written by this ChurnOps") from None


# --- model-version tags registry_ext writes at registration ------------------------------------

SHA256_TAG = "sha256"
"""Model-version tag holding the artifact digest (serving checks it before loading)."""
FEATURE_SERVICE_TAG = "feature_service"
"""Model-version tag naming the FeatureService the model was trained on."""
VERSION_STAGE_TAG = "stage"
"""Model-version tag mirroring the registry stage (so Archived is visible in MLflow's UI)."""
SIGNATURE_TAG = "churnops.signature"
"""Model-version tag: base64 Ed25519 signature of ``artifacts.signed_payload``."""
SIGNING_KEY_ID_TAG = "churnops.signing_key_id"
"""Model-version tag: id of the key that signed (``artifacts.KEY_ID_CHARS`` hex of SHA-256(public key))."""
MANIFEST_TAG = "churnops.manifest"
"""Model-version tag: the manifest as canonical JSON ``{"relative/path": "sha256 hex", ...}``."""

# --- model-version tags training passes to registration (``registry list`` shows the trigger) --

VERSION_TRIGGER_TAG = "trigger"
VERSION_MODEL_FAMILY_TAG = "model_family"
VERSION_SPLIT_STRATEGY_TAG = "split_strategy"
VERSION_TRAINING_FRAME_TAG = "training_frame_sha256"
VERSION_CODE_VERSION_TAG = "code_version"
VERSION_GATE_POLICY_TAG = "gate_policy"

# --- a retrained version's provenance (retraining writes, ``registry show`` and resume read) ---

RETRAIN_TRIGGER_TAG = "churnops.trigger"
"""Also the training run's trigger tag: the same value, on the run and on the version."""
DECISION_TAG = "churnops.decision_id"
"""The retrain decision a run/version was made for (``none`` for a retrain without one)."""
DRIFT_REPORT_TAG = "churnops.drift_report"
TRAINING_LABELS_START_TAG = "churnops.training_labels_start"
TRAINING_LABELS_END_TAG = "churnops.training_labels_end"
"""The labels window a retrain trained on. Versions registered before these names carry it as
``churnops.window_start``/``_end`` (a drift report's window names); nothing but ``registry show``
displays it, so those are not read back."""

# --- training-run tags (training writes; registry_ext and operators read) ----------------------

RUN_FEATURE_SERVICE_TAG = "feast.feature_service"
"""Run tag Feast's native MLflow integration writes (the lineage fallback)."""
RUN_FEATURE_REFS_TAG = "feast.feature_refs"
"""Run tag Feast's native MLflow integration writes: the feature references, comma separated."""
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
"""Experiment tag read by the MLflow 3 UI: without it a new experiment opens in the GenAI overview."""
MODEL_TRAINING_KIND = "custom_model_development"
GIT_COMMIT_TAG = "mlflow.source.git.commit"
RUN_TAG_PREFIX = "churnops."
RUN_FEATURE_SERVICE = f"{RUN_TAG_PREFIX}feature_service"
RUN_CODE_VERSION = f"{RUN_TAG_PREFIX}code_version"
RUN_GATE_POLICY = f"{RUN_TAG_PREFIX}gate_policy"
RUN_ERROR = f"{RUN_TAG_PREFIX}error"
RUN_MODEL_FAMILY = f"{RUN_TAG_PREFIX}model_family"
RUN_SPLIT_STRATEGY = f"{RUN_TAG_PREFIX}split_strategy"
RUN_SPLIT_REASON = f"{RUN_TAG_PREFIX}split_reason"
RUN_TRAINING_FRAME = f"{RUN_TAG_PREFIX}training_frame_sha256"
RUN_COMPARED_WITH = f"{RUN_TAG_PREFIX}compared_with_production"
RUN_MODEL_SHA256 = f"{RUN_TAG_PREFIX}model_sha256"
RUN_GATES = f"{RUN_TAG_PREFIX}gates"
RUN_GATES_FAILED = f"{RUN_TAG_PREFIX}gates_failed_rules"
RUN_REGISTRATION = f"{RUN_TAG_PREFIX}registration"
RUN_VERSION = f"{RUN_TAG_PREFIX}version"
HEARTBEAT_TAG = "churnops.heartbeat"
"""MLflow run tag (ISO-8601 UTC time) a long-running writer may refresh to show it is alive.

A run RUNNING with neither a heartbeat nor a start newer than the stale threshold is treated as
killed and marked FAILED by the next registry write command (``ModelRegistry.fail_stale_runs``).
"""

# --- training-run params ----------------------------------------------------------------------

TRAINING_SPLITS = ("train", "validation", "test")
"""The time-ordered splits of a training run; each run records its window as params."""


def window_param(split: str, bound: str) -> str:
    """The run param holding one bound (``start`` / ``end``) of a split's window of feature times."""
    if split not in TRAINING_SPLITS or bound not in ("start", "end"):
        raise ValueError(f"no window param for split {split!r} bound {bound!r}")
    return f"window_{split}_{bound}"


# --- training-run metrics (copied onto the registry row; monitoring, retraining, the CLI read) -

VALIDATION_PREFIX = "val"
TEST_PREFIX = "test"
PRODUCTION_TEST_PREFIX = "production_test"
"""The prefixes of ``SplitMetrics.flat``: ``{prefix}_{metric}`` and ``{prefix}_slice_{slice}_{metric}``."""
THRESHOLD_METRIC = "threshold"
"""The decision threshold chosen on validation (precision/recall at the threshold use it)."""


def split_metric(prefix: str, metric: str) -> str:
    """The run metric of one split's overall ``metric`` (``test_roc_auc``)."""
    return f"{prefix}_{metric}"


TEST_ROC_AUC = split_metric(TEST_PREFIX, "roc_auc")
"""The test split's ROC-AUC: ``registry list`` shows it, retraining compares matured labels with it."""
