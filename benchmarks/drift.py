"""Drift monitoring at scale, next to a numpy/scipy floor measured in the same run.

    uv run python benchmarks/drift.py [--reference-rows 1000000] [--current-rows 200000]

Data: the synthetic generator with the price rise, scored by the training code's logistic
regression; reference = 1,000,000 pre-drift rows, current = 200,000 drifted rows, holdout =
60,000 pre-drift rows with labels (concept drift), 19 features + score. Each case runs in a fresh
interpreter so its peak RSS is its own:

- detect:  monitoring.drift.detect_drift with the packaged policy (the reference is a seeded
           100k sample, as in production) + write_report_html; wall split into import, detect, HTML
- floor:   the same statistics in plain numpy/scipy on the FULL data (1M x 200k): Sturges bins or
           category counts, KL / JS, KS on the randomized PIT; the same numbers Evidently computes
           (tests/unit/test_drift_parity.py), so it is also the "full computation" the sampled
           scores are compared with (tolerance printed).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import emit, peak_rss_mb, run_case
from monitoring.policy import load_policy

TOLERANCE_ABS = 0.005  # |sampled - full| allowed for every KL / JS score
TOLERANCE_REL = 0.05  # ... or 5% of the full score, whichever is larger


def _prepare(*, directory: Path, reference_rows: int, current_rows: int) -> None:
    import pandas as pd

    from churnops.contracts.columns import EVENT_TS, FEATURES
    from churnops.data.generate import generate_churn_data
    from churnops.training.candidates import fit_candidate, score
    from churnops.training.frame import labels, model_input

    # about 7.4 rows per customer in the 12 pre-drift months, 2.0 in the 3 drifted ones
    customers = max(int(reference_rows / 7.2), int(current_rows / 1.9)) + 1000
    data = generate_churn_data(
        customers=customers, months=15, seed=11, data_drift_from=date(2025, 1, 1)
    ).frame
    before = data[data[EVENT_TS] < pd.Timestamp("2025-01-01", tz="UTC")]
    after = data[data[EVENT_TS] >= pd.Timestamp("2025-01-01", tz="UTC")]
    train = before.sample(n=40_000, random_state=0)
    model = fit_candidate(
        family="logistic_regression",
        columns=list(FEATURES),
        x=model_input(train, columns=list(FEATURES)),
        y=labels(train),
    ).pipeline
    frames = {
        "reference": before.sample(n=min(reference_rows, len(before)), random_state=1),
        "holdout": before.sample(n=60_000, random_state=2),
        "current": after.sample(n=min(current_rows, len(after)), random_state=3),
    }
    for name, frame in frames.items():
        frame = frame.copy()
        frame["score"] = score(model, model_input(frame, columns=list(FEATURES)))
        frame.reset_index(drop=True).to_parquet(directory / f"{name}.parquet")


def _load(directory: Path) -> dict[str, Any]:
    import pandas as pd

    return {n: pd.read_parquet(directory / f"{n}.parquet") for n in ("reference", "current", "holdout")}


def _case_detect(directory: Path) -> dict[str, Any]:
    frames = _load(directory)
    start = time.perf_counter()
    import evidently  # noqa: F401

    imported = time.perf_counter()
    from monitoring.drift import detect_drift
    from monitoring.policy import load_policy
    from monitoring.report import write_report_html

    result = detect_drift(
        reference=frames["reference"],
        current=frames["current"],
        holdout=frames["holdout"],
        labelled=frames["current"],
        policy=load_policy(),
        model_name="churn",
        model_version=1,
        window_start=datetime(2025, 1, 1, tzinfo=UTC),
        window_end=datetime(2025, 2, 1, tzinfo=UTC),
    )
    detected = time.perf_counter()
    html = write_report_html(result=result, path=directory / "drift.html")
    done = time.perf_counter()
    doc = result.to_json()
    return {
        "case": "detect",
        "import_s": imported - start,
        "detect_s": detected - imported,
        "html_s": done - detected,
        "wall_s": done - start,
        "peak_rss_mb": peak_rss_mb(),
        "html_mb": html.stat().st_size / 1e6,
        "reference_rows": doc["reference"]["rows"],
        "reference_source_rows": doc["reference"]["source_rows"],
        "current_rows": doc["current"]["rows"],
        "status": doc["status"],
        "scores": {f["feature"]: f["score"] for f in doc["data_drift"]["features"]}
        | {"score": doc["prediction_drift"]["score"], "concept_p": doc["concept_drift"]["p_value"]},
        "drifted": sorted(f["feature"] for f in doc["data_drift"]["features"] if f["drifted"]),
    }


def _floor_scores(reference: Any, current: Any, holdout: Any, bins: int | None = None) -> dict[str, float]:
    """KL per feature, JS on the score, KS p on the PIT; ``bins`` overrides Sturges' count."""
    import numpy as np
    import pandas as pd
    from scipy import stats
    from scipy.spatial import distance

    from churnops.contracts.columns import FEATURES
    from monitoring.concept import frame_pit

    def shares(ref: Any, cur: Any, numeric: bool, fill: bool) -> tuple[Any, Any]:
        if numeric and len(np.unique(ref)) > 20:
            both = np.concatenate([ref, cur])
            edges = np.histogram_bin_edges(both, bins="sturges" if bins is None else bins)
            p, q = np.histogram(ref, edges)[0] / len(ref), np.histogram(cur, edges)[0] / len(cur)
        else:
            codes, uniq = pd.factorize(np.concatenate([ref, cur]), sort=False)
            p = np.bincount(codes[: len(ref)], minlength=len(uniq)) / len(ref)
            q = np.bincount(codes[len(ref) :], minlength=len(uniq)) / len(cur)
        if fill:
            for s in (p, q):
                small = s[s > 0].min()
                s[s == 0] = small / 1e6 if small <= 1e-4 else 1e-4
        return p, q

    out: dict[str, float] = {}
    for col in FEATURES:
        numeric = col.kind in ("int", "float")
        ref = reference[col.name].to_numpy(dtype=np.float64 if numeric else object)
        cur = current[col.name].to_numpy(dtype=np.float64 if numeric else object)
        out[col.name] = float(stats.entropy(*shares(ref, cur, numeric, True)))
    ref, cur = reference["score"].to_numpy(np.float64), current["score"].to_numpy(np.float64)
    out["score"] = float(distance.jensenshannon(*shares(ref, cur, True, False)))
    out["concept_p"] = float(stats.ks_2samp(frame_pit(frame=holdout), frame_pit(frame=current)).pvalue)
    return out


