"""Differential reimbursement: policies, quotes, tiers on referrals, the insurer's listing."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from app.api import csv_export
from app.api.deps import PrincipalDep, SessionDep
from app.api.errors import problem_responses
from app.api.schemas.common import IsoDate
from app.api.schemas.tiers import (
    PolicyIn,
    PolicyOut,
    QuoteIn,
    QuoteOut,
    TierListingRow,
    TierOut,
)
from app.db.repositories import tiers as tier_repo
from app.domain.enums import Role
from app.domain.errors import Forbidden
from app.domain.national_codes import scheme_name
from app.services import follow_ups, registry, tier_quotes, tiers, zones

router = APIRouter(prefix="/v1", tags=["reimbursement"], responses=problem_responses(401, 422, 429))


@router.get("/reimbursement-policies", response_model=list[PolicyOut])
async def list_policies(
    session: SessionDep,
    principal: PrincipalDep,
    consortium: Annotated[str | None, Query(max_length=36)] = None,
) -> list[PolicyOut]:
    """Policy versions that apply to the consortium (its own and region-wide ones)."""
    rows = await tiers.list_policies(session, principal, consortium)
    return [PolicyOut.model_validate(r) for r in rows]


@router.post(
    "/reimbursement-policies",
    response_model=PolicyOut,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(403),
)
async def create_policy(
    body: PolicyIn, session: SessionDep, principal: PrincipalDep, response: Response
) -> PolicyOut:
    """A new policy version (council for its consortium, insurer, admin). Tiers already
    recorded on referrals keep the version they were decided under."""
    row = await tiers.create_policy(session, principal, body.consortium_id, body.policy)
    response.headers["Location"] = (
        f"/v1/reimbursement-policies?consortium={row.consortium_id or ''}"
    )
    return PolicyOut.model_validate(row)


@router.post("/reimbursement/quote", response_model=QuoteOut, responses=problem_responses(404))
async def quote_reimbursement(
    body: QuoteIn, session: SessionDep, principal: PrincipalDep
) -> QuoteOut:
    """What the patient would get at that institution with a referral and without one."""
    return QuoteOut.model_validate(await tier_quotes.quote(session, principal, body))


@router.get(
    "/referrals/{referral_id}/tiers",
    response_model=list[TierOut],
    responses=problem_responses(404),
)
async def list_referral_tiers(
    referral_id: str, session: SessionDep, principal: PrincipalDep
) -> list[TierOut]:
    """Every tier recorded for the referral (a new one whenever the target changed)."""
    await follow_ups.visible_referral(session, principal, referral_id)
    return [TierOut.model_validate(r) for r in await tier_repo.records_of(session, referral_id)]


CSV_COLUMNS = list(TierListingRow.model_fields)


@router.get(
    "/reports/tiers",
    response_model=list[TierListingRow],
    responses={**problem_responses(403), 200: {"content": {"text/csv": {}}}},
)
async def list_tiers(
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    from_: Annotated[IsoDate, Query(alias="from", description="First local day, inclusive.")],
    to: Annotated[IsoDate, Query(description="Last local day, exclusive.")],
    consortium: Annotated[str | None, Query(max_length=36)] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> Response:
    """Referrals with their tiers decided in the period (insurer, council, admin); JSON, or
    CSV with `Accept: text/csv` (UTF-8 with BOM)."""
    if principal.role is Role.COUNCIL:
        consortium = principal.consortium_id
    elif principal.role not in (Role.INSURER, Role.ADMIN):
        raise Forbidden("The tier listing is for the insurer, the council and admins.")
    consortium = await registry.consortium_ref(session, consortium)
    days = await zones.period(session, consortium, from_, to)
    pairs = await tier_repo.tier_listing(session, consortium, days.start_at, days.end_at, limit)
    rows = [
        TierListingRow(
            referral_id=r.id,
            referral_number=r.number,
            consortium_id=r.consortium_id,
            direction=r.direction,
            insurance_scheme=str(r.insurance_scheme),
            insurance_scheme_name=scheme_name(r.insurance_scheme),
            source_institution_id=r.source_institution_id,
            target_institution_id=t.target_institution_id,
            target_insurance_code=code,
            tier=t.tier,
            deductible=t.deductible,
            ratio=t.ratio,
            policy_code=t.policy_code,
            policy_version=t.policy_version,
            decided_at=t.decided_at,
        )
        for t, r, code in pairs
    ]
    if csv_export.wants_csv(request):
        return csv_export.csv_response(
            csv_export.to_csv(CSV_COLUMNS, (row.model_dump(mode="json") for row in rows))
        )
    return csv_export.json_list(rows)
