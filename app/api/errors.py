"""RFC 9457 problem details: one mapping from every error kind to a response.

Bodies never echo request input values: validation errors name the field and the rule,
not the value, so no patient data can leak through an error.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.domain.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://referral.example.org/problems/"
log = logging.getLogger("app.errors")


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="Where the offending value is, e.g. ['body','code'].")
    msg: str
    type: str | None = None


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = Field(examples=[TYPE_BASE + "not-found"])
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    errors: list[FieldError] | None = None

    model_config = {"extra": "allow"}


TITLES: dict[str, str] = {
    "bad-request": "Bad request",
    "unauthorized": "Missing or invalid API key",
    "forbidden": "Not allowed for this key",
    "not-found": "Not found",
    "method-not-allowed": "Method not allowed",
    "not-acceptable": "Not acceptable",
    "conflict": "Conflict",
    "precondition-failed": "Precondition failed",
    "payload-too-large": "Payload too large",
    "unsupported-media-type": "Unsupported media type",
    "validation-error": "Invalid request",
    "precondition-required": "Precondition required",
    "rate-limited": "Too many requests",
    "internal-error": "Internal server error",
    "service-unavailable": "Service unavailable",
}
STATUS_KIND = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    412: "precondition-failed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
    428: "precondition-required",
    429: "rate-limited",
    500: "internal-error",
    503: "service-unavailable",
}
DOMAIN_STATUS: dict[type[DomainError], int] = {
    NotFound: 404,
    Forbidden: 403,
    Conflict: 409,
    InvalidInput: 422,
    PreconditionFailed: 412,
    PreconditionRequired: 428,
}


def problem_response(
    request: Request,
    status: int,
    detail: str | None = None,
    *,
    kind: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    kind = kind or STATUS_KIND.get(status, "error")
    body: dict[str, Any] = {
        "type": TYPE_BASE + kind,
        "title": TITLES.get(kind) or TITLES[STATUS_KIND.get(status, "internal-error")],
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "request_id": getattr(request.state, "request_id", None),
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(
        body, status_code=status, media_type=PROBLEM_JSON, headers=dict(headers or {})
    )


UNION_TAGS = frozenset({"up", "down"})  # tags of the referral body union, not field names


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = [p for p in err.get("loc", ()) if isinstance(p, (str, int))]
        if len(loc) > 1 and loc[0] == "body" and loc[1] in UNION_TAGS:
            del loc[1]
        out.append(
            {
                "loc": loc,
                "msg": str(err.get("msg", "invalid")),
                "type": err.get("type"),
            }
        )
    return out


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: declares its error bodies in the OpenAPI document."""
    return {
        s: {"model": Problem, "content": {PROBLEM_JSON: {}}, "description": TITLES[STATUS_KIND[s]]}
        for s in statuses
    }


class ServiceUnavailable(Exception):
    """The database or another dependency is not reachable right now."""

    def __init__(self, detail: str, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        status = next((s for cls, s in DOMAIN_STATUS.items() if isinstance(exc, cls)), 400)
        errors = exc.errors if isinstance(exc, InvalidInput) else None
        return problem_response(
            request, status, exc.detail, kind=exc.kind, errors=errors or None, **exc.extra
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(
            request, 422, "The request has invalid or missing fields.", errors=_field_errors(exc)
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else None
        return problem_response(request, exc.status_code, detail, headers=exc.headers)

    @app.exception_handler(ServiceUnavailable)
    async def _unavailable(request: Request, exc: ServiceUnavailable) -> JSONResponse:
        return problem_response(
            request, 503, exc.detail, headers={"Retry-After": str(exc.retry_after)}
        )

    @app.exception_handler(OperationalError)
    async def _db_operational(request: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database unavailable: %s", type(exc.orig).__name__ if exc.orig else "error")
        return problem_response(
            request,
            503,
            "The database is busy or unreachable; retry shortly.",
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(PoolTimeout)
    async def _pool_timeout(request: Request, exc: PoolTimeout) -> JSONResponse:
        log.warning("no database connection free in time")
        return problem_response(
            request, 503, "The service is busy; retry shortly.", headers={"Retry-After": "1"}
        )

    @app.exception_handler(DBAPIError)
    async def _db_error(request: Request, exc: DBAPIError) -> JSONResponse:
        if exc.connection_invalidated:
            return problem_response(
                request,
                503,
                "The database connection was lost; retry shortly.",
                headers={"Retry-After": "1"},
            )
        # the class and the driver's error code only: messages may carry submitted values
        code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "sqlite_errorname", None)
        log.error("database error %s %s", type(exc.orig).__name__ if exc.orig else "-", code)
        return problem_response(request, 500, "An unexpected error occurred.")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error %s", type(exc).__name__)
        return problem_response(request, 500, "An unexpected error occurred.")
