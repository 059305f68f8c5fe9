from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from app.api.schemas.text_guard import refuse_nul
from app.domain.localtime import InvalidTimeZone, validate_zone

T = TypeVar("T")
_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _iso_8601(value: object) -> object:
    """Dates and times are ISO 8601 strings, as the OpenAPI document says; without this check
    pydantic would also take a number, or a string of digits, as a Unix time."""
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("expected an ISO 8601 string")
    return value


OFFSET_EXAMPLE = "2026-11-22T07:30:00+08:00"
_DATE_ONLY = re.compile(r"\s*[-+]?\d{4,}-\d{2}-\d{2}\s*")


def _timestamp_text(value: object) -> object:
    value = _iso_8601(value)
    if isinstance(value, str) and _DATE_ONLY.fullmatch(value):
        raise ValueError(f"needs a date and time with a UTC offset, e.g. {OFFSET_EXAMPLE}")
    return value


def _utc_instant(value: datetime) -> datetime:
    """Every timestamp a client sends carries its offset (`Z` or `+08:00`): one without is
    refused rather than guessed; the instant is kept in UTC, which must be representable."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"needs a UTC offset, e.g. {OFFSET_EXAMPLE}")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range once converted to UTC") from None


def _time_zone(value: str) -> str:
    try:
        return validate_zone(value)
    except InvalidTimeZone:
        raise ValueError("not an IANA time-zone name, e.g. Asia/Shanghai") from None


IsoDate = Annotated[date, BeforeValidator(_iso_8601)]
# the shape of an IANA name (`Asia/Shanghai`, `Etc/GMT-8`); the zone must also exist in the
# time-zone database (the `tzdata` package), which no pattern can say
TimeZoneName = Annotated[
    str,
    StringConstraints(max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$"),
    AfterValidator(_time_zone),
]
# the one type of every timestamp in a request body or query string
Instant = Annotated[datetime, BeforeValidator(_timestamp_text), AfterValidator(_utc_instant)]
# former names of timestamp inputs: the same type, so no timestamp input is ever naive
IsoDatetime = Instant
IsoAwareDatetime = Instant


def _non_blank(schema: dict[str, Any], model: type[BaseModel] | None = None) -> None:
    """Request strings are stripped before their length is checked (`str_strip_whitespace`),
    so a required-length string must contain a non-whitespace character: say so in the
    JSON schema, as `pattern: \\S`, where no pattern of its own already says more."""
    if (
        schema.get("type") == "string"
        and schema.get("minLength", 0) >= 1
        and not {"pattern", "format", "enum", "const"} & schema.keys()
    ):
        schema["pattern"] = r"\S"
    for value in schema.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                _non_blank(item)


class StrictModel(BaseModel):
    """Request bodies: unknown fields are refused (no mass assignment), NUL characters too."""

    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, json_schema_extra=_non_blank
    )

    _no_nul = field_validator("*", mode="before")(refuse_nul)


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class PageOf(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` to get the next page; null on the last page."
    )
