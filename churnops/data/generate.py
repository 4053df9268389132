"""Seeded synthetic Telco-style churn data: customers joining over time, monthly snapshots,
churn events from a logistic hazard, and optional injected data drift and concept drift.

Everything is vectorised over customers; the only Python loop runs over months. Every month
draws the same number of random values whatever the drift settings, so two runs with the same
seed are identical before a drift date and differ after it only through the drift itself.
The model and the drift are documented in ``docs/synthetic-data.md``; keep the two in sync.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from churnops.contracts.columns import CREATED_TS, EVENT_TS, JOIN_KEY, LABEL, NO_INTERNET, NO_PHONE, column
from churnops.contracts.ids import ID_PATTERN
from churnops.contracts.sources import write_sources

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

PART = "synthetic"

# Category codes follow the order of the categories in churnops.contracts.columns.
MTM, ONE_YEAR, TWO_YEAR = 0, 1, 2
DSL, FIBER, NO_NET = 0, 1, 2
E_CHECK = 0
ADDONS = (
    "online_security",
    "online_backup",
    "device_protection",
    "tech_support",
    "streaming_tv",
    "streaming_movies",
)
SECURITY, SUPPORT = 0, 3

# Population mixes (Telco shares; see docs/synthetic-data.md).
INITIAL_SHARE = 0.6  # customers already present at the first snapshot
MAX_TENURE = 72
P_SENIOR, P_PARTNER = 0.16, 0.48
P_DEPENDENTS = (0.10, 0.50)  # without / with partner
INTERNET_MIX = (0.34, 0.44, 0.22)  # DSL, Fiber optic, No
P_NO_PHONE_DSL = 0.28  # only DSL customers go without phone service (as in Telco)
P_MULTIPLE_LINES = (0.29, 0.63, 0.22)  # by internet service
P_ADDONS = {  # P(Yes) by internet service (DSL, Fiber optic)
    "online_security": (0.49, 0.27),
    "online_backup": (0.45, 0.43),
    "device_protection": (0.44, 0.44),
    "tech_support": (0.49, 0.28),
    "streaming_tv": (0.40, 0.57),
    "streaming_movies": (0.41, 0.57),
}
P_PAPERLESS = (0.55, 0.77, 0.29)  # by internet service
PAYMENT_MIX = (  # Electronic check, Mailed check, Bank transfer, Credit card, by internet service
    (0.27, 0.25, 0.24, 0.24),
    (0.51, 0.08, 0.21, 0.20),
    (0.08, 0.49, 0.22, 0.21),
)
# Contract log-odds against "One year" as a function of tenure t (months) at joining/start.
CONTRACT_LOGITS = ((2.6, -0.05), (0.0, 0.0), (-1.3, 0.032))  # (intercept, slope) MtM, 1y, 2y

# Price list (a least-squares fit to the Telco file, RMSE 1.0): USD per month.
PRICE_PHONE, PRICE_EXTRA_LINES = 20.0, 5.0
PRICE_INTERNET = (25.0, 50.0, 0.0)
PRICE_ADDONS = (5.0, 5.0, 5.0, 5.0, 10.0, 10.0)
PRICE_NOISE_SD, PRICE_FLOOR = 1.0, 18.25

# Monthly changes of active customers.
P_ADDON_TOGGLE = 0.02  # one add-on switched on/off
P_UPGRADE_CONTRACT = (0.010, 0.004)  # MtM -> One year, One year -> Two year
P_UPGRADE_FIBER = 0.004  # DSL (with phone) -> Fiber optic

# Data drift (snapshots at/after data_drift_from).
PRICE_RISE = 1.25
DRIFT_INTERNET_MIX = (0.20, 0.62, 0.18)  # new joiners
DRIFT_TO_E_CHECK = 0.35  # share of other new joiners moved to electronic check


@dataclass(frozen=True)
class Hazard:
    """Monthly churn log-odds: an intercept plus additive effects of the snapshot's features."""

    intercept: float = -2.85
    contract: tuple[float, float, float] = (0.0, -1.0, -2.0)  # MtM, One year, Two year
    log_tenure: float = -0.35  # times ln(tenure)
    internet: tuple[float, float, float] = (0.0, 0.6, -0.7)  # DSL, Fiber optic, No
    payment: tuple[float, float, float, float] = (0.4, 0.0, -0.1, -0.1)
    paperless: float = 0.2
    senior: float = 0.3
    partner: float = -0.1
    dependents: float = -0.2
    no_online_security: float = 0.3  # internet customers without it
    no_tech_support: float = 0.3


