"""Versions compared for a promotion decision: the same rows first, the details after.

Every version is scored on the **same** rows: the newest compared version's
``evaluation/holdout.parquet`` (label column ``churned``). On those rows come the verdict, the
headline metrics (ROC-AUC, PR-AUC, Brier, top-decile lift) with paired bootstrap confidence
intervals (:mod:`churnops.contracts.bootstrap`), ROC-AUC per slice and its difference, and the curves
(ROC, precision-recall, calibration, cumulative gain). Each version's own metrics snapshot (on
its own test set, so not comparable across versions), params, data windows, features and gate
results are the details.

The baseline is the Production version when it is among those compared, else the first one
asked for; every difference is ``version - baseline``.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from churnops.contracts.artifacts import HOLDOUT_ARTIFACT
from churnops.contracts.bootstrap import (
    HEADLINE_METRICS,
    BootstrapResult,
    Interval,
    bootstrap_intervals,
)
from churnops.contracts.columns import FEATURES, LABEL, SCORE
from churnops.contracts.mlflow_keys import RUN_FEATURE_REFS_TAG
from churnops.contracts.model_input import model_frame
from churnops.contracts.stages import Stage
from registry_ext.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

    from registry_ext.records import ModelRecord
    from registry_ext.registry import ModelRegistry

_NON_FEATURES = {"customer_id", "event_timestamp", "created", LABEL, SCORE}
_WINDOW_KEY = re.compile(r"(window|(^|[._])(start|end)(_date)?$|_(from|to)$|date)", re.IGNORECASE)
_COUNT_KEY = re.compile(r"(^|_)(rows|positives)(_|$)")
CURVE_POINTS = 200
"""Curves are thinned to about this many points (the report stays small and fast)."""

METRIC_LABELS = {
    "roc_auc": "ROC-AUC",
    "pr_auc": "PR-AUC",
    "brier": "Brier",
    "top_decile_lift": "top-decile lift",
}


class SliceRule(Protocol):
    """A named subset of rows (training's ``SliceSpec``)."""

    @property
    def name(self) -> str: ...

    def mask(self, frame: pd.DataFrame) -> Any: ...


@dataclass(frozen=True, slots=True)
class Curves:
    """One version scored on the shared rows (curves thinned to about ``CURVE_POINTS`` points)."""

    roc_fpr: list[float]
    roc_tpr: list[float]
    pr_recall: list[float]
    pr_precision: list[float]
    calibration_mean_predicted: list[float]
    calibration_fraction_positive: list[float]
    gain_targeted: list[float]
    gain_captured: list[float]
    score_max: float
    metrics: dict[str, float]


@dataclass(frozen=True, slots=True)
class SliceResult:
    """ROC-AUC of every version on one slice of the shared rows (None: too few rows or one class)."""

    name: str
    rows: int
    positives: int
    roc_auc: dict[int, float | None]
    delta: dict[int, float | None]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the shared rows say about one version against the baseline (on ROC-AUC)."""

    version: int
    outcome: str  # better | worse | no clear difference | not comparable
    text: str


class SectionId(StrEnum):
    """Which table of the details a :class:`Section` is: what a reader picks sections by (the
    CLI prints only :attr:`GATES` without ``--details``); the title is for display only."""

    OWN_TEST_METRICS = "own_test_metrics"
    PARAMS = "params"
    DATA_WINDOWS = "data_windows"
    FEATURES = "features"
    GATES = "gates"


SECTION_TITLES: dict[SectionId, str] = {
    SectionId.OWN_TEST_METRICS: (
        "Each version's own test set (different rows: not comparable across versions)"
    ),
    SectionId.PARAMS: "Params",
    SectionId.DATA_WINDOWS: "Data windows",
    SectionId.FEATURES: "Features",
    SectionId.GATES: "Gate results at registration",
}
"""Each section's display title (the CLI's table titles and the HTML's)."""


@dataclass(frozen=True, slots=True)
class Section:
    """One table of the comparison: a row label and one cell per version."""

    id: SectionId
    headers: list[str]
    rows: list[tuple[str, list[str]]]

    @property
    def title(self) -> str:
        return SECTION_TITLES[self.id]


@dataclass
class Comparison:
    """Versions side by side (``versions`` in the order asked)."""

    name: str
    versions: list[ModelRecord]
    baseline: int
    metrics: dict[str, list[float | None]]
    deltas: dict[str, list[float | None]]
    params: dict[str, list[str | None]]
    features: list[list[str]]
    data_windows: dict[str, list[str | None]]
    gate_results: list[Any]
    holdout_version: int | None = None
    holdout_rows: int = 0
    holdout_positives: int = 0
    bootstrap: BootstrapResult | None = None
    slices: list[SliceResult] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    curves: dict[int, Curves] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def headers(self) -> list[str]:
        return [self.label(r.version) for r in self.versions]

    def label(self, version: int) -> str:
        stage = next((r.stage for r in self.versions if r.version == version), None)
        return f"v{version}" if stage in (None, Stage.NONE) else f"v{version} ({stage.value})"

    @property
    def others(self) -> list[int]:
        return [r.version for r in self.versions if r.version != self.baseline]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "baseline": self.baseline,
            "verdicts": [{"version": v.version, "outcome": v.outcome, "text": v.text} for v in self.verdicts],
            "versions": [r.to_json() for r in self.versions],
            "stages": {str(r.version): r.stage.value for r in self.versions},
            "holdout": {
                "version": self.holdout_version,
                "rows": self.holdout_rows,
                "positives": self.holdout_positives,
            },
            "headline": None if self.bootstrap is None else _bootstrap_json(self.bootstrap),
            "slices": [
                {
                    "name": s.name,
                    "rows": s.rows,
                    "positives": s.positives,
                    "roc_auc": {str(k): v for k, v in s.roc_auc.items()},
                    "delta": {str(k): v for k, v in s.delta.items()},
                }
                for s in self.slices
            ],
            "metrics": self.metrics,
            "deltas": self.deltas,
            "params": self.params,
            "features": {str(r.version): f for r, f in zip(self.versions, self.features, strict=True)},
            "data_windows": self.data_windows,
            "gate_results": {
                str(r.version): g for r, g in zip(self.versions, self.gate_results, strict=True)
            },
            "curves": {
                str(v): {
                    "roc": {"fpr": c.roc_fpr, "tpr": c.roc_tpr},
                    "pr": {"recall": c.pr_recall, "precision": c.pr_precision},
                    "calibration": {
                        "mean_predicted": c.calibration_mean_predicted,
                        "fraction_positive": c.calibration_fraction_positive,
                    },
                    "gain": {"targeted": c.gain_targeted, "captured": c.gain_captured},
                    "metrics": c.metrics,
                }
                for v, c in self.curves.items()
            },
            "notes": self.notes,
        }

    def headline_rows(self) -> list[tuple[str, list[tuple[Interval | None, bool]]]]:
        """(metric label, cells): one cell per version, then one per difference vs the baseline.

        A cell is the interval and whether it is a difference.
        """
        out: list[tuple[str, list[tuple[Interval | None, bool]]]] = []
        if self.bootstrap is None:
            return out
        for metric in HEADLINE_METRICS:
            cells: list[tuple[Interval | None, bool]] = [
                (self.bootstrap.values.get(r.version, {}).get(metric), False) for r in self.versions
            ]
            cells.extend((self.bootstrap.deltas.get(v, {}).get(metric), True) for v in self.others)
            out.append((METRIC_LABELS[metric], cells))
        return out

    def detail_sections(self) -> list[Section]:
        """The details as tables: own-test-set metrics, params, windows, features, gates."""
        return [
            Section(
                SectionId.OWN_TEST_METRICS,
                self.headers,
                [(k, [format_metric(k, v) for v in vs]) for k, vs in self.metrics.items()],
            ),
            Section(
                SectionId.PARAMS, self.headers, [(k, [v or "-" for v in vs]) for k, vs in self.params.items()]
            ),
            Section(
                SectionId.DATA_WINDOWS,
                self.headers,
                [(k, [v or "-" for v in vs]) for k, vs in self.data_windows.items()],
            ),
            Section(
                SectionId.FEATURES,
                self.headers,
                [
                    ("count", [str(len(f)) for f in self.features]),
                    ("features", [", ".join(f) for f in self.features]),
                ],
            ),
            Section(
                SectionId.GATES,
                self.headers,
                [("gates", [gate_summary(g) for g in self.gate_results])],
            ),
        ]

    def sections(self) -> list[Section]:
        """Every table, headline first (what ``--details`` prints)."""
        return self.detail_sections()


