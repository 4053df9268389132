"""The comparison as one self-contained HTML page for a reviewer deciding a promotion.

Top to bottom: the verdict, the headline metrics on the same rows with their confidence
intervals and coloured differences, ROC-AUC per slice, the curves (ROC, precision-recall,
calibration with axes fitted to the scores, cumulative gain and lift), then the details in
collapsed ``<details>`` sections. Every user-supplied string is escaped; plotly's JavaScript is
inlined, so the page needs no network.
"""

from __future__ import annotations

import math
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from churnops.contracts.bootstrap import HEADLINE_METRICS
from churnops.contracts.metric_directions import improvement
from registry_ext.compare import METRIC_LABELS, format_interval

if TYPE_CHECKING:
    from churnops.contracts.bootstrap import Interval
    from registry_ext.compare import Comparison

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1280px;padding:0 1em;color:#1f2328}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;max-width:100%}
td,th{border:1px solid #d0d7de;padding:4px 10px;text-align:left;vertical-align:top;
overflow-wrap:anywhere}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.ci{color:#57606a;font-size:.85em;display:block}
.better{background:#dafbe1}.worse{background:#ffebe9}
.better.clear{background:#aceebb}.worse.clear{background:#ffcecb}
.verdict{font-size:1.1em;padding:.6em 1em;border-radius:6px;margin:.4em 0;border:1px solid #d0d7de}
.verdict.better{border-color:#1a7f37}.verdict.worse{border-color:#cf222e}
.plots{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:1em}
.plots>div{min-width:0}
details{margin:.6em 0}summary{cursor:pointer;font-weight:600}
.note{color:#57606a}
"""


def _cell(interval: Interval | None, *, metric: str, delta: bool) -> str:
    estimate, span = format_interval(interval, signed=delta)
    classes = ["num"]
    if delta and interval is not None and math.isfinite(interval.estimate):
        better = improvement(metric, interval.estimate)
        if better != 0:
            classes.append("better" if better > 0 else "worse")
            low = improvement(metric, interval.low)
            high = improvement(metric, interval.high)
            if min(low, high) > 0 or max(low, high) < 0:
                classes.append("clear")  # the interval excludes zero
    ci = f"<span class='ci'>{escape(span)}</span>" if span else ""
    return f"<td class='{' '.join(classes)}'>{escape(estimate)}{ci}</td>"


def _headline(comparison: Comparison) -> list[str]:
    result = comparison.bootstrap
    if result is None:
        return ["<p class='note'>No shared rows: the headline metrics are unavailable.</p>"]
    pct = round(result.confidence * 100)
    parts = [
        "<h2>Headline metrics on the same rows</h2>",
        f"<p class='note'>{comparison.holdout_rows:,} rows ({comparison.holdout_positives:,} churned) "
        f"held out by v{comparison.holdout_version}; {pct}% paired bootstrap intervals over "
        f"{result.resamples:,} resamples (seed {result.seed}). Differences are against "
        f"{escape(comparison.label(comparison.baseline))}; green is better (lower Brier, higher "
        "others), stronger when the interval excludes zero.</p>",
        "<table><tr><th>metric</th>",
    ]
    parts.extend(f"<th>{escape(h)}</th>" for h in comparison.headers)
    parts.extend(f"<th>v{v} &minus; v{comparison.baseline}</th>" for v in comparison.others)
    parts.append("</tr>")
    for metric in HEADLINE_METRICS:
        parts.append(f"<tr><th>{escape(METRIC_LABELS[metric])}</th>")
        for record in comparison.versions:
            parts.append(_cell(result.values.get(record.version, {}).get(metric), metric=metric, delta=False))
        for version in comparison.others:
            parts.append(_cell(result.deltas.get(version, {}).get(metric), metric=metric, delta=True))
        parts.append("</tr>")
    parts.append("</table>")
    return parts


def _slices(comparison: Comparison) -> list[str]:
    if not comparison.slices:
        return []
    parts = ["<h2>ROC-AUC per slice (same rows)</h2><table><tr><th>slice</th><th>rows</th><th>churned</th>"]
    parts.extend(f"<th>{escape(h)}</th>" for h in comparison.headers)
    parts.extend(f"<th>v{v} &minus; v{comparison.baseline}</th>" for v in comparison.others)
    parts.append("</tr>")
    for s in comparison.slices:
        parts.append(
            f"<tr><th>{escape(s.name)}</th>"
            f"<td class='num'>{s.rows:,}</td><td class='num'>{s.positives:,}</td>"
        )
        for record in comparison.versions:
            value = s.roc_auc.get(record.version)
            parts.append(f"<td class='num'>{'-' if value is None else f'{value:.3f}'}</td>")
        for version in comparison.others:
            delta = s.delta.get(version)
            if delta is None:
                parts.append("<td class='num'>-</td>")
            else:
                kind = "better" if delta > 0 else "worse" if delta < 0 else ""
                parts.append(f"<td class='num {kind}'>{delta:+.3f}</td>")
        parts.append("</tr>")
    parts.append("</table>")
    return parts


def _figures(comparison: Comparison) -> list[Any]:
    import plotly.graph_objects as go

    def figure(title: str, x: str, y: str) -> Any:
        fig = go.Figure()
        fig.update_layout(
            title=title,
            xaxis_title=x,
            yaxis_title=y,
            height=420,
            margin={"l": 60, "r": 20, "t": 50, "b": 50},
            legend={"x": 0.99, "xanchor": "right", "y": 0.01, "yanchor": "bottom"},
        )
        return fig

    roc = figure("ROC", "false positive rate", "true positive rate")
    roc.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dot", "color": "grey"})
    )
    pr = figure("Precision-recall", "recall", "precision")
    calibration = figure(
        "Calibration (axes fitted to the scores)", "mean predicted probability", "fraction churned"
    )
    gain = figure(
        "Cumulative gain", "share of customers targeted (highest scores first)", "share of churners reached"
    )
    gain.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="random", line={"dash": "dot", "color": "grey"})
    )
    lift = figure("Cumulative lift", "share of customers targeted", "lift over the base rate")
    top = 0.0
    for version, c in comparison.curves.items():
        name = escape(comparison.label(version))
        auc = c.metrics.get("holdout_roc_auc", float("nan"))
        ap = c.metrics.get("holdout_pr_auc", float("nan"))
        roc.add_trace(go.Scatter(x=c.roc_fpr, y=c.roc_tpr, mode="lines", name=f"{name} (AUC {auc:.3f})"))
        pr.add_trace(go.Scatter(x=c.pr_recall, y=c.pr_precision, mode="lines", name=f"{name} (AP {ap:.3f})"))
        calibration.add_trace(
            go.Scatter(
                x=c.calibration_mean_predicted,
                y=c.calibration_fraction_positive,
                mode="lines+markers",
                name=name,
            )
        )
        gain.add_trace(go.Scatter(x=c.gain_targeted, y=c.gain_captured, mode="lines", name=name))
        pairs = [(x, y / x) for x, y in zip(c.gain_targeted, c.gain_captured, strict=True) if x >= 0.01]
        lift.add_trace(go.Scatter(x=[p[0] for p in pairs], y=[p[1] for p in pairs], mode="lines", name=name))
        top = max(top, c.score_max, *c.calibration_mean_predicted, *c.calibration_fraction_positive)
    if comparison.holdout_rows and comparison.holdout_positives:
        base = 1.0
        lift.add_trace(
            go.Scatter(
                x=[0.01, 1],
                y=[base, base],
                mode="lines",
                name="random",
                line={"dash": "dot", "color": "grey"},
            )
        )
    edge = min(1.0, top * 1.05) if top > 0 else 1.0
    calibration.add_trace(
        go.Scatter(
            x=[0, edge], y=[0, edge], mode="lines", name="perfect", line={"dash": "dot", "color": "grey"}
        )
    )
    calibration.update_xaxes(range=[0, edge])
    calibration.update_yaxes(range=[0, edge])
    return [roc, pr, calibration, gain, lift]


def _details(comparison: Comparison) -> list[str]:
    parts = ["<h2>Details</h2>"]
    for section in comparison.detail_sections():
        parts.append(f"<details><summary>{escape(section.title)}</summary><table><tr><th></th>")
        parts.extend(f"<th>{escape(h)}</th>" for h in section.headers)
        parts.append("</tr>")
        for label, cells in section.rows:
            parts.append(f"<tr><th>{escape(label)}</th>")
            parts.extend(f"<td>{escape(c)}</td>" for c in cells)
            parts.append("</tr>")
        parts.append("</table></details>")
    return parts


def render_html(*, comparison: Comparison) -> str:
    """The report as one HTML string."""
    title = f"{comparison.name}: {', '.join(comparison.headers)}"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
    ]
    for verdict in comparison.verdicts:
        kind = {"better": "better", "worse": "worse"}.get(verdict.outcome, "")
        parts.append(
            f"<p class='verdict {kind}'><strong>{escape(verdict.outcome)}</strong>: "
            f"{escape(verdict.text)}</p>"
        )
    for note in comparison.notes:
        parts.append(f"<p class='note'><em>{escape(note)}</em></p>")
    parts.extend(_headline(comparison))
    parts.extend(_slices(comparison))
    if comparison.curves:
        parts.append("<h2>Curves (same rows)</h2><div class='plots'>")
        for index, fig in enumerate(_figures(comparison)):
            html = fig.to_html(
                full_html=False,
                include_plotlyjs=index == 0,
                default_width="100%",
                config={"responsive": True},
            )
            parts.append(f"<div>{html}</div>")
        parts.append("</div>")
    parts.extend(_details(comparison))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html(*, comparison: Comparison, path: Path) -> Path:
    """Write the report to ``path`` (parents created); returns the resolved path."""
    target = path.expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_html(comparison=comparison), encoding="utf-8")
    return target
