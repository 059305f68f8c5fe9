"""Referral filings with the medical-insurance platform (转院备案) and the insurance gateway."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request, Response, status

from app.api.deps import PrincipalDep, ProtectorDep, SessionDep, SettingsDep
from app.api.errors import problem_responses
from app.api.schemas.filings import FilingOut, GatewayIn, GatewayOut
from app.db.filing_models import InsuranceGateway
from app.services import filings

router = APIRouter(
    prefix="/v1", tags=["insurance filing"], responses=problem_responses(401, 422, 429)
)

FILINGS = "/referrals/{referral_id}/insurance-filings"
ONE = FILINGS + "/{filing_id}"
GATEWAY = "/consortia/{consortium_id}/insurance-gateway"


def _gateway_out(consortium_id: str, row: InsuranceGateway | None) -> GatewayOut:
    return GatewayOut(
        consortium_id=consortium_id,
        configured=row is not None,
        url=row.url if row else None,
        has_token=bool(row and row.token_sealed),
        updated_at=row.updated_at if row else None,
    )


@router.get(FILINGS, response_model=list[FilingOut], responses=problem_responses(404))
async def list_insurance_filings(
    referral_id: str, session: SessionDep, principal: PrincipalDep
) -> list[FilingOut]:
    """The referral's filings, oldest first: state, filing number, attempts, last failure
    class (for whoever may read the referral)."""
    rows = await filings.list_filings(session, principal, referral_id)
    return [FilingOut.model_validate(r) for r in rows]


@router.get(
    ONE + "/payload",
    responses={
        200: {"content": {"application/json": {}}, "description": "The 2501 message."},
        **problem_responses(403, 404),
    },
    response_class=Response,
)
async def get_insurance_filing_payload(
    referral_id: str,
    filing_id: str,
    session: SessionDep,
    protector: ProtectorDep,
    principal: PrincipalDep,
) -> Response:
    """The 2501 转院备案 message as sent (or to enter by hand when the consortium has no
    gateway), as a JSON attachment: for the referring institution, its council, admins."""
    found = await filings.payload(session, protector, principal, referral_id, filing_id)
    name = f"{found.referral_number}-2501-{found.filing.generation}.json"
    body = json.dumps(found.message, ensure_ascii=False, indent=2).encode()
    return Response(
        content=body,
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.post(ONE + "/replay", response_model=FilingOut, responses=problem_responses(403, 404, 409))
async def replay_insurance_filing(
    referral_id: str,
    filing_id: str,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> FilingOut:
    """Send a dead filing (or cancellation) again, or a manual one once the consortium has a
    gateway: council and admin."""
    row = await filings.replay(session, settings, principal, referral_id, filing_id)
    return FilingOut.model_validate(row)


@router.get(GATEWAY, response_model=GatewayOut, responses=problem_responses(403, 404))
async def get_insurance_gateway(
    consortium_id: str, session: SessionDep, principal: PrincipalDep
) -> GatewayOut:
    """The consortium's insurance gateway (never its token): its council, admins."""
    row = await filings.get_gateway(session, principal, consortium_id)
    return _gateway_out(consortium_id, row)


@router.put(GATEWAY, response_model=GatewayOut, responses=problem_responses(403, 404))
async def put_insurance_gateway(
    consortium_id: str,
    body: GatewayIn,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    request: Request,
) -> GatewayOut:
    """Set the endpoint filings are delivered to (its council, admins); new filings go there,
    earlier manual ones on replay."""
    row = await filings.put_gateway(
        session,
        settings,
        principal,
        consortium_id,
        url=body.url,
        token=body.token,
        resolver=request.app.state.webhook_resolver,
    )
    return _gateway_out(consortium_id, row)


@router.delete(
    GATEWAY,
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(403, 404),
)
async def delete_insurance_gateway(
    consortium_id: str, session: SessionDep, principal: PrincipalDep
) -> Response:
    """No gateway from now on: new filings are manual."""
    await filings.delete_gateway(session, principal, consortium_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
