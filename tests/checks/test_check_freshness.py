"""max_age: the newest value is recent enough, no value lies beyond the future skew, and naive
timestamps are judged only in the time zone the contract states."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest

from batchlane.spec import ColumnRules
from tests.checks.helpers import NOW, check, contract, rule, write

UTC_US = pa.timestamp("us", tz="UTC")


def _freshness(tmp_path, values, rules, name="product.parquet", **options):
    path = write(tmp_path, {"t": values}, name, **options)
    return rule(check(path, contract({"t": rules})), "max_age", "t")


def test_fresh_and_stale(tmp_path):
    fresh = NOW - dt.timedelta(hours=2)
    values = pa.array([fresh - dt.timedelta(days=40), fresh, None], UTC_US)
    ok = _freshness(tmp_path, values, {"max_age": "1d"})
    assert ok.passed and ok.detail is None
    assert ok.observed == {"newest": fresh.isoformat(), "age_seconds": 7200.0}
    assert ok.expected == {"max_age": "1d", "not_before": (NOW - dt.timedelta(days=1)).isoformat(),
                           "future_skew": "5m", "not_after": (NOW + dt.timedelta(minutes=5)).isoformat()}
    stale = _freshness(tmp_path, values, {"max_age": "1h"}, "stale.parquet")
    assert not stale.passed and stale.observed["age_seconds"] == 7200.0
    assert "7200s old, more than 1h" in stale.detail


def test_values_beyond_the_future_skew_fail(tmp_path):
    ahead = [NOW + dt.timedelta(hours=1), NOW + dt.timedelta(days=400), NOW - dt.timedelta(hours=1),
             NOW + dt.timedelta(hours=1), None]
    result = _freshness(tmp_path, pa.array(ahead, UTC_US), {"max_age": "1d"})
    assert not result.passed
    assert result.observed["newest"] == (NOW + dt.timedelta(days=400)).isoformat()  # the newest value, shown
    assert result.observed["age_seconds"] == -400 * 86_400.0
    assert result.failing_count == 3
    assert sorted(result.failing_sample) == sorted({v.isoformat() for v in ahead[:2]})
    assert result.detail.startswith("3 values are in the future beyond the allowed skew of 5m")


def test_one_value_in_the_future_is_enough_and_is_named(tmp_path):
    result = _freshness(tmp_path, pa.array([NOW - dt.timedelta(days=400), NOW + dt.timedelta(minutes=6)], UTC_US),
                        {"max_age": "1d"})
    assert not result.passed and result.detail.startswith("1 value is in the future beyond the allowed skew of 5m")


def test_values_within_the_skew_pass(tmp_path):
    result = _freshness(tmp_path, pa.array([NOW + dt.timedelta(minutes=4, seconds=59)], UTC_US), {"max_age": "1d"})
    assert result.passed and result.observed["age_seconds"] == -299.0


def test_the_skew_is_configurable(tmp_path):
    values = pa.array([NOW + dt.timedelta(hours=1)], UTC_US)
    assert _freshness(tmp_path, values, {"max_age": "1d", "future_skew": "2h"}).passed
    tight = _freshness(tmp_path, values, {"max_age": "1d", "future_skew": "30m"}, "tight.parquet")
    assert not tight.passed and "allowed skew of 30m" in tight.detail
    assert tight.expected["future_skew"] == "30m"


def test_future_values_are_counted_across_row_groups_and_files(tmp_path):
    first = write(tmp_path, {"t": pa.array([NOW, NOW + dt.timedelta(hours=2)] * 3, UTC_US)}, "a.parquet",
                  row_group_size=2)
    second = write(tmp_path, {"t": pa.array([NOW + dt.timedelta(hours=3)], UTC_US)}, "b.parquet")
    result = rule(check([first, second], contract({"t": {"max_age": "1d"}})), "max_age", "t")
    assert result.failing_count == 4 and len(result.failing_sample) == 2


def test_naive_timestamps_without_a_time_zone_fail_and_say_what_to_state(tmp_path):
    naive = pa.array([dt.datetime(2026, 11, 27, 11, 0)], pa.timestamp("s"))
    result = _freshness(tmp_path, naive, {"max_age": "1h"})
    assert not result.passed
    assert "without a time zone" in result.detail and "timezone:" in result.detail
    assert "(timestamp[ms])" in result.detail  # the type as read back: Parquet stores seconds as ms


def test_naive_timestamps_are_read_in_the_stated_zone(tmp_path):
    # 12:03 on New York's wall clock is 17:03 UTC: five hours ahead, though only three minutes as if UTC
    wall = pa.array([dt.datetime(2026, 11, 27, 12, 3)], pa.timestamp("ms"))
    as_new_york = _freshness(tmp_path, wall, {"max_age": "1d", "timezone": "America/New_York"})
    assert not as_new_york.passed and "1 value is in the future" in as_new_york.detail
    assert as_new_york.observed["newest"] == "2026-11-27T17:03:00+00:00"
    assert as_new_york.expected["timezone"] == "America/New_York"
    as_utc = _freshness(tmp_path, wall, {"max_age": "1d", "timezone": "UTC"}, "utc.parquet")
    assert as_utc.passed and as_utc.observed["age_seconds"] == -180.0
    # 12:30 in Berlin (UTC+1 in November) is 11:30 UTC: half an hour old
    berlin = _freshness(tmp_path, pa.array([dt.datetime(2026, 11, 27, 12, 30)], pa.timestamp("us")),
                        {"max_age": "1h", "timezone": "Europe/Berlin"}, "berlin.parquet")
    assert berlin.passed and berlin.observed == {"newest": "2026-11-27T11:30:00+00:00", "age_seconds": 1800.0}


def test_naive_future_values_are_counted_in_the_stated_zone(tmp_path):
    wall = pa.array([dt.datetime(2026, 11, 27, 13, 30), dt.datetime(2026, 11, 27, 12, 30),
                     dt.datetime(2026, 11, 27, 14, 0)], pa.timestamp("us"))
    result = _freshness(tmp_path, wall, {"max_age": "1d", "timezone": "Europe/Berlin"})
    # 13:30 and 14:00 Berlin are 12:30 and 13:00 UTC: beyond 12:05 UTC; 12:30 Berlin is 11:30 UTC
    assert result.failing_count == 2
    assert sorted(result.failing_sample) == ["2026-11-27T12:30:00+00:00", "2026-11-27T13:00:00+00:00"]


def test_an_ambiguous_wall_time_takes_the_earliest_instant(tmp_path):
    # 02:30 on 2026-10-25 happens twice in Berlin (CEST, then CET): the earlier one is 00:30 UTC
    wall = pa.array([dt.datetime(2026, 10, 25, 2, 30)], pa.timestamp("s"))
    path = write(tmp_path, {"t": wall})
    now = dt.datetime(2026, 10, 25, 2, 0, tzinfo=dt.UTC)
    result = rule(check(path, contract({"t": {"max_age": "1d", "timezone": "Europe/Berlin"}}), now=now),
                  "max_age", "t")
    assert result.observed == {"newest": "2026-10-25T00:30:00+00:00", "age_seconds": 5400.0}


def test_zone_aware_timestamps_use_their_own_zone(tmp_path):
    moment = dt.datetime(2026, 11, 27, 11, 0, tzinfo=dt.UTC)
    paris = pa.array([moment], pa.timestamp("ms", tz="Europe/Paris"))
    result = _freshness(tmp_path, paris, {"max_age": "1h", "timezone": "America/New_York"})
    assert result.passed and result.observed["newest"] == "2026-11-27T11:00:00+00:00"
    assert "timezone" not in result.expected  # not used for a zone-aware column


def test_an_unknown_time_zone_fails_with_its_name(tmp_path):
    rules = contract({"t": {"max_age": "1d"}})
    # The spec loader may refuse unknown zones itself; the checker must not depend on that.
    rules.columns["t"] = ColumnRules.model_construct(max_age="1d", timezone="Mars/Olympus_Mons")
    path = write(tmp_path, {"t": pa.array([dt.datetime(2026, 11, 27, 11, 0)], pa.timestamp("s"))})
    result = rule(check(path, rules), "max_age", "t")
    assert not result.passed and "'Mars/Olympus_Mons' is not a known IANA time zone" in result.detail


@pytest.mark.parametrize("date_type", [pa.date32(), pa.date64()])
def test_dates_are_midnight_utc_by_default(tmp_path, date_type):
    today = _freshness(tmp_path, pa.array([dt.date(2026, 11, 27), dt.date(2026, 1, 1)], date_type), {"max_age": "1d"})
    assert today.passed and today.observed == {"newest": "2026-11-27", "age_seconds": 43200.0}
    # tomorrow's midnight UTC is 12 hours after NOW: in the future
    tomorrow = _freshness(tmp_path, pa.array([dt.date(2026, 11, 28)], date_type), {"max_age": "1d"}, "t.parquet")
    assert not tomorrow.passed and "1 value is in the future" in tomorrow.detail
    assert tomorrow.failing_sample == ["2026-11-28"]


def test_dates_are_midnight_in_the_stated_zone(tmp_path):
    # Kiritimati is UTC+14: its 2026-11-28 begins at 10:00 UTC on the 27th, before NOW (12:00 UTC)
    result = _freshness(tmp_path, pa.array([dt.date(2026, 11, 28)]),
                        {"max_age": "1d", "timezone": "Pacific/Kiritimati"})
    assert result.passed and result.observed == {"newest": "2026-11-28", "age_seconds": 7200.0}


def test_no_values_means_freshness_unknown(tmp_path):
    result = _freshness(tmp_path, pa.array([None], UTC_US), {"max_age": "1d"})
    assert not result.passed and "no non-null values" in result.detail


def test_max_age_on_a_non_temporal_column_fails_with_reason(tmp_path):
    result = _freshness(tmp_path, pa.array([1, 2]), {"max_age": "1d"})
    assert not result.passed and "timestamp or date columns, not int64" in result.detail


def test_freshness_evidence_is_plain_json(tmp_path):
    result = _freshness(tmp_path, pa.array([NOW + dt.timedelta(days=1)], pa.timestamp("ns", tz="UTC")),
                        {"max_age": "1d"})
    text = json.dumps(result.model_dump(mode="json"), allow_nan=False)
    assert json.loads(text)["failing_sample"] == [(NOW + dt.timedelta(days=1)).isoformat()]
