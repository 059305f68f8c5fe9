"""The consortium's local time: its days and months, and their bounds as UTC instants.

Instants are stored and compared in UTC; a "day" or a "month" a person reads (the referral
number's date, today's outpatient slots, "not in the future", the monthly figures) is one of
the consortium's IANA time zone. Durations are differences of instants and never need a zone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_TIME_ZONE = "Asia/Shanghai"


class InvalidTimeZone(ValueError):
    """Not a name in the IANA time-zone database."""


@lru_cache(maxsize=64)
def zone(name: str) -> tzinfo:
    """The zone of an IANA name (`Asia/Shanghai`); InvalidTimeZone for anything else."""
    if not name or len(name) > 64 or name != name.strip() or name.startswith(("/", ".")):
        raise InvalidTimeZone("not an IANA time-zone name")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise InvalidTimeZone("not an IANA time-zone name") from exc


def validate_zone(name: str) -> str:
    zone(name)
    return name


def local(instant: datetime, tz: str) -> datetime:
    if instant.tzinfo is None:
        raise ValueError("a naive datetime has no place in time")
    return instant.astimezone(zone(tz))


def local_date(instant: datetime, tz: str) -> date:
    """The consortium's calendar day of an instant."""
    return local(instant, tz).date()


def local_month(instant: datetime, tz: str) -> str:
    """`YYYY-MM` of the consortium's month of an instant."""
    return f"{local(instant, tz):%Y-%m}"


def today(now: datetime, tz: str) -> date:
    return local_date(now, tz)


def day_start(day: date, tz: str) -> datetime:
    """The UTC instant at which the local day begins (00:00 there; where a transition skips
    midnight, the offset before it is used, which is the first instant of the day)."""
    return datetime.combine(day, time.min, zone(tz)).astimezone(UTC)


def day_bounds(first: date, end: date, tz: str) -> tuple[datetime, datetime]:
    """UTC bounds [start, end) of the local days from `first` up to `end` (exclusive)."""
    return day_start(first, tz), day_start(end, tz)


def month_start(month: date, tz: str) -> datetime:
    return day_start(month.replace(day=1), tz)


def next_month(day: date) -> date:
    first = day.replace(day=1)
    return (first + timedelta(days=32)).replace(day=1)