def format_metric(key: str, value: float | None) -> str:
    """Counts (``rows``, ``positives``) as integers with separators, other metrics with 4 decimals."""
    if value is None:
        return "-"
    if not math.isfinite(value):
        return str(value)
    if _COUNT_KEY.search(key) and float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.4f}"


def format_interval(interval: Interval | None, *, signed: bool) -> tuple[str, str]:
    """(estimate, "low to high") with 3 decimals; signed for differences."""
    if interval is None or not math.isfinite(interval.estimate):
        return "-", ""
    spec = "+.3f" if signed else ".3f"
    if not math.isfinite(interval.low):
        return format(interval.estimate, spec), ""
    return format(interval.estimate, spec), f"{interval.low:{spec}} to {interval.high:{spec}}"


def gate_summary(gates: Any) -> str:
    """'passed 6/6' or 'FAILED 4/6: rule, rule' from a stored GateReport (raw JSON otherwise)."""
    if gates is None:
        return "-"
    if isinstance(gates, dict) and "passed" in gates:
        results = [r for r in gates.get("results", []) if isinstance(r, dict)]
        checked = [r for r in results if not r.get("skipped")]
        failed = [str(r.get("rule")) for r in checked if not r.get("passed")]
        head = "passed" if gates["passed"] else "FAILED"
        if not results:
            return head
        summary = f"{head} {len(checked) - len(failed)}/{len(checked)}"
        return summary + (f": {', '.join(failed)}" if failed else "")
    return json.dumps(gates, default=str)[:160]


