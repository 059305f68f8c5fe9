"""The worklist under /fhir: one page of ``worklist.list_referrals`` (the /v1 worklist's
service, order and access), narrowed to an owner (current target) or a requester (source)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fastapi.exceptions import RequestValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.routes.worklist import decode_cursor, encode_cursor
from app.config import Settings
from app.db.models import Referral
from app.db.repositories.referrals import WorklistQuery
from app.domain.enums import Role
from app.fhir.search import bad_parameter
from app.services import worklist
from app.services.auth import Principal


@dataclass(frozen=True, slots=True)
class FhirPage:
    rows: Sequence[Referral]
    next_cursor: str | None


async def worklist_page(
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    *,
    count: int,
    cursor: str | None,
    owner: str | None = None,
    source: str | None = None,
    statuses: tuple[str, ...] = (),
) -> FhirPage:
    """An owner or requester that is the caller's own institution is its incoming or
    outgoing box; another one narrows by counterpart, and the page keeps only the referrals
    where it is the owner (target) or requester (source), so a page may hold fewer entries
    than ``_count`` and still have a next link."""
    try:
        after = decode_cursor(cursor) if cursor else None
    except RequestValidationError as exc:
        raise bad_parameter(
            "_cursor", "not a paging token of this service", "cursor_invalid"
        ) from exc
    mine = principal.institution_id if principal.role in (Role.CLINIC, Role.HOSPITAL) else None
    box, counterpart = "all", None
    if owner is not None:
        box, counterpart = ("incoming", None) if owner == mine else ("all", owner)
    if source is not None:
        if source == mine:
            box = "outgoing" if box == "all" else box
        else:
            counterpart = counterpart or source
    limit = min(count, settings.page_size_max)
    query = WorklistQuery(
        box=box, statuses=statuses, counterpart=counterpart, after=after, limit=limit
    )
    result = await worklist.list_referrals(session, principal, query)
    rows = [
        r
        for r in result.rows
        if (owner is None or r.target_institution_id == owner)
        and (source is None or r.source_institution_id == source)
    ]
    next_cursor = encode_cursor(result.rows[-1]) if len(result.rows) == limit else None
    return FhirPage(rows, next_cursor)
