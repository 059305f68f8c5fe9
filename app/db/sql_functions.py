"""SQL functions SQLite lacks, registered on each of its connections (app/db/session.py)."""

from __future__ import annotations

import math
import sqlite3
from datetime import UTC, datetime
from typing import Any

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


#: what routing's pre-filter computes distances with (app/db/repositories/routing.py); SQLite
#: has them when built with its math functions, as the usual builds are
MATH_FUNCTIONS = {"sin": math.sin, "cos": math.cos, "asin": math.asin, "sqrt": math.sqrt}


def _math_or_null(fn: Any) -> Any:
    def call(value: object) -> float | None:
        if not isinstance(value, int | float):
            return None
        try:
            return float(fn(value))
        except ValueError:  # outside the domain: NULL, as SQLite's own functions answer
            return None

    return call


def register_math_functions(connection: Any, *, force: bool = False) -> list[str]:
    """Register on a SQLite DB-API ``connection`` Python versions of the math functions its
    library lacks (all of them with ``force``); the names registered."""
    missing = []
    cursor = connection.cursor()
    for name in MATH_FUNCTIONS:
        if not force:
            try:
                cursor.execute(f"SELECT {name}(0.5)")
                cursor.fetchall()
                continue
            except sqlite3.OperationalError:
                pass  # no such function
        missing.append(name)
    cursor.close()
    for name in missing:
        connection.create_function(name, 1, _math_or_null(MATH_FUNCTIONS[name]), deterministic=True)
    return missing
