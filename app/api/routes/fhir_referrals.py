"""FHIR referrals: create (ServiceRequest or a transaction Bundle), read and search the
ServiceRequest; each calls the /v1 use case (creates, views, worklist)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request, Response

from app.api.deps import ContextDep, PrincipalDep, ProtectorDep, SessionDep, SettingsDep
from app.api.presenters import referral_out
from app.api.routes.fhir_common import FHIR_RESPONSES, Count, Cursor, fhir_route
from app.api.routes.fhir_worklist import worklist_page
from app.domain.errors import InvalidInput, NotFound
from app.fhir import create_in
from app.fhir.common import base_url, fhir_response, reference_id, weak_etag
from app.fhir.referral_out import full_task, service_request
from app.fhir.search import bad_parameter, searchset
from app.services import creates, views
from app.services.context import Context
from app.services.idempotency import Created

router = APIRouter(prefix="/fhir", tags=["fhir"], responses=FHIR_RESPONSES)

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="The same key and body replay the first answer (kept 24 h). "
        "Either this or If-None-Exist.",
    ),
]
IfNoneExist = Annotated[
    str | None,
    Header(
        alias="If-None-Exist",
        max_length=200,
        description="identifier=<system>|<value>: the request's own identifier, used as its "
        "idempotency key (the same store as Idempotency-Key).",
    ),
]
Resource = Annotated[dict[str, Any], Body()]
IF_NONE_EXIST = re.compile(r"^identifier=([^\s|]{0,150}\|)?[^\s|]{1,64}$")


def _key(idempotency_key: str | None, if_none_exist: str | None) -> str:
    if idempotency_key is not None:
        return idempotency_key
    if if_none_exist is not None:
        if not IF_NONE_EXIST.fullmatch(if_none_exist.strip()):
            raise bad_parameter(
                "if-none-exist", "identifier=<system>|<value>", "value_error", where="header"
            )
        return "fhir-" + if_none_exist.strip()
    raise bad_parameter(
        "idempotency-key",
        "send Idempotency-Key or If-None-Exist: identifier=...",
        "missing",
        where="header",
    )


async def _create(
    request: Request, ctx: Context, translated: create_in.Translated, key: str
) -> Response:
    try:
        created = await creates.create_referral(ctx, translated.body, key)
    except InvalidInput as exc:
        raise translated.renamed(exc) from None
    return _created(request, created)


def _created(request: Request, created: Created) -> Response:
    out = referral_out(created.view)
    base = base_url(request)
    headers = {
        "Location": f"{base}/ServiceRequest/{out.id}/_history/{out.version}",
        "Content-Location": f"{base}/Task/{out.id}/_history/{out.version}",
        "ETag": weak_etag(out.version),
    }
    return fhir_response(full_task(out), created.status, headers)


@fhir_route(router, "post", "/ServiceRequest", status_code=201, errors=(403, 409, 503), body=True)
async def fhir_create_service_request(
    request: Request,
    body: Resource,
    ctx: ContextDep,
    idempotency_key: IdempotencyKey = None,
    if_none_exist: IfNoneExist = None,
) -> Response:
    """Send an up-referral as a ServiceRequest (Patient, Coverage and Observations contained):
    the /v1 create (routing, hold, tier, events, webhooks). 201 answers the Task routing
    produced; Location names the ServiceRequest."""
    translated = create_in.from_service_request(body, ctx.principal.institution_id)
    return await _create(request, ctx, translated, _key(idempotency_key, if_none_exist))


@fhir_route(router, "post", "", status_code=201, errors=(403, 409, 503), body=True)
async def fhir_transaction(
    request: Request,
    body: Resource,
    ctx: ContextDep,
    idempotency_key: IdempotencyKey = None,
    if_none_exist: IfNoneExist = None,
) -> Response:
    """A transaction Bundle of Patient, Condition (Coverage, Observations) and one
    ServiceRequest referencing them by fullUrl: one referral, created as
    `POST /fhir/ServiceRequest` creates it; 201 answers the Task."""
    translated = create_in.from_transaction(body, ctx.principal.institution_id)
    return await _create(request, ctx, translated, _key(idempotency_key, if_none_exist))


@fhir_route(router, "get", "/ServiceRequest/{referral_id}", errors=(404,))
async def fhir_read_service_request(
    referral_id: str, session: SessionDep, protector: ProtectorDep, principal: PrincipalDep
) -> Response:
    """The referral as a ServiceRequest: for those who may read it on /v1 (others: 404)."""
    view = await views.get_referral(session, protector, principal, referral_id)
    out = referral_out(view)
    return fhir_response(service_request(out), headers={"ETag": weak_etag(out.version)})


@fhir_route(router, "get", "/ServiceRequest/{referral_id}/_history/{version_id}", errors=(404,))
async def fhir_vread_service_request(
    referral_id: str,
    version_id: str,
    session: SessionDep,
    protector: ProtectorDep,
    principal: PrincipalDep,
) -> Response:
    """One version: the current one (earlier versions are not kept; their changes are the
    referral's events, GET /v1/referrals/{id}/events)."""
    view = await views.get_referral(session, protector, principal, referral_id)
    out = referral_out(view)
    if version_id != str(out.version):
        raise NotFound("Only the current version of a referral is kept.")
    return fhir_response(service_request(out), headers={"ETag": weak_etag(out.version)})


@fhir_route(router, "get", "/ServiceRequest")
async def fhir_search_service_request(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    protector: ProtectorDep,
    principal: PrincipalDep,
    requester: Annotated[str | None, Query(max_length=80)] = None,
    count: Count = 50,
    cursor: Cursor = None,
) -> Response:
    """The caller's referrals (as GET /v1/referrals sees them), by requester, most urgent
    first; each the ServiceRequest its reader may see on /v1 (insurers: none, they read
    Task summaries)."""
    source = reference_id(requester, "Organization", ["query", "requester"]) if requester else None
    page = await worklist_page(
        session, settings, principal, count=count, cursor=cursor, source=source
    )
    resources = []
    for row in page.rows:
        try:
            view = await views.get_referral(session, protector, principal, row.id)
        except NotFound:
            continue
        resources.append(service_request(referral_out(view)))
    return fhir_response(searchset(request, resources, page.next_cursor))
