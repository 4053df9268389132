"""The evaluation images a training run carries, so the MLflow UI shows how the model ranks.

ROC, precision-recall, calibration (axes fitted to the score range: churn scores rarely reach
1) and cumulative lift / gain on the test split. Drawn with matplotlib's object API on the Agg
canvas (no pyplot: no global figure state, no display needed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PLOT_DIR = "evaluation/plots"
PLOTS = ("roc", "precision_recall", "calibration", "lift_gain")


def _figure() -> tuple[Figure, Axes]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4.5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def evaluation_figures(
    *, y_true: npt.ArrayLike, scores: npt.ArrayLike, split: str = "test"
) -> dict[str, Figure]:
    """One figure per name in :data:`PLOTS` for the scored ``split``."""
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    y = np.asarray(y_true, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    out: dict[str, Figure] = {}

    fig, ax = _figure()
    fpr, tpr, _ = roc_curve(y, s)
    ax.plot(fpr, tpr, label=f"AUC {roc_auc_score(y, s):.3f}")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC ({split})")
    ax.legend(loc="lower right")
    out["roc"] = fig

    fig, ax = _figure()
    precision, recall, _ = precision_recall_curve(y, s)
    ax.plot(recall, precision, label=f"AP {average_precision_score(y, s):.3f}")
    ax.axhline(y.mean(), linestyle=":", color="grey", label=f"base rate {y.mean():.3f}")
    ax.set(xlabel="recall", ylabel="precision", title=f"Precision-recall ({split})")
    ax.legend(loc="upper right")
    out["precision_recall"] = fig

    fig, ax = _figure()
    predicted, observed = calibration_curve(y, s, n_bins=10, strategy="quantile")
    edge = min(1.0, 1.05 * max(float(s.max()), float(observed.max()), 1e-3))
    ax.plot(predicted, observed, marker="o", label="model")
    ax.plot([0, edge], [0, edge], linestyle=":", color="grey", label="perfect")
    ax.set(
        xlim=(0, edge),
        ylim=(0, edge),
        xlabel="mean predicted probability",
        ylabel="fraction churned",
        title=f"Calibration ({split}, deciles of score)",
    )
    ax.legend(loc="upper left")
    out["calibration"] = fig

    fig, ax = _figure()
    order = np.argsort(-s, kind="stable")
    targeted = np.arange(1, len(y) + 1) / len(y)
    captured = np.cumsum(y[order]) / max(int(y.sum()), 1)
    ax.plot(targeted, captured, label="gain (share of churners reached)")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="random")
    ax.set(xlabel="share of customers targeted", ylabel="share of churners", title=f"Gain and lift ({split})")
    lift_ax = ax.twinx()
    keep = targeted >= 0.01
    lift_ax.plot(targeted[keep], captured[keep] / targeted[keep], color="tab:orange", label="cumulative lift")
    lift_ax.set_ylabel("lift over the base rate")
    ax.legend(loc="center right")
    lift_ax.legend(loc="lower right")
    out["lift_gain"] = fig
    return out
