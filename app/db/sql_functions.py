"""SQL functions SQLite lacks, registered on each of its connections (app/db/session.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from app.domain.localtime import InvalidTimeZone, local_month

LOCAL_MONTH = "local_month"


def sqlite_local_month(value: object, zone_name: object) -> str | None:
    """`local_month(ts, 'Asia/Shanghai')`: "YYYY-MM" of a stored UTC timestamp in the zone,
    like PostgreSQL's ``to_char(ts AT TIME ZONE zone, 'YYYY-MM')``; NULL for NULL."""
    if not isinstance(value, str) or not isinstance(zone_name, str):
        return None
    try:
        instant = datetime.fromisoformat(value)
        if instant.tzinfo is None:
            instant = instant.replace(tzinfo=UTC)
        return local_month(instant, zone_name)
    except (ValueError, OverflowError, InvalidTimeZone):
        return None
