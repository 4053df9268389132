"""Side-by-side comparison of versions: data for a rich table, and a self-contained HTML report.

What it reads for each version: the ``models`` row (stage, metrics snapshot, sha), the gate
results recorded at registration, the MLflow run (params, and tags such as
``feast.feature_refs``), the data windows (run params/tags whose key mentions ``window``,
``start``/``end`` dates, e.g. training's ``window_train_start``), and the model itself (loaded
with its SHA-256 verified). All versions are scored on the **same** rows: the newest compared
version's ``evaluation/holdout.parquet`` (label column ``churned``), giving ROC and calibration
curves and holdout metrics that are directly comparable.
"""

from __future__ import annotations

import html
import json
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from churnops.contracts.artifacts import HOLDOUT_ARTIFACT
from churnops.contracts.columns import LABEL
from registry_ext.errors import InvalidInputError

if TYPE_CHECKING:
    from registry_ext.records import ModelRecord
    from registry_ext.registry import ModelRegistry

_NON_FEATURES = {"customer_id", "event_timestamp", "created", LABEL}
_WINDOW_KEY = re.compile(r"(window|(^|[._])(start|end)(_date)?$|_(from|to)$|date)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Curves:
    """One version scored on the shared holdout rows."""

    roc_fpr: list[float]
    roc_tpr: list[float]
    calibration_mean_predicted: list[float]
    calibration_fraction_positive: list[float]
    metrics: dict[str, float]


@dataclass(frozen=True, slots=True)
class Section:
    """One table of the comparison: a row label and one cell per version."""

    title: str
    headers: list[str]
    rows: list[tuple[str, list[str]]]


@dataclass
class Comparison:
    """Versions side by side (``versions`` in the order asked; deltas are against the first)."""

    name: str
    versions: list[ModelRecord]
    metrics: dict[str, list[float | None]]
    deltas: dict[str, list[float | None]]
    params: dict[str, list[str | None]]
    features: list[list[str]]
    data_windows: dict[str, list[str | None]]
    gate_results: list[Any]
    holdout_version: int | None = None
    holdout_rows: int = 0
    curves: dict[int, Curves] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def headers(self) -> list[str]:
        return [f"v{r.version}" for r in self.versions]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": [r.to_json() for r in self.versions],
            "stages": {str(r.version): r.stage.value for r in self.versions},
            "metrics": self.metrics,
            "deltas": self.deltas,
            "params": self.params,
            "features": {str(r.version): f for r, f in zip(self.versions, self.features, strict=True)},
            "data_windows": self.data_windows,
            "gate_results": {
                str(r.version): g for r, g in zip(self.versions, self.gate_results, strict=True)
            },
            "holdout": {"version": self.holdout_version, "rows": self.holdout_rows},
            "curves": {
                str(v): {
                    "roc": {"fpr": c.roc_fpr, "tpr": c.roc_tpr},
                    "calibration": {
                        "mean_predicted": c.calibration_mean_predicted,
                        "fraction_positive": c.calibration_fraction_positive,
                    },
                    "metrics": c.metrics,
                }
                for v, c in self.curves.items()
            },
            "notes": self.notes,
        }

    def sections(self) -> list[Section]:
        """The comparison as tables (what the CLI prints)."""

        def num(value: float | None, signed: bool = False) -> str:
            if value is None:
                return "-"
            return f"{value:+.4f}" if signed else f"{value:.4f}"

        base = f"v{self.versions[0].version}"
        out = [
            Section("Stages", self.headers, [("stage", [r.stage.value for r in self.versions])]),
            Section("Metrics", self.headers, [(k, [num(v) for v in vs]) for k, vs in self.metrics.items()]),
            Section(
                f"Metric deltas vs {base}",
                self.headers,
                [(k, [num(v, signed=True) for v in vs]) for k, vs in self.deltas.items()],
            ),
            Section("Params", self.headers, [(k, [v or "-" for v in vs]) for k, vs in self.params.items()]),
            Section(
                "Data windows",
                self.headers,
                [(k, [v or "-" for v in vs]) for k, vs in self.data_windows.items()],
            ),
            Section(
                "Features",
                self.headers,
                [
                    ("count", [str(len(f)) for f in self.features]),
                    ("features", [", ".join(f) for f in self.features]),
                ],
            ),
            Section(
                "Gate results",
                self.headers,
                [("gates", [_gate_summary(g) for g in self.gate_results])],
            ),
        ]
        return out


def _gate_summary(gates: Any) -> str:
    """'passed 6/6' or 'FAILED 4/6: rule, rule' from a stored GateReport (raw JSON otherwise)."""
    if gates is None:
        return "-"
    if isinstance(gates, dict) and "passed" in gates:
        results = [r for r in gates.get("results", []) if isinstance(r, dict)]
        checked = [r for r in results if not r.get("skipped")]
        failed = [str(r.get("rule")) for r in checked if not r.get("passed")]
        head = "passed" if gates["passed"] else "FAILED"
        summary = f"{head} {len(checked) - len(failed)}/{len(checked)}"
        return summary + (f": {', '.join(failed)}" if failed else "")
    return json.dumps(gates, default=str)[:160]