def _bootstrap_json(result: BootstrapResult) -> dict[str, Any]:
    return {
        "rows": result.rows,
        "resamples": result.resamples,
        "confidence": result.confidence,
        "seed": result.seed,
        "baseline": result.baseline,
        "values": {str(v): {m: i.to_json() for m, i in ms.items()} for v, ms in result.values.items()},
        "deltas": {str(v): {m: i.to_json() for m, i in ms.items()} for v, ms in result.deltas.items()},
    }


def compare_versions(
    *,
    registry: ModelRegistry,
    versions: Sequence[int],
    slices: Sequence[SliceRule],
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """Compare ``versions`` of the registry's model (at least two, no duplicates).

    ``slices`` are the named row subsets to compare on: the gate policy's (``GatePolicy.slice_specs()``),
    which the caller loads (registry_ext does not read training's policy files).
    """
    numbers = [int(v) for v in versions]
    if len(numbers) < 2:
        raise InvalidInputError("compare needs at least two versions")
    if len(set(numbers)) != len(numbers):
        raise InvalidInputError(f"compare got a version twice: {numbers}")
    if resamples < 1:
        raise InvalidInputError(f"resamples must be at least 1, got {resamples}")
    records = [registry.get(v) for v in numbers]
    runs = [registry.client.get_run(r.run_id) for r in records]
    production = [r.version for r in records if r.stage is Stage.PRODUCTION]
    baseline = production[0] if production else numbers[0]

    metric_keys = sorted({k for r in records for k in r.metrics})
    metrics: dict[str, list[float | None]] = {k: [r.metrics.get(k) for r in records] for k in metric_keys}

    param_keys = sorted({k for run in runs for k in run.data.params if not _WINDOW_KEY.search(k)})
    params = {k: [run.data.params.get(k) for run in runs] for k in param_keys}
    window_keys = sorted(
        {k for run in runs for k in (*run.data.params, *run.data.tags) if _WINDOW_KEY.search(k)}
        - {k for run in runs for k in run.data.tags if k.startswith("mlflow.")}
    )
    windows = {k: [run.data.params.get(k, run.data.tags.get(k)) for run in runs] for k in window_keys}

    models = [registry.load_model(r.version) for r in records]
    features: list[list[str]] = []
    for run, model in zip(runs, models, strict=True):
        refs = run.data.tags.get(RUN_FEATURE_REFS_TAG)  # absent: not trained through Feast's integration
        if refs:
            features.append([ref.strip() for ref in refs.split(",") if ref.strip()])
        else:
            features.append([str(c) for c in getattr(model, "feature_names_in_", [])])

    comparison = Comparison(
        name=registry.model_name,
        versions=records,
        baseline=baseline,
        metrics=metrics,
        deltas={},
        params=params,
        features=features,
        data_windows=windows,
        gate_results=[r.gate_results for r in records],
    )
    _score_on_shared_rows(
        comparison,
        registry=registry,
        models=models,
        slices=list(slices),
        resamples=resamples,
        confidence=confidence,
        seed=seed,
    )
    index = numbers.index(baseline)
    for key, values in list(comparison.metrics.items()):
        base = values[index]
        comparison.deltas[key] = [None if (v is None or base is None) else v - base for v in values]
    comparison.verdicts = _verdicts(comparison)
    return comparison


def _thin(*arrays: Any, points: int = CURVE_POINTS) -> list[list[float]]:
    """Every ``len // points``-th point, first and last kept."""
    size = len(arrays[0])
    if size <= points:
        keep = np.arange(size)
    else:
        keep = np.unique(np.append(np.linspace(0, size - 1, points).round().astype(int), size - 1))
    return [[float(x) for x in np.asarray(a)[keep]] for a in arrays]


def _curves(labels: Any, scores: Any, metrics: dict[str, float]) -> Curves:
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import precision_recall_curve, roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    precision, recall, _ = precision_recall_curve(labels, scores)
    mean_predicted, fraction_positive = calibration_curve(labels, scores, n_bins=10, strategy="quantile")
    order = np.argsort(-scores, kind="stable")
    captured = np.concatenate([[0.0], np.cumsum(labels[order]) / max(int(labels.sum()), 1)])
    targeted = np.arange(len(labels) + 1) / len(labels)
    roc = _thin(fpr, tpr)
    pr = _thin(recall[::-1], precision[::-1])
    gain = _thin(targeted, captured)
    return Curves(
        roc_fpr=roc[0],
        roc_tpr=roc[1],
        pr_recall=pr[0],
        pr_precision=pr[1],
        calibration_mean_predicted=[float(x) for x in mean_predicted],
        calibration_fraction_positive=[float(x) for x in fraction_positive],
        gain_targeted=gain[0],
        gain_captured=gain[1],
        score_max=float(np.max(scores)),
        metrics=metrics,
    )


def _score_on_shared_rows(
    comparison: Comparison,
    *,
    registry: ModelRegistry,
    models: list[Any],
    slices: list[SliceRule],
    resamples: int,
    confidence: float,
    seed: int,
) -> None:
    import pandas as pd

    newest = max(comparison.versions, key=lambda r: r.version)
    with tempfile.TemporaryDirectory(prefix="registry_ext-holdout-") as tmp:
        try:
            local = registry.client.download_artifacts(newest.run_id, HOLDOUT_ARTIFACT, tmp)
        except Exception as error:
            comparison.notes.append(f"no {HOLDOUT_ARTIFACT} in the run of version {newest.version}: {error}")
            return
        holdout = pd.read_parquet(local)
    if LABEL not in holdout.columns:
        comparison.notes.append(f"{HOLDOUT_ARTIFACT} of version {newest.version} has no {LABEL!r} column")
        return
    labels = holdout[LABEL].astype(int).to_numpy()
    if len(set(labels)) < 2:
        comparison.notes.append("the shared rows hold a single class; ROC-AUC is undefined")
        return
    comparison.holdout_version = newest.version
    comparison.holdout_rows = len(holdout)
    comparison.holdout_positives = int(labels.sum())
    scores: dict[int, Any] = {}
    for record, model in zip(comparison.versions, models, strict=True):
        columns = [str(c) for c in getattr(model, "feature_names_in_", [])] or [
            c for c in holdout.columns if c not in _NON_FEATURES
        ]
        missing = [c for c in columns if c not in holdout.columns]
        if missing:
            comparison.notes.append(f"version {record.version} needs columns the shared rows lack: {missing}")
            continue
        declared = {c.name: c for c in FEATURES}
        x = (  # the one model-input builder when every column is a declared feature
            model_frame(holdout, columns=[declared[c] for c in columns])
            if all(c in declared for c in columns)
            else holdout[columns]
        )
        scores[record.version] = np.asarray(model.predict_proba(x)[:, 1], dtype=np.float64)
    if comparison.baseline not in scores:
        comparison.notes.append(f"the baseline version {comparison.baseline} could not be scored")
        return
    result = bootstrap_intervals(
        labels=labels,
        scores=scores,
        baseline=comparison.baseline,
        resamples=resamples,
        confidence=confidence,
        seed=seed,
    )
    comparison.bootstrap = result
    for metric in HEADLINE_METRICS:
        comparison.metrics[f"holdout_{metric}"] = [
            result.values[r.version][metric].estimate if r.version in scores else None
            for r in comparison.versions
        ]
    for version, s in scores.items():
        comparison.curves[version] = _curves(
            labels, s, {f"holdout_{m}": result.values[version][m].estimate for m in HEADLINE_METRICS}
        )
    comparison.slices = _slice_results(holdout, labels, scores, slices, baseline=comparison.baseline)


def _slice_results(
    holdout: pd.DataFrame,
    labels: Any,
    scores: dict[int, Any],
    slices: list[SliceRule],
    *,
    baseline: int,
    min_rows: int = 30,
) -> list[SliceResult]:
    from sklearn.metrics import roc_auc_score

    out = []
    for rule in slices:
        column = getattr(rule, "column", None)
        if column is not None and column not in holdout.columns:
            continue  # a slice on a column these rows lack: not shown
        mask = np.asarray(rule.mask(holdout), dtype=bool)
        y = labels[mask]
        rows, positives = int(mask.sum()), int(y.sum())
        usable = rows >= min_rows and 0 < positives < rows
        aucs: dict[int, float | None] = {
            v: float(roc_auc_score(y, s[mask])) if usable else None for v, s in scores.items()
        }
        base = aucs.get(baseline)
        deltas = {
            v: None if a is None or base is None else a - base for v, a in aucs.items() if v != baseline
        }
        out.append(SliceResult(rule.name, rows, positives, aucs, deltas))
    return out


def _verdicts(comparison: Comparison) -> list[Verdict]:
    out = []
    base = comparison.label(comparison.baseline)
    result = comparison.bootstrap
    for version in comparison.others:
        label = comparison.label(version)
        delta = None if result is None else result.deltas.get(version, {}).get("roc_auc")
        if delta is None or not math.isfinite(delta.estimate):
            out.append(Verdict(version, "not comparable", f"{label} vs {base}: not scored on the same rows"))
            continue
        pct = round(result.confidence * 100) if result else 95
        ci = f"{pct}% CI {delta.low:+.3f} to {delta.high:+.3f}"
        if delta.low > 0:
            outcome = "better"
        elif delta.high < 0:
            outcome = "worse"
        else:
            outcome = "no clear difference"
        text = (
            f"{label} vs {base} on the same {comparison.holdout_rows:,} rows: "
            f"ROC-AUC {delta.estimate:+.3f} ({ci}): {outcome}"
        )
        out.append(Verdict(version, outcome, text))
    return out