HAZARD = Hazard()
# Concept drift: contracts and tenure stop protecting (a competitor buys customers out).
CONCEPT_DRIFT_HAZARD = replace(HAZARD, contract=(0.0, -0.5, -1.0), log_tenure=-0.2)


@dataclass(frozen=True)
class GeneratedData:
    """The wide snapshot frame (key, timestamps, features, label) and its summary figures."""

    frame: pd.DataFrame
    customers: int
    snapshot_rows: int
    churn_events: int
    churn_rate: float  # churn events per snapshot row: the mean monthly churn rate
    months: int
    seed: int
    first_snapshot: datetime
    last_snapshot: datetime
    data_drift_from: datetime | None  # first snapshot with data drift
    concept_drift_from: datetime | None  # first snapshot with concept drift
    drift: tuple[str, ...]


class InvalidArgument(ValueError):
    """A generator argument is out of range; ``argument`` names it so the CLI can name the option."""

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(message)
        self.argument = argument


def snapshot_times(*, start: date, months: int) -> list[datetime]:
    """Snapshot times: the 1st of each month at 00:00 UTC, starting at ``start``."""
    return [
        datetime(start.year + (start.month - 1 + m) // 12, (start.month - 1 + m) % 12 + 1, 1, tzinfo=UTC)
        for m in range(months)
    ]


def _drift_month(*, argument: str, when: date | None, times: list[datetime]) -> int | None:
    if when is None:
        return None
    moment = datetime(when.year, when.month, when.day, tzinfo=UTC)
    if not times[0] < moment <= times[-1]:
        raise InvalidArgument(
            argument,
            f"{argument} {when.isoformat()} is outside the generated window: it must be after the "
            f"first snapshot {times[0].date()} and at most the last one {times[-1].date()}",
        )
    return next(m for m, t in enumerate(times) if t >= moment)


def _telco_ids(rng: np.random.Generator, n: int) -> npt.NDArray[np.object_]:
    """Unique ids like ``7590-VHVEG`` (4 digits, dash, 5 capitals), in draw order."""
    space = 10**4 * 26**5
    codes = np.empty(0, dtype=np.int64)
    while codes.size < n:  # collisions are rare (birthday bound); redraw the shortfall
        drawn = np.concatenate([codes, rng.integers(0, space, size=n - codes.size + 16)])
        _, first = np.unique(drawn, return_index=True)
        codes = drawn[np.sort(first)]
    codes = codes[:n]
    chars = np.empty((n, 10), dtype=np.uint8)
    digits, letters = codes // 26**5, codes % 26**5
    for k in range(4):
        chars[:, 3 - k] = 48 + (digits // 10**k) % 10
    chars[:, 4] = 45
    for k in range(5):
        chars[:, 9 - k] = 65 + (letters // 26**k) % 26
    ids = chars.view("S10").ravel().astype("U10").astype(object)
    # The contracts' id rule, checked on what we made (one vectorised regex over all ids).
    if n and not pc.all(pc.match_substring_regex(pa.array(ids, type=pa.string()), ID_PATTERN)).as_py():
        raise AssertionError("generated customer ids break the id rule of churnops.contracts.ids")
    return ids


def _pick(u: Floats, probs: Floats) -> Ints:
    """Inverse-CDF draw of a category per row from row-wise probabilities (n, k)."""
    cdf = np.cumsum(probs, axis=1)
    codes = np.minimum((u[:, None] > cdf[:, :-1]).sum(axis=1), probs.shape[1] - 1)
    return np.asarray(codes, dtype=np.int64)


def _contract_probs(tenure: Ints) -> Floats:
    logits = np.stack([a + b * tenure for a, b in CONTRACT_LOGITS], axis=1).astype(np.float64)
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(weights / weights.sum(axis=1, keepdims=True), dtype=np.float64)


def _monthly_price(*, phone: Bools, lines: Bools, internet: Ints, addons: Bools, noise: Floats) -> Floats:
    has_net = internet != NO_NET
    price = PRICE_PHONE * phone + PRICE_EXTRA_LINES * (phone & lines) + np.asarray(PRICE_INTERNET)[internet]
    price = price + (np.asarray(PRICE_ADDONS)[:, None] * (addons & has_net)).sum(axis=0)
    return np.asarray(np.maximum(price + noise, PRICE_FLOOR), dtype=np.float64)


def _log_odds(
    hz: Hazard,
    *,
    contract: Ints,
    tenure: Ints,
    internet: Ints,
    payment: Ints,
    paperless: Bools,
    senior: Bools,
    partner: Bools,
    dependents: Bools,
    addons: Bools,
) -> Floats:
    has_net = internet != NO_NET
    odds = (
        hz.intercept
        + np.asarray(hz.contract)[contract]
        + hz.log_tenure * np.log(tenure)
        + np.asarray(hz.internet)[internet]
        + np.asarray(hz.payment)[payment]
        + hz.paperless * paperless
        + hz.senior * senior
        + hz.partner * partner
        + hz.dependents * dependents
        + hz.no_online_security * (has_net & ~addons[SECURITY])
        + hz.no_tech_support * (has_net & ~addons[SUPPORT])
    )
    return np.asarray(odds, dtype=np.float64)


def _validate(*, customers: int, months: int, seed: int, start: date) -> None:
    if seed < 0:
        raise InvalidArgument("seed", f"seed must be zero or positive, got {seed}")
    if customers <= 0:
        raise InvalidArgument("customers", f"customers must be positive, got {customers}")
    if months <= 0:
        raise InvalidArgument("months", f"months must be positive, got {months}")
    if start.day != 1:
        raise InvalidArgument("start", f"start must be the first day of a month, got {start.isoformat()}")


def generate_churn_data(
    *,
    customers: int,
    months: int,
    seed: int,
    start: date = date(2024, 1, 1),
    data_drift_from: date | None = None,
    concept_drift_from: date | None = None,
    concept_drift_hazard: Hazard = CONCEPT_DRIFT_HAZARD,
) -> GeneratedData:
    """Generate ``customers`` customers over ``months`` monthly snapshots (same arguments, same frame).

    ``concept_drift_hazard`` is the churn hazard from ``concept_drift_from`` on (the default is
    the mild one the CLI and the demo inject; tests that need a retrain to win clearly pass a
    stronger one)."""
    _validate(customers=customers, months=months, seed=seed, start=start)
    times = snapshot_times(start=start, months=months)
    data_month = _drift_month(argument="data_drift_from", when=data_drift_from, times=times)
    concept_month = _drift_month(argument="concept_drift_from", when=concept_drift_from, times=times)
    rng = np.random.default_rng(seed)
    n = customers

    # Who the customers are and when they join: drawn once for everyone, up front.
    ids = _telco_ids(rng, n)
    u = rng.random((16, n))
    join = np.zeros(n, dtype=np.int64)  # snapshot index of a customer's first row
    if months > 1:
        later = (u[0] - INITIAL_SHARE) / (1 - INITIAL_SHARE) * (months - 1)
        join = np.where(u[0] < INITIAL_SHARE, 0, 1 + np.minimum(later.astype(np.int64), months - 2))
    tenure0 = np.where(join == 0, 1 + np.floor(MAX_TENURE * rng.beta(0.55, 0.65, n)), 1).astype(np.int64)
    tenure0 = np.minimum(tenure0, MAX_TENURE)
    drifted_joiner = (join >= data_month) if data_month is not None else np.zeros(n, dtype=bool)

    gender = (u[1] < 0.5).astype(np.int64)
    senior = u[2] < P_SENIOR
    partner = u[3] < P_PARTNER
    dependents = u[4] < np.where(partner, P_DEPENDENTS[1], P_DEPENDENTS[0])
    internet_mix = np.where(drifted_joiner[:, None], np.asarray(DRIFT_INTERNET_MIX), np.asarray(INTERNET_MIX))
    internet = _pick(u[5], internet_mix)
    phone = ~((internet == DSL) & (u[6] < P_NO_PHONE_DSL))
    lines = u[7] < np.asarray(P_MULTIPLE_LINES)[internet]
    addon_p = np.asarray([P_ADDONS[a] for a in ADDONS])  # (6, 2)
    net_type = np.minimum(internet, FIBER)
    addons = u[8:14] < addon_p[:, net_type]  # (6, n); only meaningful with internet
    paperless = u[14] < np.asarray(P_PAPERLESS)[internet]
    payment = _pick(u[15], np.asarray(PAYMENT_MIX)[internet])
    payment = np.where(drifted_joiner & (rng.random(n) < DRIFT_TO_E_CHECK), E_CHECK, payment)
    contract = _pick(rng.random(n), _contract_probs(tenure0))
    noise = rng.normal(0.0, PRICE_NOISE_SD, n)
    history = rng.uniform(0.9, 1.02, n)  # past prices differed: total = monthly * (1 + (t-1) * h)
    delay = rng.integers(60, 3600, n)  # seconds from snapshot to `created`

    active = np.zeros(n, dtype=bool)
    total = np.zeros(n)
    rows: list[tuple[int, Ints, Ints, Ints, Bools, Bools, Bools, Floats, Floats, Bools]] = []
    for m in range(months):
        draws = rng.random((5, n))  # same size every month, whatever the state
        veteran = active.copy()  # present last month: may change services
        if m > 0:
            toggle = veteran & (internet != NO_NET) & (draws[0] < P_ADDON_TOGGLE)
            which = np.minimum((draws[1] * len(ADDONS)).astype(np.int64), len(ADDONS) - 1)
            hit = np.zeros_like(addons)
            hit[which[toggle], np.flatnonzero(toggle)] = True
            addons ^= hit
            up1 = veteran & (contract == MTM) & (draws[2] < P_UPGRADE_CONTRACT[0])
            up2 = veteran & (contract == ONE_YEAR) & (draws[2] < P_UPGRADE_CONTRACT[1])
            contract = np.where(up1, ONE_YEAR, np.where(up2, TWO_YEAR, contract))
            fiber = veteran & (internet == DSL) & phone & (draws[3] < P_UPGRADE_FIBER)
            internet = np.where(fiber, FIBER, internet)
        new = join == m
        active |= new
        tenure = tenure0 + (m - join)
        factor = PRICE_RISE if data_month is not None and m >= data_month else 1.0
        price = _monthly_price(phone=phone, lines=lines, internet=internet, addons=addons, noise=noise)
        monthly = np.round(price * factor, 2)
        total = np.where(new, monthly * (1 + (tenure0 - 1) * history), total + monthly)
        hz = concept_drift_hazard if concept_month is not None and m >= concept_month else HAZARD
        odds = _log_odds(
            hz,
            contract=contract,
            tenure=np.maximum(tenure, 1),
            internet=internet,
            payment=payment,
            paperless=paperless,
            senior=senior,
            partner=partner,
            dependents=dependents,
            addons=addons,
        )
        churn = active & (draws[4] < 1.0 / (1.0 + np.exp(-odds)))
        idx = np.flatnonzero(active)
        rows.append(
            (
                m,
                idx,
                contract[idx],
                internet[idx],
                lines[idx],
                churn[idx],
                phone[idx],
                monthly[idx],
                total[idx],
                addons[:, idx].T,
            )
        )
        active &= ~churn

    return _assemble(
        rows=rows,
        times=times,
        ids=ids,
        static={
            "gender": gender,
            "senior": senior,
            "partner": partner,
            "dependents": dependents,
            "tenure0": tenure0,
            "join": join,
            "paperless": paperless,
            "payment": payment,
            "delay": delay,
        },
        seed=seed,
        data_month=data_month,
        concept_month=concept_month,
        concept_hazard=concept_drift_hazard,
    )


def _objects(categories: tuple[str, ...], codes: npt.NDArray[np.integer]) -> npt.NDArray[np.object_]:
    return np.asarray(np.asarray(categories, dtype=object)[codes], dtype=object)


def _assemble(
    *,
    rows: list[tuple[int, Ints, Ints, Ints, Bools, Bools, Bools, Floats, Floats, Bools]],
    times: list[datetime],
    ids: npt.NDArray[np.object_],
    static: dict[str, npt.NDArray[np.generic]],
    seed: int,
    data_month: int | None,
    concept_month: int | None,
    concept_hazard: Hazard,
) -> GeneratedData:
    """Concatenate the monthly row blocks into the wide frame of the sources contract."""
    month = np.concatenate([np.full(r[1].size, r[0], dtype=np.int64) for r in rows])
    idx = np.concatenate([r[1] for r in rows])
    contract, internet, lines, churn, phone = (np.concatenate([r[k] for r in rows]) for k in range(2, 7))
    monthly, total = (np.concatenate([r[k] for r in rows]) for k in (7, 8))
    addons = np.concatenate([r[9] for r in rows]).T
    stamps = np.asarray([np.datetime64(t.replace(tzinfo=None), "us") for t in times])
    event = stamps[month]
    created = event + (static["delay"][idx] * 1_000_000).astype("timedelta64[us]")
    no_net = internet == NO_NET

    frame = pd.DataFrame(
        {
            JOIN_KEY: ids[idx],
            EVENT_TS: pd.DatetimeIndex(event).tz_localize("UTC"),
            CREATED_TS: pd.DatetimeIndex(created).tz_localize("UTC"),
            "gender": _objects(column("gender").categories, static["gender"][idx]),
            "senior_citizen": static["senior"][idx].astype(np.int64),
            "partner": static["partner"][idx].astype(np.int64),
            "dependents": static["dependents"][idx].astype(np.int64),
            "tenure": static["tenure0"][idx] + month - static["join"][idx],
            "contract": _objects(column("contract").categories, contract),
            "paperless_billing": static["paperless"][idx].astype(np.int64),
            "payment_method": _objects(column("payment_method").categories, static["payment"][idx]),
            "monthly_charges": monthly,
            "total_charges": np.round(total, 2),
            "phone_service": phone.astype(np.int64),
            "multiple_lines": _objects(NO_PHONE, np.where(phone, lines.astype(np.int64), 2)),
            "internet_service": _objects(column("internet_service").categories, internet),
            **{
                name: _objects(NO_INTERNET, np.where(no_net, 2, addons[k].astype(np.int64)))
                for k, name in enumerate(ADDONS)
            },
            LABEL: churn.astype(np.int64),
        },
        copy=False,  # the arrays are fresh: skip pandas' block consolidation (2x time and memory)
    )
    events = int(churn.sum())
    drift: list[str] = []
    if data_month is not None:
        drift.append(
            f"data drift from {times[data_month].date()}: monthly_charges x{PRICE_RISE} (total_charges "
            f"follow); new joiners shift to fiber optic "
            f"{INTERNET_MIX[FIBER]:.0%}->{DRIFT_INTERNET_MIX[FIBER]:.0%} and "
            f"{DRIFT_TO_E_CHECK:.0%} of the others move to electronic check"
        )
    if concept_month is not None:
        drift.append(
            f"concept drift from {times[concept_month].date()}: contract effect "
            f"{HAZARD.contract[1:]}->{concept_hazard.contract[1:]}, ln(tenure) effect "
            f"{HAZARD.log_tenure}->{concept_hazard.log_tenure} (log-odds); features unchanged"
        )
    return GeneratedData(
        frame=frame,
        customers=int(np.count_nonzero(np.bincount(idx, minlength=ids.size))),
        snapshot_rows=len(frame),
        churn_events=events,
        churn_rate=events / len(frame),
        months=len(times),
        seed=seed,
        first_snapshot=times[0],
        last_snapshot=times[-1],
        data_drift_from=times[data_month] if data_month is not None else None,
        concept_drift_from=times[concept_month] if concept_month is not None else None,
        drift=tuple(drift),
    )


def write_generated(*, data: GeneratedData, sources_dir: Path) -> dict[str, Path]:
    """Write the generated frame as the Feast sources, replacing any earlier parts."""
    return write_sources(frame=data.frame, sources_dir=sources_dir, part=PART, replace_all=True)