def compare_versions(*, registry: ModelRegistry, versions: Sequence[int]) -> Comparison:
    """Compare ``versions`` of the registry's model (at least two, no duplicates)."""
    numbers = [int(v) for v in versions]
    if len(numbers) < 2:
        raise InvalidInputError("compare needs at least two versions")
    if len(set(numbers)) != len(numbers):
        raise InvalidInputError(f"compare got a version twice: {numbers}")
    records = [registry.get(v) for v in numbers]
    runs = [registry.client.get_run(r.run_id) for r in records]

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
        refs = run.data.tags.get("feast.feature_refs")
        if refs:
            features.append([ref.strip() for ref in refs.split(",") if ref.strip()])
        else:
            features.append([str(c) for c in getattr(model, "feature_names_in_", [])])

    comparison = Comparison(
        name=registry.model_name,
        versions=records,
        metrics=metrics,
        deltas={},
        params=params,
        features=features,
        data_windows=windows,
        gate_results=[r.gate_results for r in records],
    )
    _score_on_holdout(comparison, registry=registry, models=models)
    for key, values in list(comparison.metrics.items()):
        base = values[0]
        comparison.deltas[key] = [None if (v is None or base is None) else v - base for v in values]
    return comparison


def _score_on_holdout(comparison: Comparison, *, registry: ModelRegistry, models: list[Any]) -> None:
    import pandas as pd
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import roc_curve

    from churnops.training.metrics import compute_metrics

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
        comparison.notes.append("the holdout rows hold a single class; ROC is undefined")
        return
    comparison.holdout_version = newest.version
    comparison.holdout_rows = len(holdout)
    holdout_metrics: dict[str, list[float | None]] = {
        "holdout_roc_auc": [],
        "holdout_pr_auc": [],
        "holdout_brier": [],
    }
    for record, model in zip(comparison.versions, models, strict=True):
        columns = [str(c) for c in getattr(model, "feature_names_in_", [])] or [
            c for c in holdout.columns if c not in _NON_FEATURES
        ]
        missing = [c for c in columns if c not in holdout.columns]
        if missing:
            comparison.notes.append(f"version {record.version} needs columns the holdout lacks: {missing}")
            for values in holdout_metrics.values():
                values.append(None)
            continue
        scores = model.predict_proba(holdout[columns])[:, 1]
        fpr, tpr, _ = roc_curve(labels, scores)
        mean_predicted, fraction_positive = calibration_curve(labels, scores, n_bins=10, strategy="quantile")
        # The same metric code training and its gates use (threshold-free metrics only here).
        computed = compute_metrics(labels, scores, threshold=0.5)
        scored = {f"holdout_{key}": computed[key] for key in ("roc_auc", "pr_auc", "brier")}
        for key, value in scored.items():
            holdout_metrics[key].append(value)
        comparison.curves[record.version] = Curves(
            roc_fpr=[float(x) for x in fpr],
            roc_tpr=[float(x) for x in tpr],
            calibration_mean_predicted=[float(x) for x in mean_predicted],
            calibration_fraction_positive=[float(x) for x in fraction_positive],
            metrics=scored,
        )
    comparison.metrics.update(holdout_metrics)


def write_html(*, comparison: Comparison, path: Path) -> Path:
    """Write a self-contained HTML report (plotly's JavaScript inlined, no network needed)."""
    import plotly.graph_objects as go

    roc = go.Figure()
    roc.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dot", "color": "grey"})
    )
    calibration = go.Figure()
    calibration.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect", line={"dash": "dot", "color": "grey"})
    )
    for version, curves in comparison.curves.items():
        auc = curves.metrics.get("holdout_roc_auc", float("nan"))
        roc.add_trace(
            go.Scatter(x=curves.roc_fpr, y=curves.roc_tpr, mode="lines", name=f"v{version} (AUC {auc:.3f})")
        )
        calibration.add_trace(
            go.Scatter(
                x=curves.calibration_mean_predicted,
                y=curves.calibration_fraction_positive,
                mode="lines+markers",
                name=f"v{version}",
            )
        )
    holdout = (
        f"scored on {comparison.holdout_rows} held-out rows of version {comparison.holdout_version}"
        if comparison.holdout_version is not None
        else "no shared holdout"
    )
    roc.update_layout(
        title=f"ROC ({holdout})", xaxis_title="false positive rate", yaxis_title="true positive rate"
    )
    calibration.update_layout(
        title=f"Calibration ({holdout})",
        xaxis_title="mean predicted probability",
        yaxis_title="fraction churned",
    )
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(comparison.name)}: versions {', '.join(comparison.headers)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}"
        "th{background:#f3f3f3}</style></head><body>",
        f"<h1>{html.escape(comparison.name)}: {html.escape(', '.join(comparison.headers))}</h1>",
    ]
    for section in comparison.sections():
        parts.append(f"<h2>{html.escape(section.title)}</h2><table><tr><th></th>")
        parts.extend(f"<th>{html.escape(h)}</th>" for h in section.headers)
        parts.append("</tr>")
        for label, cells in section.rows:
            parts.append(f"<tr><th>{html.escape(label)}</th>")
            parts.extend(f"<td>{html.escape(c)}</td>" for c in cells)
            parts.append("</tr>")
        parts.append("</table>")
    for note in comparison.notes:
        parts.append(f"<p><em>{html.escape(note)}</em></p>")
    parts.append(roc.to_html(full_html=False, include_plotlyjs=True))
    parts.append(calibration.to_html(full_html=False, include_plotlyjs=False))
    parts.append("</body></html>")
    target = path.expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(parts), encoding="utf-8")
    return target
