"""Brute-force numpy/scipy re-implementations of the three Evidently statistics the project
reports (kl_div, jensenshannon, ks), written from their definitions: the parity oracle for the
tests, and the floor of benchmarks/drift.py. Not shipped: Evidently is the source of truth."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

Floats = npt.NDArray[np.float64]


def _clean(values: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values):
        values = values.replace([np.inf, -np.inf], np.nan)
    return values.dropna()


def binned_shares(
    reference: pd.Series, current: pd.Series, *, numeric: bool, fill_zeroes: bool
) -> tuple[Floats, Floats]:
    """Shares per bin: Sturges bins over both samples for numbers with > 20 distinct reference
    values, else one bin per value seen on either side; empty bins get a small epsilon."""
    ref, cur = _clean(reference), _clean(current)
    if numeric and ref.nunique() > 20:
        both = np.concatenate([ref.to_numpy(dtype=np.float64), cur.to_numpy(dtype=np.float64)])
        n_bins = math.ceil(math.log2(len(both)) + 1)
        low, high = float(both.min()), float(both.max())
        edges = np.linspace(low, high, n_bins + 1)

        # bin i holds edges[i] <= x < edges[i+1]; the last bin is closed on the right
        def counts(x: Floats) -> Floats:
            index = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, n_bins - 1)
            return np.bincount(index, minlength=n_bins).astype(np.float64)

        p = counts(ref.to_numpy(dtype=np.float64)) / len(ref)
        q = counts(cur.to_numpy(dtype=np.float64)) / len(cur)
    else:
        keys = sorted(set(ref.tolist()) | set(cur.tolist()), key=str)
        ref_counts, cur_counts = ref.value_counts(), cur.value_counts()
        p = np.array([float(ref_counts.get(k, 0)) for k in keys]) / len(ref)
        q = np.array([float(cur_counts.get(k, 0)) for k in keys]) / len(cur)
    if fill_zeroes:
        for shares in (p, q):
            smallest = shares[shares > 0].min()
            shares[shares == 0] = smallest / 1e6 if smallest <= 1e-4 else 1e-4
    return p, q


def kl_div(reference: pd.Series, current: pd.Series, *, numeric: bool) -> float:
    """KL(reference || current) in nats, shares renormalised (as scipy.stats.entropy does)."""
    p, q = binned_shares(reference, current, numeric=numeric, fill_zeroes=True)
    p, q = p / p.sum(), q / q.sum()
    return float(sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True) if pi > 0))


def jensenshannon(reference: pd.Series, current: pd.Series, *, numeric: bool) -> float:
    """Jensen-Shannon *distance* (natural log): sqrt of the mean KL to the midpoint."""
    p, q = binned_shares(reference, current, numeric=numeric, fill_zeroes=False)
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    div = sum(pi * math.log(pi / mi) for pi, mi in zip(p, m, strict=True) if pi > 0)
    div += sum(qi * math.log(qi / mi) for qi, mi in zip(q, m, strict=True) if qi > 0)
    return math.sqrt(max(div / 2, 0.0))


def ks(reference: npt.ArrayLike, current: npt.ArrayLike) -> tuple[float, float]:
    """Two-sample KS: D as the largest gap of the two empirical CDFs, and scipy's exact/asymptotic
    two-sided p-value for it."""
    a, b = np.sort(np.asarray(reference, dtype=np.float64)), np.sort(np.asarray(current, dtype=np.float64))
    grid = np.concatenate([a, b])
    d = float(
        np.max(
            np.abs(
                np.searchsorted(a, grid, side="right") / len(a)
                - np.searchsorted(b, grid, side="right") / len(b)
            )
        )
    )
    return d, float(stats.ks_2samp(a, b).pvalue)
