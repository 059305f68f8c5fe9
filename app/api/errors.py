"""RFC 9457 problem details: one mapping from every error kind to a response.

Bodies never echo request input values: validation errors name the field and the rule,
not the value, so no patient data can leak through an error.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.middleware import BodyTooLarge
from app.domain.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    UnsupportedMediaType,
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
    UnsupportedMediaType: 415,  # before InvalidInput, which it is a kind of
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


# pydantic messages that quote (part of) the submitted value
QUOTING_MESSAGES = {
    "union_tag_invalid": "does not match any of the expected tags",
    "uuid_parsing": "Input should be a valid UUID",
}


def safe_msg(err: Mapping[str, Any]) -> str:
    """The rule that failed, never the value sent (``input`` and ``ctx`` are left out)."""
    kind = str(err.get("type"))
    msg = QUOTING_MESSAGES.get(kind) or str(err.get("msg", "invalid"))
    submitted = err.get("input")
    if isinstance(submitted, str) and len(submitted) >= 4 and submitted in msg:
        return f"invalid ({kind})"
    return msg


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = [p for p in err.get("loc", ()) if isinstance(p, (str, int))]
        if len(loc) > 1 and loc[0] == "body" and loc[1] in UNION_TAGS:
            del loc[1]
        out.append({"loc": loc, "msg": safe_msg(err), "type": err.get("type")})
    return out


PRECONDITION_HEADERS = frozenset({"if-match"})


def _missing_precondition(error: dict[str, Any]) -> bool:
    loc = error["loc"]
    return (
        error["type"] == "missing"
        and len(loc) == 2
        and loc[0] == "header"
        and str(loc[1]).lower() in PRECONDITION_HEADERS
    )


RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before sending again.",
        "schema": {"type": "integer", "minimum": 1},
        "required": True,
    }
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: declares its error bodies in the OpenAPI document."""
    return {
        s: {
            "model": Problem,
            "content": {PROBLEM_JSON: {}},
            "description": TITLES[STATUS_KIND[s]],
            **({"headers": RETRY_AFTER} if s == 429 else {}),
        }
        for s in statuses
    }


HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def _allowed_methods(request: Request) -> str | None:
    """Every method the API documents for the path (RFC 9110 `Allow`).

    The 405 raised by the router names only the methods of the first route matching the
    path, while one path often has several routes (GET and POST of a collection, GET and
    PATCH of an item).
    """
    template = getattr(request.scope.get("route"), "path", None)
    operations = request.app.openapi().get("paths", {}).get(template)
    if not operations:
        return None
    return ", ".join(sorted(m.upper() for m in operations if m in HTTP_METHODS))


# SQLSTATEs meaning "the database is not there right now": class 08 (connection exception),
# 57P01-57P03 (admin shutdown, crash shutdown, cannot connect now), 53300 (too many connections)
UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})
DRIVER_MODULES = ("asyncpg", "sqlalchemy", "aiosqlite")


def _raised_in_driver(tb: TracebackType | None) -> bool:
    while tb is not None:
        if str(tb.tb_frame.f_globals.get("__name__", "")).startswith(DRIVER_MODULES):
            return True
        tb = tb.tb_next
    return False


