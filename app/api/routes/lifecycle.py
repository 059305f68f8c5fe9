"""Referral transitions and the audit trail."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Response

from app.api.deps import ContextDep, PrincipalDep, SessionDep
from app.api.errors import problem_responses
from app.api.presenters import ETAG_HEADER, referral_links, referral_out
from app.api.schemas.lifecycle import (
    AcceptIn,
    AmendIn,
    CompleteIn,
    EventOut,
    ForwardIn,
    NoteIn,
    PlaceIn,
    RejectIn,
    RequestInformationIn,
)
from app.api.schemas.referrals import ReferralOut
from app.api.schemas.remote import ReportIn
from app.domain.lifecycle import Action
from app.services import lifecycle
from app.services.transition_command import TransitionCommand

router = APIRouter(prefix="/v1", tags=["lifecycle"], responses=problem_responses(401, 422, 429))

IfMatch = Annotated[
    str, Header(max_length=100, description="The referral's ETag; without it: 428.")
]
UserId = Annotated[
    str | None,
    Header(alias="X-User-ID", max_length=100, description="The HIS user acting; kept in events."),
]


def _transition_route(action: Action, body_model: type[Any], summary: str) -> None:
    """One POST /v1/referrals/{id}/<action> endpoint; each has its own operation id."""
    name = f"{action.value.replace('-', '_')}_referral"
    required = action in (
        Action.REJECT,
        Action.REQUEST_INFORMATION,
        Action.AMEND,
        Action.FORWARD,
        Action.PLACE,
        Action.REPORT,
    )
    body_default: Any = Body() if required else Body(default=None)

    async def endpoint(
        referral_id: str,
        response: Response,
        ctx: ContextDep,
        if_match: IfMatch,
        user: UserId = None,
        body: Any = body_default,
    ) -> ReferralOut:
        command = TransitionCommand.of(referral_id, action, if_match, user, body)
        view = await lifecycle.transition(ctx, command)
        response.headers["ETag"] = view.etag
        return referral_out(view)

    endpoint.__annotations__["body"] = body_model if required else body_model | None
    endpoint.__name__ = name
    router.add_api_route(
        f"/referrals/{{referral_id}}/{action.value}",
        endpoint,
        methods=["POST"],
        name=name,
        summary=summary,
        response_model=ReferralOut,
        responses={
            **problem_responses(403, 404, 409, 412, 428),
            200: {
                "headers": ETAG_HEADER,
                "links": referral_links("$response.body#/id", "$response.header.ETag"),
            },
        },
    )


for _action, _model, _summary in (
    (Action.ACCEPT, AcceptIn, "Accept (current target): keeps the hold; ward, bed, appointment"),
    (Action.REJECT, RejectIn, "Reject (current target) with a reason; re-routed to the next one"),
    (Action.ARRIVE, NoteIn, "The patient arrived (current target)"),
    (Action.ADMIT, NoteIn, "Admitted (current target, inpatient): the held bed becomes occupied"),
    (Action.SEE, NoteIn, "Seen (current target, outpatient or examination)"),
    (Action.START_FOLLOW_UP, NoteIn, "Down-referral: follow-up started (receiving institution)"),
    (Action.COMPLETE, CompleteIn, "Completed (current target); an up-referral's outcome back"),
    (Action.CANCEL, NoteIn, "Cancel (source or its council): releases the hold"),
    (Action.NO_SHOW, NoteIn, "No-show after acceptance (current target): releases the hold"),
    (
        Action.REQUEST_INFORMATION,
        RequestInformationIn,
        "Ask the source for information (current target): the place stays held meanwhile",
    ),
    (Action.AMEND, AmendIn, "Answer the target's question (source): back to the same target"),
    (
        Action.FORWARD,
        ForwardIn,
        "Refer onward (current target): to a named member or partner, routed and held as usual",
    ),
    (
        Action.PLACE,
        PlaceIn,
        "Council-directed placement (its council, admins): at a named member, held or flagged",
    ),
    (
        Action.REPORT,
        ReportIn,
        "Answer a consult or remote read (current target): the report, sealed; the slot used",
    ),
):
    _transition_route(_action, _model, _summary)


@router.get(
    "/referrals/{referral_id}/events",
    response_model=list[EventOut],
    responses=problem_responses(404),
)
async def list_referral_events(
    referral_id: str, session: SessionDep, principal: PrincipalDep
) -> list[EventOut]:
    """The audit trail: every creation, routing attempt, transition, retry and expiry."""
    rows = await lifecycle.list_events(session, principal, referral_id)
    return [EventOut.model_validate(r) for r in rows]
