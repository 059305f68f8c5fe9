"""Request dependencies: settings, the unit of work, the caller's identity, paging."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db.session import Database
from app.domain.enums import Role
from app.services import auth
from app.services.context import Context
from app.services.crypto import PatientDataProtector

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
NOTICE_PATH = re.compile(r"/v1/referrals/[^/]+/patient-notice$")

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="API key as `Authorization: Bearer <key>`.",
    bearerFormat="API key",
)
api_key_scheme = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="API key in the X-API-Key header."
)


# dependencies are coroutines even when they do no I/O: FastAPI runs a plain function on its
# thread pool, a hand-over to another thread and back for every request


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed when the endpoint returns, rolled back on error.

    The commit happens before the response is sent (dependency scope "function"), so a
    client never sees a success for a change that was not stored.
    """
    database = get_database(request)
    async with database.unit_of_work(read_only=request.method in SAFE_METHODS) as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def get_principal(
    request: Request,
    settings: SettingsDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    header_key: Annotated[str | None, Depends(api_key_scheme)],
) -> auth.Principal:
    """The caller, from its API key.

    Looked up in a short read-only transaction of its own (not the request's), so an endpoint
    may commit work of its own before its main transaction starts; results are cached for a
    few seconds per process.
    """
    key = header_key or (bearer.credentials if bearer else None)
    if not key:
        raise HTTPException(
            401,
            "Send an API key as 'Authorization: Bearer <key>' or 'X-API-Key'.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    cache: auth.PrincipalCache = request.app.state.principal_cache
    principal = cache.get(key)
    if principal is None:
        async with get_database(request).unit_of_work(read_only=True) as session:
            principal = await auth.authenticate(session, key, settings.secret("api_key_pepper"))
        if principal is not None:
            cache.put(key, principal)
    if principal is None:
        raise HTTPException(
            401, "The API key is unknown or revoked.", headers={"WWW-Authenticate": "Bearer"}
        )
    if principal.role is Role.NOTIFIER and not (
        request.method == "GET" and NOTICE_PATH.search(request.url.path)
    ):  # an SMS gateway's key reads patient notices and nothing else
        raise HTTPException(403, "A notifier key reads patient notices only.")
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[auth.Principal, Depends(get_principal)]


async def get_protector(request: Request) -> PatientDataProtector:
    protector: PatientDataProtector = request.app.state.protector
    return protector


ProtectorDep = Annotated[PatientDataProtector, Depends(get_protector)]


async def get_context(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    protector: ProtectorDep,
) -> Context:
    """The request's unit of work and caller, for a use case."""
    return Context(
        session=session,
        database=get_database(request),
        settings=settings,
        protector=protector,
        principal=principal,
        path=request.url.path,
        root_path=str(request.scope.get("root_path", "")),
    )


ContextDep = Annotated[Context, Depends(get_context)]


@dataclass(frozen=True, slots=True)
class Page:
    after: str | None
    limit: int


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


CURSOR_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def invalid_cursor() -> RequestValidationError:
    """422 naming the `cursor` query parameter (its value is not echoed)."""
    return RequestValidationError(
        [
            {
                "loc": ("query", "cursor"),
                "msg": "not a valid cursor; pass next_cursor as given",
                "type": "cursor_invalid",
            }
        ]
    )


def decode_cursor_text(cursor: str) -> str:
    """The text inside a cursor (URL-safe base64 of printable ASCII), or 422."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise invalid_cursor() from exc
    if not value or not value.isprintable():
        raise invalid_cursor()
    return value


def _decode_cursor(cursor: str) -> str:
    value = decode_cursor_text(cursor)
    if not CURSOR_ID.fullmatch(value):
        raise invalid_cursor()
    return value


def get_page(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size (1 to 200).")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=100, description="`next_cursor` of the previous page.")
    ] = None,
) -> Page:
    settings: Settings = request.app.state.settings
    return Page(
        after=_decode_cursor(cursor) if cursor else None, limit=min(limit, settings.page_size_max)
    )


PageDep = Annotated[Page, Depends(get_page)]
