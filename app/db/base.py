"""Declarative base with a naming convention, and portable column types."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import DateTime, MetaData, String
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every back end (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class StrEnumText(TypeDecorator[Any]):
    """A ``StrEnum`` kept as plain text (no constraint in the schema, as the column was):
    written as its value, read back as the enum member."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[StrEnum], length: int) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else str(self.enum(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else self.enum(value)


# "now" for the current context: None is the system clock; `clock_at` sets a fixed instant
# for one block (tests of day boundaries), and tasks started inside it inherit it
_fixed_now: ContextVar[datetime | None] = ContextVar("referral_fixed_now", default=None)


def utcnow() -> datetime:
    fixed = _fixed_now.get()
    return datetime.now(UTC) if fixed is None else fixed


@contextmanager
def clock_at(instant: datetime) -> Iterator[None]:
    """Within the block (and requests served from it), `utcnow()` answers `instant`."""
    if instant.tzinfo is None:
        raise ValueError("clock_at needs an aware datetime")
    token = _fixed_now.set(instant.astimezone(UTC))
    try:
        yield
    finally:
        _fixed_now.reset(token)


_id_lock = threading.Lock()
_id_state = {"ms": 0, "counter": 0}


def new_id() -> str:
    """A UUIDv7 string, monotonic within the process (RFC 9562, counter in rand_a).

    Time-ordered, so keyset paging by id follows creation order, and rows written in the
    same millisecond (a referral's events) still sort in the order they were made.
    """
    with _id_lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _id_state["ms"]:
            ms = _id_state["ms"]
            _id_state["counter"] += 1
            if _id_state["counter"] > 0xFFF:
                ms += 1
                _id_state["counter"] = 0
        else:
            _id_state["counter"] = int.from_bytes(os.urandom(2), "big") & 0x7FF
        _id_state["ms"] = ms
        counter = _id_state["counter"]
    rand = int.from_bytes(os.urandom(8), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= (counter & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def enum_values(enum_cls: Any) -> list[str]:
    return [member.value for member in enum_cls]
