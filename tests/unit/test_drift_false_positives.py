"""With no injected drift, the policy's decision rule flags a window at most at its alpha.

50 disjoint seeded windows of 1,500 matured rows each, drawn from the clean run's four months
after training (the population ages in them, as in production). Scores come from the
brute-force oracle that test_drift_parity.py proves equal to Evidently's (an Evidently run per
window would cost 50x the CPU for the same numbers); the thresholds and the concept-drift rule
are the library's.

Tolerance: if the true false-positive rate were alpha (0.01), seeing k or more flagged windows
out of 50 has probability binom.sf(k - 1, 50, alpha); we allow the largest count whose tail is
above 0.5%: at most 3 of 50 (P(>= 4) = 0.16%).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from churnops.contracts.columns import FEATURES
from monitoring.concept import decide_concept, frame_pit
from monitoring.drift import sample_reference
from monitoring.policy import load_policy
from tests.support import oracle
from tests.support.drift_data import scenario

pytestmark = pytest.mark.slow
WINDOWS, ROWS = 50, 1_500


def _allowed(alpha: float) -> int:
    k = 0
    while stats.binom.sf(k, WINDOWS, alpha) > 0.005:  # sf(k) = P(X >= k + 1)
        k += 1
    return k


def test_allowed_count_matches_the_docstring() -> None:
    assert _allowed(0.01) == 3
    assert stats.binom.sf(3, WINDOWS, 0.01) == pytest.approx(0.0016, abs=1e-4)


def test_clean_windows_flag_at_most_at_alpha() -> None:
    s, policy = scenario("clean"), load_policy()
    # A 30k seeded reference keeps the brute-force oracle's CPU down; its sampling noise only
    # makes false positives likelier, so the bound stays conservative.
    reference = sample_reference(reference=s.reference, rows=30_000, seed=policy.seed)
    u_holdout = frame_pit(frame=s.holdout, seed=policy.seed)
    order = np.random.default_rng(20250301).permutation(len(s.current))
    assert len(order) >= WINDOWS * ROWS
    flagged: list[tuple[int, list[str]]] = []
    concept_flags = 0
    for w in range(WINDOWS):
        window = s.current.iloc[order[w * ROWS : (w + 1) * ROWS]]
        reasons = [
            col.name
            for col in FEATURES
            if oracle.kl_div(reference[col.name], window[col.name], numeric=col.kind in ("int", "float"))
            >= policy.data_drift.threshold(col.name)
        ]
        if (
            oracle.jensenshannon(reference["score"], window["score"], numeric=True)
            >= policy.prediction_drift.threshold
        ):
            reasons.append("score")
        d, p = oracle.ks(u_holdout, frame_pit(frame=window, seed=policy.seed))
        decision = decide_concept(
            statistic=d,
            p_value=p,
            labelled_rows=len(window),
            holdout_rows=len(u_holdout),
            rules=policy.concept_drift,
        )
        assert decision.status != "insufficient_data"
        if decision.drifted:
            reasons.append("concept")
            concept_flags += 1
        if reasons:
            flagged.append((w, reasons))
    allowed = _allowed(policy.concept_drift.alpha)
    print(f"flagged {len(flagged)} of {WINDOWS} clean windows (allowed {allowed}): {flagged}")
    assert len(flagged) <= allowed, flagged
    assert concept_flags <= allowed
