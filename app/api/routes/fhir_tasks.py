"""FHIR Task: read, the worklist search, and the transitions (PATCH or PUT of status,
``$accept``, ``$reject``), each through the /v1 lifecycle service with its ETag check."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response

from app.api.deps import ContextDep, PrincipalDep, ProtectorDep, SessionDep, SettingsDep
from app.api.presenters import referral_out
from app.api.routes.fhir_common import FHIR_RESPONSES, Count, Cursor, IfMatch, UserId, fhir_route
from app.api.routes.fhir_worklist import worklist_page
from app.domain.errors import NotFound
from app.fhir import task_in
from app.fhir.common import fhir_response, reference_id, referral_if_match, weak_etag
from app.fhir.referral_out import STATES_OF, full_task, task
from app.fhir.search import bad_parameter, searchset
from app.services import lifecycle, views
from app.services.transition_command import TransitionCommand
from app.services.views import ReferralView

router = APIRouter(prefix="/fhir", tags=["fhir"], responses=FHIR_RESPONSES)

TRANSITION_ERRORS = (403, 409, 412, 428)
SORTS = frozenset({"priority", "priority,authored-on"})


def _task_response(view: ReferralView) -> Response:
    out = referral_out(view)
    return fhir_response(full_task(out), headers={"ETag": weak_etag(out.version)})


async def _transition(ctx: Any, command: TransitionCommand) -> Response:
    return _task_response(await lifecycle.transition(ctx, command))


@fhir_route(router, "get", "/Task/{referral_id}", errors=(404,))
async def fhir_read_task(
    referral_id: str, session: SessionDep, protector: ProtectorDep, principal: PrincipalDep
) -> Response:
    """The referral's fulfilment: status, businessStatus (the exact state), owner (the
    current target), routing explanation and reimbursement tier as outputs."""
    return _task_response(await views.get_referral(session, protector, principal, referral_id))


@fhir_route(router, "get", "/Task/{referral_id}/_history/{version_id}", errors=(404,))
async def fhir_vread_task(
    referral_id: str,
    version_id: str,
    session: SessionDep,
    protector: ProtectorDep,
    principal: PrincipalDep,
) -> Response:
    """One version: the current one (earlier ones are the referral's events)."""
    view = await views.get_referral(session, protector, principal, referral_id)
    if version_id != str(view.row.version):
        raise NotFound("Only the current version of a referral is kept.")
    return _task_response(view)


@fhir_route(router, "get", "/Task")
async def fhir_search_task(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    owner: Annotated[str | None, Query(max_length=80)] = None,
    status: Annotated[str | None, Query(max_length=200)] = None,
    sort: Annotated[str | None, Query(alias="_sort", max_length=40)] = None,
    count: Count = 50,
    cursor: Cursor = None,
) -> Response:
    """The worklist (as GET /v1/referrals: the caller's, green channel first, then
    emergency, urgent, routine, then oldest), as Task summaries (read a Task for its
    routing and tier)."""
    if sort is not None and sort not in SORTS:
        raise bad_parameter("_sort", "priority (the worklist order)", "enum")
    states: tuple[str, ...] = ()
    if status is not None:
        for code in status.split(","):
            if code not in STATES_OF:
                raise bad_parameter("status", "Task status codes, comma-separated", "enum")
            states += tuple(s.value for s in STATES_OF[code])
    target = reference_id(owner, "Organization", ["query", "owner"]) if owner else None
    page = await worklist_page(
        session,
        settings,
        principal,
        count=count,
        cursor=cursor,
        owner=target,
        statuses=tuple(dict.fromkeys(states)),
    )
    return fhir_response(searchset(request, [task(r) for r in page.rows], page.next_cursor))


@fhir_route(router, "patch", "/Task/{referral_id}", errors=(404, *TRANSITION_ERRORS), body=True)
async def fhir_patch_task(
    referral_id: str,
    ctx: ContextDep,
    body: Annotated[dict[str, Any] | list[Any], Body()],
    if_match: IfMatch,
    user: UserId = None,
) -> Response:
    """Take a transition by changing `status` (JSON Patch, or a partial Task): accepted,
    rejected (statusReason coded in reject-reason), in-progress (businessStatus arrived,
    admitted, seen, in_follow_up; default arrived), completed, cancelled, failed (no-show).
    `If-Match: W/"<version>"` is required (428 without, 412 when stale)."""
    await views.visible(ctx.session, ctx.principal, referral_id)  # 404 before the body's rules
    changes = task_in.changes_of_patch(body)
    command = task_in.command_of(
        referral_id, changes, referral_if_match(referral_id, if_match), user
    )
    return await _transition(ctx, command)


@fhir_route(router, "put", "/Task/{referral_id}", errors=(404, *TRANSITION_ERRORS), body=True)
async def fhir_update_task(
    referral_id: str,
    ctx: ContextDep,
    body: Annotated[dict[str, Any], Body()],
    if_match: IfMatch,
    user: UserId = None,
) -> Response:
    """The Task sent back with a new `status` (as PATCH); only status, statusReason,
    businessStatus and note are read, the rest is the service's."""
    await views.visible(ctx.session, ctx.principal, referral_id)
    changes = task_in.changes_of_put(body, referral_id)
    command = task_in.command_of(
        referral_id, changes, referral_if_match(referral_id, if_match), user
    )
    return await _transition(ctx, command)


@fhir_route(
    router, "post", "/Task/{referral_id}/$accept", errors=(404, *TRANSITION_ERRORS), body=True
)
async def fhir_accept_task(
    referral_id: str,
    ctx: ContextDep,
    body: Annotated[dict[str, Any], Body()],
    if_match: IfMatch,
    user: UserId = None,
) -> Response:
    """Accept (current target), with Parameters ward, bed, appointment, note."""
    await views.visible(ctx.session, ctx.principal, referral_id)
    command = task_in.accept_command(
        referral_id, body, referral_if_match(referral_id, if_match), user
    )
    return await _transition(ctx, command)


@fhir_route(
    router, "post", "/Task/{referral_id}/$reject", errors=(404, *TRANSITION_ERRORS), body=True
)
async def fhir_reject_task(
    referral_id: str,
    ctx: ContextDep,
    body: Annotated[dict[str, Any], Body()],
    if_match: IfMatch,
    user: UserId = None,
) -> Response:
    """Reject (current target) with Parameters reason (a reject-reason code) and text:
    re-routed to the next candidate as on /v1."""
    await views.visible(ctx.session, ctx.principal, referral_id)
    command = task_in.reject_command(
        referral_id, body, referral_if_match(referral_id, if_match), user
    )
    return await _transition(ctx, command)
