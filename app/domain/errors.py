"""Domain and use-case errors. They carry no HTTP; app/api/errors.py maps them once."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base class. ``detail`` is safe to show: it never holds patient data."""

    kind = "domain-error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(DomainError):
    kind = "not-found"


class Conflict(DomainError):
    kind = "conflict"


class Forbidden(DomainError):
    kind = "forbidden"


class InvalidInput(DomainError):
    """Semantic validation failure; ``errors`` lists offending fields."""

    kind = "validation-error"

    def __init__(
        self, detail: str, errors: list[dict[str, Any]] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail, **extra)
        self.errors = errors or []


class PreconditionRequired(DomainError):
    """A change that must name the version it was based on (If-Match) did not."""

    kind = "precondition-required"


class PreconditionFailed(DomainError):
    """The object changed since the caller read it."""

    kind = "precondition-failed"


class UnsupportedMediaType(InvalidInput):
    """415: a body whose type (by its content, or as declared) is not one this operation takes."""

    kind = "unsupported-media-type"