def database_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) says the database cannot be reached right now.

    Covers a lost connection (SQLAlchemy marks it invalidated), the server refusing or closing
    connections (asyncpg ``ConnectionDoesNotExistError``, ``CannotConnectNowError``,
    ``AdminShutdownError``: by SQLSTATE, through SQLAlchemy's ``DBAPIError`` wrappers), and socket
    errors from the driver while (re)connecting (``ConnectionRefusedError`` and other
    ``OSError``s, which SQLAlchemy passes through unwrapped). An ``OSError`` raised outside the
    database driver is not counted.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        err = todo.pop()
        if err is None or id(err) in seen or len(seen) > 20:
            continue
        seen.add(id(err))
        if isinstance(err, DBAPIError):
            if err.connection_invalidated:
                return True
            todo.append(err.orig)
        sqlstate = getattr(err, "sqlstate", None)
        if isinstance(sqlstate, str) and (
            sqlstate.startswith("08") or sqlstate in UNAVAILABLE_SQLSTATES
        ):
            return True
        if isinstance(err, OSError) and _raised_in_driver(err.__traceback__):
            return True
        todo.extend((err.__cause__, err.__context__))
    return False


# deadlock detected, serialization failure: the same request retried succeeds
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
#: statement_timeout / lock_timeout: the database did not answer in time
TIMEOUT_SQLSTATES = frozenset({"57014", "55P03"})


def install(app: FastAPI) -> None:
    @app.exception_handler(TimeoutError)
    async def _timeout(request: Request, exc: TimeoutError) -> JSONResponse:
        # asyncpg's command_timeout: the server stopped answering (SQLAlchemy passes it through)
        log.warning("database did not answer within the command timeout")
        return problem_response(
            request,
            503,
            "The database did not answer in time; retry shortly.",
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        status = next((s for cls, s in DOMAIN_STATUS.items() if isinstance(exc, cls)), 400)
        errors = exc.errors if isinstance(exc, InvalidInput) else None
        return problem_response(
            request, status, exc.detail, kind=exc.kind, errors=errors or None, **exc.extra
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _field_errors(exc)
        if errors and all(_missing_precondition(e) for e in errors):
            # a required If-Match left out: 428 (RFC 6585), as the README promises, not 422
            return problem_response(request, 428, "Send If-Match with the current ETag.")
        return problem_response(
            request, 422, "The request has invalid or missing fields.", errors=errors
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and isinstance(exc.__cause__, BodyTooLarge):
            # a body without Content-Length that grew past the limit while it was read:
            # FastAPI wraps the error raised from receive() into "error parsing the body"
            return problem_response(
                request, 413, str(exc.__cause__) or "The request body is too large."
            )
        if exc.status_code == 400 and isinstance(
            exc.__cause__, UnicodeDecodeError | RecursionError
        ):
            # FastAPI answers 400 for a body that is not text, or nested too deeply for the
            # JSON parser, but 422 for malformed JSON text; all are the same client error
            # (RFC 8259 JSON is UTF-8)
            msg = "JSON nested too deeply" if isinstance(exc.__cause__, RecursionError) else None
            return problem_response(
                request,
                422,
                "The request has invalid or missing fields.",
                errors=[
                    {"loc": ["body"], "msg": msg or "JSON decode error", "type": "json_invalid"}
                ],
            )
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
        detail = exc.detail if isinstance(exc.detail, str) else None
        return problem_response(request, exc.status_code, detail, headers=headers)

    @app.exception_handler(OperationalError)
    async def _db_operational(request: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database unavailable: %s", type(exc.orig).__name__ if exc.orig else "error")
        return problem_response(
            request,
            503,
            "The database is busy or unreachable; retry shortly.",
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(OSError)
    async def _os_error(request: Request, exc: OSError) -> JSONResponse:
        if not database_unavailable(exc):
            raise exc  # not the database: the generic 500 below, as before
        log.warning("database unreachable: %s", type(exc).__name__)
        return problem_response(
            request,
            503,
            "The database is unreachable; retry shortly.",
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
        if database_unavailable(exc):
            log.warning(
                "database connection lost: %s", type(exc.orig).__name__ if exc.orig else "-"
            )
            return problem_response(
                request,
                503,
                "The database connection was lost; retry shortly.",
                headers={"Retry-After": "1"},
            )
        # the class and the driver's error code only: messages may carry submitted values
        code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "sqlite_errorname", None)
        if code in TIMEOUT_SQLSTATES or isinstance(exc.orig, TimeoutError):
            log.warning("database statement timed out (%s)", code)
            return problem_response(
                request,
                503,
                "The database did not answer in time; retry shortly.",
                headers={"Retry-After": "1"},
            )
        if code in RETRYABLE_SQLSTATES:
            log.warning("transaction aborted by the database (%s)", code)
            return problem_response(
                request,
                503,
                "The transaction collided with another; retry shortly.",
                headers={"Retry-After": "1"},
            )
        log.error("database error %s %s", type(exc.orig).__name__ if exc.orig else "-", code)
        return problem_response(request, 500, "An unexpected error occurred.")

    app.add_middleware(InternalErrorMiddleware)


class InternalErrorMiddleware:
    """Any unexpected exception: a complete 500 problem+json, and the connection stays usable.

    Starlette's own handler for ``Exception`` sends the response and then re-raises, and
    uvicorn answers a raised exception by resetting the connection, so a keep-alive client's
    next request on it failed. Here the exception ends with the response; when the response
    had already started, it is re-raised and uvicorn closes the connection.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            if started:
                raise
            log.error("unhandled error %s", type(exc).__name__)
            response = problem_response(Request(scope), 500, "An unexpected error occurred.")
            await response(scope, receive, send)
