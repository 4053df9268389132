"""The backtest as a picture (PNG: ROC-AUC per month per policy, retrains marked, the drift
injection shaded) and as an HTML timeline (the picture, then one row per policy and a cell per
month coloured by ROC-AUC, retrains and promotions marked). Every string shown is escaped."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from churnops.simulation.backtest import Simulation

COLOURS = {"never": "#7f7f7f", "monthly": "#1f77b4", "policy": "#d62728"}


def write_png(*, simulation: Simulation, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.8), dpi=110)
    months = [m.month for m in simulation.policies[0].months]
    x = list(range(len(months)))
    styles = ("-", "--", ":")
    for n, run in enumerate(simulation.policies):
        y = [m.roc_auc if m.roc_auc is not None else float("nan") for m in run.months]
        colour = COLOURS.get(run.name)
        label = f"{run.name} ({run.retrains} retrains, {run.promotions} promoted)"
        ax.plot(
            x,
            y,
            marker="o",
            label=label,
            color=colour,
            linewidth=2.2 - 0.5 * n,
            linestyle=styles[n % 3],
            alpha=0.9,
        )
        # a new version serves from the month after its promotion: mark where it starts
        for i in range(1, len(run.months)):
            if run.months[i].version != run.months[i - 1].version:
                ax.scatter([i], [y[i]], marker="^", s=120, color=colour, zorder=3)
                ax.annotate(
                    f"v{run.months[i].version}",
                    (i, y[i]),
                    textcoords="offset points",
                    xytext=(6, 6 + 10 * n),
                    fontsize=8,
                    color=colour,
                )
        refused = [i for i, m in enumerate(run.months) if m.retrained and not m.promoted]
        ax.scatter(refused, [y[i] for i in refused], marker="x", s=70, color=colour, zorder=3)
    starts: dict[str, list[str]] = {}  # drift month -> what was injected then
    for option, when in (
        ("data drift", simulation.spec.data_drift_from),
        ("concept drift", simulation.spec.concept_drift_from),
    ):
        if when is not None and f"{when:%Y-%m}" in months:
            starts.setdefault(f"{when:%Y-%m}", []).append(option)
    for n, (month, options) in enumerate(sorted(starts.items())):
        start = months.index(month)
        ax.axvspan(start - 0.5, len(months) - 0.5, alpha=0.08, color="#ff7f0e")
        label = " + ".join(options).replace(" drift + ", " + ")
        ax.annotate(
            f"{label} from {month}",
            (start - 0.4, 0.95 - 0.05 * n),
            xycoords=("data", "axes fraction"),
            fontsize=9,
            color="#b35900",
        )
    ax.set_xticks(x, months, rotation=45, ha="right")
    ax.set_ylabel("ROC-AUC on matured labels")
    ax.set_title(
        "Retraining policies on the same history (^ a new version serves, x retrain refused by the gates)"
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=9, framealpha=0.9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _cell_colour(auc: float | None, low: float, high: float) -> str:
    if auc is None:
        return "#eeeeee"
    share = 0.0 if high <= low else min(1.0, max(0.0, (auc - low) / (high - low)))
    red, green = int(235 - 120 * share), int(150 + 80 * share)
    return f"rgb({red},{green},140)"


def write_html(*, simulation: Simulation, path: Path, png: Path | None) -> Path:
    e = html.escape
    values = [m.roc_auc for p in simulation.policies for m in p.months if m.roc_auc is not None]
    low, high = (min(values), max(values)) if values else (0.5, 1.0)
    months = [m.month for m in simulation.policies[0].months]
    head = "".join(f"<th>{e(m)}</th>" for m in months)
    rows = []
    for run in simulation.policies:
        cells = []
        for m in run.months:
            mark = (
                "▲ promoted v" + str(m.registered)
                if m.promoted
                else ("✕ gates refused" if m.retrained else "")
            )
            title = e(
                f"{m.note} | decision {m.decision_id}, trigger {m.trigger or '-'}, "
                f"drift report {m.drift_status or '-'}"
            )
            auc = "n/a" if m.roc_auc is None else f"{m.roc_auc:.3f}"
            cells.append(
                f'<td style="background:{_cell_colour(m.roc_auc, low, high)}" title="{title}">'
                f"<b>{auc}</b><br><small>v{m.version}</small><br><small>{e(mark)}</small></td>"
            )
        mean = run.mean_roc_auc()
        since = None if simulation.drift_month is None else run.mean_roc_auc(since=simulation.drift_month)
        after = (
            "" if since is None else f"<br><small>{since:.3f} since {e(str(simulation.drift_month))}</small>"
        )
        rows.append(
            f"<tr><th>{e(run.name)}<br><small>{e(run.label)}</small></th>{''.join(cells)}"
            f"<td><b>{'n/a' if mean is None else f'{mean:.3f}'}</b>{after}"
            f"<br><small>{run.retrains} retrains, {run.promotions} promoted</small></td></tr>"
        )
    picture = ""
    if png is not None and png.exists():
        data = base64.b64encode(png.read_bytes()).decode()
        picture = f'<img alt="ROC-AUC per month per policy" src="data:image/png;base64,{data}">'
    spec = simulation.spec
    drift = "".join(f"<li>{e(d)}</li>" for d in simulation.drift) or "<li>no drift injected</li>"
    doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ChurnOps policy backtest</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1340px; }}
table {{ border-collapse: collapse; font-size: 13px; width: 100%; table-layout: fixed; }}
th, td {{ border: 1px solid #ccc; padding: 6px 4px; text-align: center; word-wrap: break-word; }}
th:first-child {{ width: 150px; }}
img {{ max-width: 100%; height: auto; }}
small {{ color: #444; }}
</style></head><body>
<h1>Retraining policies, side by side</h1>
<p>{spec.customers:,} generated customers, seed {spec.seed}; the first model trained on {spec.warmup_months}
months from {spec.start:%Y-%m}, then {spec.months} months replayed: batch scoring, monitoring, the
policy's decision, retrain and promotion each month. ROC-AUC of each month's scores on their labels.</p>
<ul>{drift}</ul>
{picture}
<h2>Timeline</h2>
<table><thead><tr><th>policy</th>{head}<th>mean</th></tr></thead><tbody>
{"".join(rows)}
</tbody></table>
<p><small>Hover a cell for the decision and the retrain's outcome.
Generated in {simulation.seconds:.0f} s.</small></p>
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc, encoding="utf-8")
    return path
