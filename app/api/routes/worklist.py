"""Worklists: the referrals a caller must see, most urgent first, keyset-paged."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from app.api.deps import CURSOR_ID, PrincipalDep, SessionDep, decode_cursor_text, invalid_cursor
from app.api.errors import problem_responses
from app.api.presenters import referral_links
from app.api.schemas.common import Instant, PageOf
from app.api.schemas.lifecycle import LastEventOut, ReferralSummary
from app.db.repositories.referrals import WorklistQuery
from app.domain.enums import Urgency
from app.domain.lifecycle import Status
from app.services import lifecycle, worklist

router = APIRouter(prefix="/v1", tags=["lifecycle"], responses=problem_responses(401, 422, 429))


def encode_cursor(row: Any) -> str:
    raw = f"{row.priority}|{row.created_at.isoformat()}|{row.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


PRIORITY_MAX = 2**31 - 1  # an INTEGER column


def decode_cursor(cursor: str) -> tuple[int, datetime, str]:
    parts = decode_cursor_text(cursor).split("|")
    if len(parts) != 3 or not CURSOR_ID.fullmatch(parts[2]) or not parts[0].isdigit():
        raise invalid_cursor()
    try:
        priority, created_at = int(parts[0]), datetime.fromisoformat(parts[1])
        if created_at.tzinfo is None or priority > PRIORITY_MAX:
            raise ValueError("not a cursor this service made")
        created_at = created_at.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise invalid_cursor() from exc
    return priority, created_at, parts[2]


@router.get(
    "/referrals",
    response_model=PageOf[ReferralSummary],
    responses={200: {"links": referral_links("$response.body#/items/0/id")}},
)
async def list_referrals(
    session: SessionDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size (1 to 200).")] = 50,
    box: Literal["all", "incoming", "outgoing"] = "all",
    direction: Literal["up", "down"] | None = None,
    kind: Annotated[
        Literal["transfer", "consult", "remote_read"] | None,
        Query(description="transfer, or a reader's worklist of consults or remote reads."),
    ] = None,
    status: Annotated[list[Status] | None, Query(max_length=len(Status))] = None,
    urgency: Urgency | None = None,
    specialty: Annotated[str | None, Query(max_length=8)] = None,
    created_from: Annotated[
        Instant | None, Query(description="Created at or after (with a UTC offset).")
    ] = None,
    created_to: Annotated[
        Instant | None, Query(description="Created before (with a UTC offset).")
    ] = None,
    counterpart: Annotated[str | None, Query(max_length=36)] = None,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the previous page.")
    ] = None,
) -> PageOf[ReferralSummary]:
    """Worklist: most urgent first (green channel, emergency, urgent, routine), then oldest.

    Hospitals and clinics see the referrals they sent or that were sent to them (`box`
    narrows it); the council sees its consortium; admins and insurers see all.
    """
    query = WorklistQuery(
        box=box,
        direction=direction,
        kind=kind,
        statuses=tuple(status or ()),
        urgency=urgency,
        specialty=specialty,
        created_from=created_from,
        created_to=created_to,
        counterpart=counterpart,
        after=decode_cursor(cursor) if cursor else None,
        limit=limit,
    )
    result = await worklist.list_referrals(session, principal, query)
    items = []
    for row in result.rows:
        last = result.last_events.get(row.id)
        items.append(
            ReferralSummary(
                id=row.id,
                number=row.number,
                kind=row.kind,
                direction=row.direction,
                status=row.status,
                urgency=row.urgency,
                priority=row.priority,
                care_type=row.care_type,
                specialty_code=row.specialty_code,
                consortium_id=row.consortium_id,
                source_institution_id=row.source_institution_id,
                target_institution_id=row.target_institution_id,
                out_of_consortium=row.out_of_consortium,
                respond_by=row.respond_by,
                created_at=row.created_at,
                updated_at=row.updated_at,
                outcome_at=row.outcome_at,
                report_due_at=row.report_due_at,
                reported_at=row.reported_at,
                last_event=(
                    LastEventOut(
                        type=last.type,
                        to_status=last.to_status,
                        at=last.at,
                        reason_code=last.reason_code,
                    )
                    if last
                    else None
                ),
                allowed_actions=lifecycle.allowed_actions(principal, row),
            )
        )
    next_cursor = encode_cursor(result.rows[-1]) if len(result.rows) == limit else None
    return PageOf[ReferralSummary](items=items, next_cursor=next_cursor)