def _case_floor(directory: Path) -> dict[str, Any]:
    from monitoring.drift import sample_reference

    frames = _load(directory)
    start = time.perf_counter()
    scores = _floor_scores(frames["reference"], frames["current"], frames["holdout"])
    wall = time.perf_counter() - start
    policy = load_policy()
    sample = sample_reference(reference=frames["reference"], rows=policy.reference_rows, seed=policy.seed)
    on_sample = _floor_scores(sample, frames["current"], frames["holdout"])
    # Sturges' bin count grows with log2(n): the full data with the sample's bin count isolates
    # the sampling error from the binning resolution.
    sample_bins = math.ceil(math.log2(len(sample) + len(frames["current"])) + 1)
    same_bins = _floor_scores(frames["reference"], frames["current"], frames["holdout"], bins=sample_bins)
    return {
        "case": "floor",
        "wall_s": wall,
        "peak_rss_mb": peak_rss_mb(),
        "scores": scores,
        "on_sample": on_sample,
        "same_bins": same_bins,
        "sample_bins": sample_bins,
        "full_bins": math.ceil(math.log2(len(frames["reference"]) + len(frames["current"])) + 1),
    }


def _case_prepare(directory: Path, reference_rows: int, current_rows: int) -> dict[str, Any]:
    start = time.perf_counter()
    _prepare(directory=directory, reference_rows=reference_rows, current_rows=current_rows)
    return {"case": "prepare", "wall_s": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", choices=("prepare", "detect", "floor"))
    parser.add_argument("--dir")
    parser.add_argument("--reference-rows", type=int, default=1_000_000)
    parser.add_argument("--current-rows", type=int, default=200_000)
    args = parser.parse_args()
    if args.case == "prepare":
        emit(_case_prepare(Path(args.dir), args.reference_rows, args.current_rows))
        return
    if args.case:
        emit({"detect": _case_detect, "floor": _case_floor}[args.case](Path(args.dir)))
        return
    # Every phase in its own interpreter, and the parent never holds the data: Linux carries the
    # peak RSS of a parent over into the children it forks.
    with tempfile.TemporaryDirectory() as tmp:
        sizes = ("--reference-rows", str(args.reference_rows), "--current-rows", str(args.current_rows))
        prepared = run_case(__file__, "prepare", "--dir", tmp, *sizes)
        print(f"prepared data in {prepared['wall_s']:.1f} s", flush=True)
        detect = run_case(__file__, "detect", "--dir", tmp)
        floor = run_case(__file__, "floor", "--dir", tmp)
    print(
        f"detect_drift: {detect['reference_source_rows']:,} reference rows "
        f"(sampled to {detect['reference_rows']:,}) x {detect['current_rows']:,} current rows "
        "x 19 features + score + concept drift"
    )
    print(
        f"  wall {detect['wall_s']:.1f} s (import evidently {detect['import_s']:.1f} s, "
        f"detect {detect['detect_s']:.1f} s, HTML {detect['html_s']:.1f} s), "
        f"peak RSS {detect['peak_rss_mb']:.0f} MB, HTML {detect['html_mb']:.1f} MB, "
        f"status {detect['status']}, drifted {detect['drifted']}"
    )
    print(
        f"floor (numpy/scipy, full data, no sampling): wall {floor['wall_s']:.1f} s, "
        f"peak RSS {floor['peak_rss_mb']:.0f} MB"
    )
    # Parity: the floor on the same 100k seeded sample reproduces the reported scores.
    parity = max(abs(detect["scores"][k] - v) for k, v in floor["on_sample"].items())
    print(f"floor on the same 100k sample vs detect_drift: largest difference {parity:.2e}")
    for label, full_scores in (
        ("full reference", floor["scores"]),
        ("full reference, same bins", floor["same_bins"]),
    ):
        worst = ("", 0.0, 0.0, 0.0)
        within = True
        for name, full in full_scores.items():
            if name == "concept_p":
                continue
            sampled = detect["scores"][name]
            gap = abs(sampled - full)
            within &= gap <= max(TOLERANCE_ABS, TOLERANCE_REL * full)
            if gap / max(full, TOLERANCE_ABS) >= worst[1] / max(worst[3], TOLERANCE_ABS):
                worst = (name, gap, sampled, full)
        print(
            f"100k sample vs {label} ({floor['sample_bins']} vs "
            f"{floor['full_bins'] if label == 'full reference' else floor['sample_bins']} Sturges bins): "
            f"largest relative gap on {worst[0]} ({worst[2]:.5f} vs {worst[3]:.5f}, gap {worst[1]:.5f}); "
            f"all within max({TOLERANCE_ABS}, {TOLERANCE_REL:.0%} of full): {within}"
        )
    thresholds = {
        f: load_policy().data_drift.threshold(f) for f in floor["scores"] if f not in ("score", "concept_p")
    }
    full_flags = sorted(f for f, t in thresholds.items() if floor["scores"][f] >= t)
    print(f"drifted features, sampled: {detect['drifted']}; full: {full_flags}")
    print(json.dumps({"detect": detect, "floor": floor}, default=str))


if __name__ == "__main__":
    main()
