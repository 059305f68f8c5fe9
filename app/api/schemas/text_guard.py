"""Request strings never hold NUL characters (PostgreSQL text cannot store them)."""

from __future__ import annotations

from typing import Any

from pydantic_core import PydanticCustomError

MAX_DEPTH = 64


def holds_nul(value: Any, depth: int = 0) -> bool:
    """True when ``value`` (a string, or strings inside lists and objects) contains NUL."""
    if isinstance(value, str):
        return "\x00" in value
    if depth > MAX_DEPTH:
        return False
    if isinstance(value, dict):
        return any(holds_nul(k, depth + 1) or holds_nul(v, depth + 1) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(holds_nul(v, depth + 1) for v in value)
    return False


def refuse_nul(value: Any) -> Any:
    """A `mode="before"` field check: the error names the field, never the value."""
    if holds_nul(value):
        raise PydanticCustomError("string_nul", "must not contain NUL characters")
    return value
