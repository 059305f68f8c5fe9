from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from app.api.schemas.common import Instant, TimeZoneName
from app.db.base import clock_at, utcnow
from app.db.sql_functions import sqlite_local_month
from app.domain import localtime as lt
from app.domain.errors import InvalidInput
from app.services import loader

SH = "Asia/Shanghai"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("instant", "day", "month"),
    [
        (utc(2026, 11, 21, 15, 59, 59), date(2026, 11, 21), "2026-11"),
        (utc(2026, 11, 21, 16, 0, 0), date(2026, 11, 22), "2026-11"),
        (utc(2026, 11, 30, 15, 59, 59), date(2026, 11, 30), "2026-11"),
        (utc(2026, 11, 30, 17, 0, 0), date(2026, 12, 1), "2026-12"),
        (utc(2026, 12, 31, 15, 59, 59), date(2026, 12, 31), "2026-12"),
        (utc(2026, 12, 31, 16, 0, 0), date(2027, 1, 1), "2027-01"),
    ],
)
def test_local_day_and_month_in_beijing(instant: datetime, day: date, month: str) -> None:
    assert lt.local_date(instant, SH) == day
    assert lt.today(instant, SH) == day
    assert lt.local_month(instant, SH) == month
    # the same instant written with another offset is the same local day
    assert lt.local_date(instant.astimezone(timezone(timedelta(hours=-5))), SH) == day


def test_utc_bounds_of_local_days_and_months() -> None:
    assert lt.day_start(date(2026, 11, 22), SH) == utc(2026, 11, 21, 16)
    assert lt.day_bounds(date(2026, 12, 1), date(2027, 1, 1), SH) == (
        utc(2026, 11, 30, 16),
        utc(2026, 12, 31, 16),
    )
    assert lt.month_start(date(2026, 12, 15), SH) == utc(2026, 11, 30, 16)
    assert lt.next_month(date(2026, 12, 31)) == date(2027, 1, 1)
    assert lt.next_month(date(2026, 1, 31)) == date(2026, 2, 1)
    # a zone with daylight saving: the day of the spring change is 23 hours long
    start, end = lt.day_bounds(date(2026, 3, 29), date(2026, 3, 30), "Europe/Berlin")
    assert (start, end - start) == (utc(2026, 3, 28, 23), timedelta(hours=23))


@pytest.mark.parametrize("name", ["Asia/Shanghai", "Asia/Urumqi", "UTC", "Europe/Berlin"])
def test_iana_names_are_zones(name: str) -> None:
    assert lt.validate_zone(name) == name


@pytest.mark.parametrize(
    "name", ["", "Mars/Olympus", "+08:00", "CST-8 ", "../etc/passwd", "/etc/localtime", "x" * 65]
)
def test_other_names_are_refused(name: str) -> None:
    with pytest.raises(lt.InvalidTimeZone):
        lt.zone(name)
    with pytest.raises(ValidationError):
        TypeAdapter(TimeZoneName).validate_python(name)


def test_naive_instants_have_no_local_day() -> None:
    with pytest.raises(ValueError, match="naive"):
        lt.local_date(datetime(2026, 11, 22, 7, 30), SH)


INSTANT = TypeAdapter(Instant)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-22T07:30:00+08:00", utc(2026, 11, 21, 23, 30)),
        ("2026-11-21T23:30:00Z", utc(2026, 11, 21, 23, 30)),
        ("2026-11-21T18:30:00-05:00", utc(2026, 11, 21, 23, 30)),
    ],
)
def test_instants_with_an_offset_are_kept_in_utc(text: str, expected: datetime) -> None:
    value = INSTANT.validate_python(text)
    assert value == expected and value.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-11-22T07:30:00", "needs a UTC offset"),
        ("2026-11-22T07:30", "needs a UTC offset"),
        ("2026-11-22", "needs a date and time with a UTC offset"),
        ("0001-01-01T00:00:00+14:00", "out of range"),
        ("9999-12-31T23:00:00-05:00", "out of range"),
        ("1764000000", "ISO 8601"),
    ],
)
def test_instants_without_an_offset_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        INSTANT.validate_python(text)
    (error,) = caught.value.errors()
    assert message in error["msg"]


def test_clock_at_fixes_now_for_the_block_only() -> None:
    fixed = utc(2026, 11, 21, 16)
    with clock_at(fixed.astimezone(timezone(timedelta(hours=8)))):
        assert utcnow() == fixed and utcnow().tzinfo is UTC
    assert abs(utcnow() - datetime.now(UTC)) < timedelta(seconds=5)
    with pytest.raises(ValueError, match="aware"), clock_at(datetime(2026, 11, 21, 16)):
        pass


def test_sqlite_local_month_function() -> None:
    assert sqlite_local_month("2026-11-30 17:00:00.000000", SH) == "2026-12"
    assert sqlite_local_month("2026-11-30 15:59:59", SH) == "2026-11"
    assert sqlite_local_month("2026-12-31 16:00:00", SH) == "2027-01"
    assert sqlite_local_month(None, SH) is None
    assert sqlite_local_month("not a time", SH) is None
    assert sqlite_local_month("2026-11-30 17:00:00", "Mars/Olympus") is None


def test_consortium_files_name_their_zone(tmp_path: Path) -> None:
    shipped = loader.DEMO_CONSORTIA_DIR / "zhenghe.yaml"
    assert loader.parse_file(shipped).consortium.time_zone == SH
    text = shipped.read_text("utf-8")
    unzoned = tmp_path / "unzoned.yaml"
    unzoned.write_text(text.replace('  time_zone: "Asia/Shanghai"\n', ""), "utf-8")
    assert loader.parse_file(unzoned).consortium.time_zone is None  # the default when loaded
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace('time_zone: "Asia/Shanghai"', 'time_zone: "Mars/Base"'), "utf-8")
    with pytest.raises(InvalidInput) as caught:
        loader.parse_file(bad)
    assert [e["loc"] for e in caught.value.errors] == [["consortium", "time_zone"]]
