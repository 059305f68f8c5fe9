from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
)

from app.api.schemas.text_guard import refuse_nul

T = TypeVar("T")
_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _iso_8601(value: object) -> object:
    """Dates and times are ISO 8601 strings, as the OpenAPI document says; without this check
    pydantic would also take a number, or a string of digits, as a Unix time."""
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("expected an ISO 8601 string")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_8601)]
IsoDatetime = Annotated[datetime, BeforeValidator(_iso_8601)]
IsoAwareDatetime = Annotated[AwareDatetime, BeforeValidator(_iso_8601)]


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
