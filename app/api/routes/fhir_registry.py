"""FHIR registry reads: Organization, HealthcareService, Location (any key, as /v1)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import CURSOR_ID, PrincipalDep, SessionDep, SettingsDep, decode_cursor_text
from app.api.deps import encode_cursor as encode_id_cursor
from app.api.routes.fhir_common import FHIR_RESPONSES, Count, Cursor, fhir_route
from app.api.schemas.capacity import CapacityItemOut
from app.api.schemas.registry import InstitutionOut
from app.config import Settings
from app.domain.enums import Centre, InstitutionLevel, InstitutionType
from app.domain.errors import NotFound
from app.fhir import registry_out
from app.fhir.common import CENTRE, INSTITUTION_TYPE, LEVEL, SPECIALTY, fhir_response
from app.fhir.search import bad_parameter, searchset
from app.services import capacity, registry, remote_capacity

router = APIRouter(prefix="/fhir", tags=["fhir"], responses=FHIR_RESPONSES)

Active = Annotated[str | None, Query(max_length=5, description="true or false.")]
Organization = Annotated[
    str | None, Query(max_length=80, description="Organization/<id> (or the id).")
]


def _token(value: str | None, name: str, systems: dict[str, type[Any]]) -> tuple[str, Any] | None:
    """``system|code`` or ``code`` of one of ``systems``: (system, enum member)."""
    if value is None:
        return None
    system, _, code = value.rpartition("|")
    for known, enum in systems.items():
        if system in ("", known):
            try:
                return known, enum(code)
            except ValueError:
                continue
    raise bad_parameter(name, "a code of " + ", ".join(systems), "enum")


def _active(value: str | None) -> bool | None:
    if value is None:
        return None
    if value not in ("true", "false"):
        raise bad_parameter("active", "true or false", "bool_parsing")
    return value == "true"


def _after(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        value = decode_cursor_text(cursor)
    except RequestValidationError as exc:
        raise bad_parameter(
            "_cursor", "not a paging token of this service", "cursor_invalid"
        ) from exc
    if not CURSOR_ID.fullmatch(value):
        raise bad_parameter("_cursor", "not a paging token of this service", "cursor_invalid")
    return value


def _organization_id(value: str | None) -> str | None:
    if value is None:
        return None
    text = value.removeprefix("Organization/")
    if not CURSOR_ID.fullmatch(text):
        raise bad_parameter("organization", "Organization/<id>", "reference_invalid")
    return text


async def _institutions(
    session: AsyncSession,
    filters: registry.InstitutionFilter,
    organization: str | None,
    count: int,
    cursor: str | None,
    settings: Settings,
) -> tuple[list[InstitutionOut], str | None]:
    if organization is not None:
        try:
            return [InstitutionOut.of(await registry.get_institution(session, organization))], None
        except NotFound:  # a search that matches nothing is an empty Bundle
            return [], None
    limit = min(count, settings.page_size_max)
    rows = await registry.list_institutions(session, filters, after=_after(cursor), limit=limit)
    items = [InstitutionOut.of(r) for r in rows]
    return items, (encode_id_cursor(items[-1].id) if len(items) == limit else None)


@fhir_route(router, "get", "/Organization/{organization_id}")
async def fhir_read_organization(
    organization_id: str, session: SessionDep, _: PrincipalDep
) -> Response:
    """An institution: codes and national identifiers, level, type and grade."""
    row = await registry.get_institution(session, organization_id)
    return fhir_response(registry_out.organization(InstitutionOut.of(row)))


@fhir_route(router, "get", "/Organization")
async def fhir_search_organization(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _: PrincipalDep,
    name: Annotated[str | None, Query(max_length=100)] = None,
    type: Annotated[str | None, Query(max_length=200)] = None,
    active: Active = None,
    consortium: Annotated[str | None, Query(max_length=36)] = None,
    count: Count = 50,
    cursor: Cursor = None,
) -> Response:
    """Institutions (as /v1/institutions), paged."""
    kind = _token(type, "type", {LEVEL: InstitutionLevel, INSTITUTION_TYPE: InstitutionType})
    filters = registry.InstitutionFilter(
        consortium_id=consortium,
        level=kind[1] if kind and kind[0] == LEVEL else None,
        type=kind[1] if kind and kind[0] == INSTITUTION_TYPE else None,
        active=_active(active),
        q=name,
    )
    items, nxt = await _institutions(session, filters, None, count, cursor, settings)
    return fhir_response(searchset(request, [registry_out.organization(i) for i in items], nxt))


@fhir_route(router, "get", "/HealthcareService/{service_id}")
async def fhir_read_healthcare_service(
    service_id: str, session: SessionDep, _: PrincipalDep
) -> Response:
    """What an institution offers: its specialties, green-channel centres and remote services
    (consultation or reading per specialty, extension remote-service)."""
    row = await registry.get_institution(session, service_id)
    remote = await remote_capacity.services(session, row.id)
    return fhir_response(registry_out.healthcare_service(InstitutionOut.of(row), remote))


@fhir_route(router, "get", "/HealthcareService")
async def fhir_search_healthcare_service(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _: PrincipalDep,
    organization: Organization = None,
    specialty: Annotated[str | None, Query(max_length=100)] = None,
    characteristic: Annotated[str | None, Query(max_length=100)] = None,
    active: Active = None,
    count: Count = 50,
    cursor: Cursor = None,
) -> Response:
    """Services by specialty or green-channel centre, paged."""
    centre = _token(characteristic, "characteristic", {CENTRE: Centre})
    subject = None
    if specialty is not None:
        system, _bar, subject = specialty.rpartition("|")
        if system not in ("", SPECIALTY) or not 0 < len(subject) <= 8:
            raise bad_parameter("specialty", f"a code of {SPECIALTY}", "enum")
    filters = registry.InstitutionFilter(
        specialty=subject, centre=centre[1] if centre else None, active=_active(active)
    )
    items, nxt = await _institutions(
        session, filters, _organization_id(organization), count, cursor, settings
    )
    return fhir_response(
        searchset(request, [registry_out.healthcare_service(i) for i in items], nxt)
    )


@fhir_route(router, "get", "/Location/{location_id}")
async def fhir_read_location(
    location_id: str, session: SessionDep, settings: SettingsDep, _: PrincipalDep
) -> Response:
    """Where an institution is, with its beds per specialty when a census exists."""
    row = await registry.get_institution(session, location_id)
    items = await capacity.read(session, row.id, stale_after=settings.census_stale_after)
    beds = [CapacityItemOut.model_validate(i, from_attributes=True) for i in items]
    return fhir_response(registry_out.location(InstitutionOut.of(row), beds))


@fhir_route(router, "get", "/Location")
async def fhir_search_location(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _: PrincipalDep,
    organization: Organization = None,
    count: Count = 50,
    cursor: Cursor = None,
) -> Response:
    """Locations of institutions (beds: read each Location), paged."""
    items, nxt = await _institutions(
        session,
        registry.InstitutionFilter(),
        _organization_id(organization),
        count,
        cursor,
        settings,
    )
    return fhir_response(searchset(request, [registry_out.location(i) for i in items], nxt))
