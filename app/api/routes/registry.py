"""Consortium registry: specialties, consortia, institutions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.api.deps import PageDep, PrincipalDep, SessionDep, SettingsDep, encode_cursor
from app.api.errors import problem_responses
from app.api.schemas.common import PageOf
from app.api.schemas.registry import (
    CallerOut,
    ConsortiumIn,
    ConsortiumOut,
    ConsortiumPatch,
    InstitutionIn,
    InstitutionOut,
    InstitutionPatch,
    SpecialtyOut,
    institution_columns,
)
from app.domain.enums import Centre, InstitutionLevel, InstitutionType
from app.services import registry
from app.services.registry import ConsortiumView

router = APIRouter(prefix="/v1", tags=["registry"], responses=problem_responses(401, 422, 429))


def _consortium_out(view: ConsortiumView) -> ConsortiumOut:
    row = view.row
    return ConsortiumOut(
        id=row.id,
        code=row.code,
        name=row.name,
        name_en=row.name_en,
        kind=row.kind,
        close_knit=row.close_knit,
        region_code=row.region_code,
        referral_prefix=row.referral_prefix,
        lead_institution_id=view.lead_institution_id,
        lead_institution_ids=view.lead_institution_ids,
        upstream_partner_ids=view.upstream_partner_ids,
        joined_member_ids=view.joined_member_ids,
        alliance_centres=[Centre(c) for c in row.alliance_centres or ()],
        alliance_specialties=list(row.alliance_specialties or ()),
        notes=row.notes,
        time_zone=row.time_zone,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.get("/me", response_model=CallerOut, tags=["registry"])
async def get_caller(principal: PrincipalDep) -> CallerOut:
    """Who the key is: its role and its institution or consortium (what it may read follows),
    e.g. for the console to show a council only its own consortium."""
    return CallerOut(
        role=principal.role.value,
        institution_id=principal.institution_id,
        consortium_id=principal.consortium_id,
    )


@router.get("/specialties", response_model=list[SpecialtyOut], tags=["registry"])
async def list_specialties(session: SessionDep, _: PrincipalDep) -> list[SpecialtyOut]:
    """The national catalogue of medical subjects (诊疗科目) the registry uses."""
    return [SpecialtyOut.model_validate(s) for s in await registry.list_specialties(session)]


@router.get("/consortia", response_model=PageOf[ConsortiumOut])
async def list_consortia(
    session: SessionDep, _: PrincipalDep, page: PageDep
) -> PageOf[ConsortiumOut]:
    views = await registry.list_consortia(session, after=page.after, limit=page.limit)
    items = [_consortium_out(v) for v in views]
    cursor = encode_cursor(items[-1].id) if len(items) == page.limit else None
    return PageOf[ConsortiumOut](items=items, next_cursor=cursor)


@router.post(
    "/consortia",
    response_model=ConsortiumOut,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(403),
)
async def create_consortium(
    body: ConsortiumIn,
    session: SessionDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    response: Response,
) -> ConsortiumOut:
    """Create a consortium (admin). Name its lead afterwards with PATCH, once members exist."""
    data = body.model_dump()
    data["time_zone"] = data["time_zone"] or settings.default_time_zone
    view = await registry.create_consortium(session, principal, data)
    response.headers["Location"] = f"/v1/consortia/{view.row.id}"
    return _consortium_out(view)


@router.get(
    "/consortia/{consortium_id}", response_model=ConsortiumOut, responses=problem_responses(404)
)
async def get_consortium(consortium_id: str, session: SessionDep, _: PrincipalDep) -> ConsortiumOut:
    return _consortium_out(await registry.get_consortium(session, consortium_id))


@router.patch(
    "/consortia/{consortium_id}",
    response_model=ConsortiumOut,
    responses=problem_responses(403, 404),
)
async def update_consortium(
    consortium_id: str, body: ConsortiumPatch, session: SessionDep, principal: PrincipalDep
) -> ConsortiumOut:
    """Change a consortium (its council or admin): lead, upstream partners, names, time zone
    (numbers, days and months from then on follow the new zone)."""
    changes = body.model_dump(exclude_unset=True)
    return _consortium_out(
        await registry.update_consortium(session, principal, consortium_id, changes)
    )


@router.get("/institutions", response_model=PageOf[InstitutionOut])
async def list_institutions(
    session: SessionDep,
    _: PrincipalDep,
    page: PageDep,
    consortium: Annotated[
        str | None,
        Query(
            max_length=36,
            description="Members and upstream partners of this consortium (id or code: ZHENGHE).",
        ),
    ] = None,
    level: InstitutionLevel | None = None,
    type: InstitutionType | None = None,
    specialty: Annotated[str | None, Query(max_length=8)] = None,
    centre: Centre | None = None,
    active: bool | None = None,
    q: Annotated[str | None, Query(max_length=100, description="Part of a name or code.")] = None,
) -> PageOf[InstitutionOut]:
    filters = registry.InstitutionFilter(
        consortium_id=consortium,
        level=level,
        type=type,
        specialty=specialty,
        centre=centre,
        active=active,
        q=q,
    )
    rows = await registry.list_institutions(session, filters, after=page.after, limit=page.limit)
    items = [InstitutionOut.of(r) for r in rows]
    cursor = encode_cursor(items[-1].id) if len(items) == page.limit else None
    return PageOf[InstitutionOut](items=items, next_cursor=cursor)


@router.post(
    "/institutions",
    response_model=InstitutionOut,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(403),
)
async def create_institution(
    body: InstitutionIn, session: SessionDep, principal: PrincipalDep, response: Response
) -> InstitutionOut:
    """Register an institution (council of its consortium, or admin)."""
    row = await registry.create_institution(session, principal, institution_columns(body))
    response.headers["Location"] = f"/v1/institutions/{row.id}"
    return InstitutionOut.of(row)


@router.get(
    "/institutions/{institution_id}",
    response_model=InstitutionOut,
    responses=problem_responses(404),
)
async def get_institution(
    institution_id: str, session: SessionDep, _: PrincipalDep
) -> InstitutionOut:
    return InstitutionOut.of(await registry.get_institution(session, institution_id))


@router.patch(
    "/institutions/{institution_id}",
    response_model=InstitutionOut,
    responses=problem_responses(403, 404),
)
async def update_institution(
    institution_id: str, body: InstitutionPatch, session: SessionDep, principal: PrincipalDep
) -> InstitutionOut:
    """Change an institution (council of its consortium, or admin)."""
    row = await registry.update_institution(
        session, principal, institution_id, institution_columns(body)
    )
    return InstitutionOut.of(row)
