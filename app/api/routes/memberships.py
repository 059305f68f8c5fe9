"""Alliance membership: institutions that join a consortium other than their own."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from pydantic import Field

from app.api.deps import PrincipalDep, SessionDep
from app.api.errors import problem_responses
from app.api.schemas.common import ResponseModel, StrictModel
from app.services import memberships

router = APIRouter(prefix="/v1", tags=["registry"], responses=problem_responses(401, 422, 429))


class MembershipIn(StrictModel):
    lead: bool = Field(False, description="In this consortium's lead unit.")


class MembershipOut(ResponseModel):
    consortium_id: str
    institution_id: str
    lead: bool


def _out(view: memberships.MembershipView) -> MembershipOut:
    return MembershipOut(
        consortium_id=view.consortium_id, institution_id=view.institution_id, lead=view.lead
    )


@router.get(
    "/consortia/{consortium_id}/memberships",
    response_model=list[MembershipOut],
    responses=problem_responses(404),
)
async def list_memberships(
    consortium_id: str, session: SessionDep, _: PrincipalDep
) -> list[MembershipOut]:
    """The institutions that joined this consortium from their own (by code); its own members
    are listed by `GET /v1/institutions?consortium=…`, which includes these too."""
    return [_out(v) for v in await memberships.list_joined(session, consortium_id)]


@router.put(
    "/consortia/{consortium_id}/memberships/{institution_id}",
    response_model=MembershipOut,
    responses={201: {"model": MembershipOut}, **problem_responses(403, 404)},
)
async def join_consortium(
    consortium_id: str,
    institution_id: str,
    body: MembershipIn,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
) -> MembershipOut:
    """Admit an institution registered with another consortium (the consortium's council or
    an admin): 201 when admitted, 200 when it was a member (the lead flag as sent). Its
    referrals may then run here (named as `consortium_id`, or by the alliance's pathways and
    specialties), and it is routed to as a member."""
    view = await memberships.join(session, principal, consortium_id, institution_id, lead=body.lead)
    if view.created:
        response.status_code = status.HTTP_201_CREATED
    return _out(view)


@router.delete(
    "/consortia/{consortium_id}/memberships/{institution_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(403, 404),
)
async def leave_consortium(
    consortium_id: str, institution_id: str, session: SessionDep, principal: PrincipalDep
) -> Response:
    """The institution leaves this consortium; referrals already running here keep going."""
    await memberships.leave(session, principal, consortium_id, institution_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
