"""The retraining policy: the packaged default, every bad field named at once, and the cron
parser against a minute-by-minute brute-force oracle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from churnops.contracts.policy_files import ShippedPolicy, shipped_with
from churnops.retraining import RetrainPolicy, RetrainPolicyError, load_policy, parse_policy
from churnops.retraining.cron import Cron, CronError


def test_the_packaged_default_is_valid_and_named() -> None:
    policy = load_policy()
    assert policy.name == "default"
    assert policy.cron() is not None
    assert policy.promote_to in ("Staging", "Production")
    assert policy.label().startswith("default@")


def test_every_bad_field_is_named_at_once_with_the_fix() -> None:
    with pytest.raises(RetrainPolicyError) as caught:
        parse_policy(
            {
                "schedule": "61 * * * *",
                "drift": {"consecutive_windows": 0},
                "performance": {"min_roc_auc": 1.5},
                "promote_to": "Prod",
                "cooldown": 3,
            }
        )
    message = str(caught.value)
    for needle in (
        "schedule: invalid cron: minute: '61' is outside 0-59",
        "drift.consecutive_windows",
        "performance.min_roc_auc",
        "promote_to",
        "cooldown: Extra inputs are not permitted (remove it",
    ):
        assert needle in message, message


def test_a_file_that_is_not_a_mapping_or_missing_is_refused(tmp_path: Path) -> None:
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n")
    with pytest.raises(RetrainPolicyError, match="expected a mapping"):
        load_policy(listed)
    with pytest.raises(RetrainPolicyError, match="cannot be read"):
        load_policy(tmp_path / "missing.yaml")


def test_a_file_policy_takes_its_name_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "weekly.yaml"
    data = shipped_with(
        ShippedPolicy.RETRAIN, {"schedule": "0 3 * * 1", "promote_to": "Staging"}, model=RetrainPolicy
    )
    del data["name"]
    path.write_text(yaml.safe_dump(data))
    policy = load_policy(path)
    assert (policy.name, policy.schedule, policy.promote_to) == ("weekly", "0 3 * * 1", "Staging")


@pytest.mark.parametrize(
    ("expression", "needle"),
    [
        ("* * * *", "expected 5 fields"),
        ("*/0 * * * *", "step must be >= 1"),
        ("5-1 * * * *", "outside"),
        ("x * * * *", "not a number"),
        ("* 24 * * *", "hour"),
    ],
)
def test_bad_cron_lines_name_the_field(expression: str, needle: str) -> None:
    with pytest.raises(CronError, match=needle):
        Cron.parse(expression)


def _oracle_previous(cron: str, moment: datetime, horizon_minutes: int) -> datetime | None:
    """Walk back minute by minute with the textbook cron rule (day fields OR-ed when both set)."""
    minute, hour, dom, month, dow = cron.split()

    def field(text: str, value: int, low: int, high: int) -> bool:
        for part in text.split(","):
            base, _, step = part.partition("/")
            s = int(step) if step else 1
            if base == "*":
                a, b = low, high
            elif "-" in base:
                a, b = (int(x) for x in base.split("-"))
            else:
                a = int(base)
                b = high if step else a
            if a <= value <= b and (value - a) % s == 0:
                return True
        return False

    t = moment.replace(second=0, microsecond=0)
    for _ in range(horizon_minutes):
        cron_dow = (t.weekday() + 1) % 7
        dom_ok = field(dom, t.day, 1, 31)
        dow_ok = field(dow, cron_dow, 0, 7) or (cron_dow == 0 and field(dow, 7, 0, 7))
        day_ok = dom_ok and dow_ok if dom.startswith("*") or dow.startswith("*") else dom_ok or dow_ok
        if (
            field(minute, t.minute, 0, 59)
            and field(hour, t.hour, 0, 23)
            and field(month, t.month, 1, 12)
            and day_ok
        ):
            return t
        t -= timedelta(minutes=1)
    return None


def _part(low: int, high: int) -> st.SearchStrategy[str]:
    number = st.integers(low, high)
    return st.one_of(
        st.just("*"),
        number.map(str),
        st.tuples(number, number).map(lambda ab: f"{min(ab)}-{max(ab)}"),
        st.integers(1, 6).map(lambda s: f"*/{s}"),
        st.lists(number, min_size=1, max_size=3).map(lambda xs: ",".join(map(str, xs))),
    )


@hsettings(max_examples=80, deadline=None)
@given(
    minute=_part(0, 59),
    hour=_part(0, 23),
    dom=_part(1, 31),
    dow=_part(0, 7),
    offset=st.integers(0, 60 * 24 * 60),
)
def test_previous_tick_matches_the_brute_force_oracle(
    minute: str, hour: str, dom: str, dow: str, offset: int
) -> None:
    expression = f"{minute} {hour} {dom} * {dow}"
    moment = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=offset, seconds=17)
    horizon = 60 * 24 * 70  # 70 days: every generated line with '*' month ticks within it
    expected = _oracle_previous(expression, moment, horizon)
    got = Cron.parse(expression).previous(moment)
    if expected is None:
        assert got is None or got < moment - timedelta(minutes=horizon)
    else:
        assert got == expected


def test_a_partial_policy_file_is_laid_over_the_shipped_one(tmp_path: Path) -> None:
    """A team's file holds what it changes; everything else is the shipped file's, read from there."""
    path = tmp_path / "partial.yaml"
    path.write_text("schedule: '0 3 * * 1'\ndrift: {consecutive_windows: 4}\n")
    policy, shipped = load_policy(path), load_policy()
    assert policy.schedule == "0 3 * * 1" and policy.schedule != shipped.schedule
    assert policy.drift.consecutive_windows == 4 != shipped.drift.consecutive_windows
    assert policy.drift.max_drifted_share == shipped.drift.max_drifted_share  # the section is merged
    assert policy.performance == shipped.performance and policy.promote_to == shipped.promote_to
    assert policy.name == "partial"
    path.write_text("drift: {consecutive_windows: 0, bogus: 1}\n")
    with pytest.raises(RetrainPolicyError) as caught:
        load_policy(path)
    assert "drift.consecutive_windows" in str(caught.value) and "drift.bogus" in str(caught.value)


def test_a_policy_built_in_code_is_the_shipped_file_overlaid() -> None:
    shipped = load_policy()
    policy = parse_policy({"drift": {"consecutive_windows": 5}})
    assert policy.drift.consecutive_windows == 5
    assert policy.drift.max_drifted_share == shipped.drift.max_drifted_share
    assert policy.model_copy(update={"drift": shipped.drift}) == shipped
