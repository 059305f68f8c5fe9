"""Capacity census: pushed by the hospital's HIS, read by anyone in the registry."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import PrincipalDep, SessionDep, SettingsDep
from app.api.errors import problem_responses
from app.api.schemas.capacity import CapacityItemOut, CapacityOut, CensusIn
from app.services import capacity

router = APIRouter(prefix="/v1", tags=["capacity"], responses=problem_responses(401, 404, 422, 429))


def _out(institution_id: str, items: list[capacity.CapacityItem]) -> CapacityOut:
    return CapacityOut(
        institution_id=institution_id,
        items=[CapacityItemOut.model_validate(i, from_attributes=True) for i in items],
    )


@router.get("/institutions/{institution_id}/capacity", response_model=CapacityOut)
async def get_capacity(
    institution_id: str, session: SessionDep, settings: SettingsDep, _: PrincipalDep
) -> CapacityOut:
    """Beds per specialty and outpatient slots from today on, with holds and staleness."""
    items = await capacity.read(session, institution_id, stale_after=settings.census_stale_after)
    return _out(institution_id, items)


@router.put(
    "/institutions/{institution_id}/capacity",
    response_model=CapacityOut,
    responses=problem_responses(403, 409),
)
async def put_capacity(
    institution_id: str,
    body: CensusIn,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> CapacityOut:
    """Report a census (the hospital itself, its council or an admin).

    Holds of routed referrals are kept: when the census leaves no room for them, `free` is 0
    and `overflow` says by how many patients the institution is over capacity. Each change is
    kept in the census history. A census older than the stored one is refused (409).
    """
    items = await capacity.report_census(
        session,
        principal,
        institution_id,
        as_of=body.as_of,
        beds=[capacity.BedFigure(b.specialty_code, b.total, b.occupied) for b in body.beds],
        slots=[
            capacity.SlotFigure(s.specialty_code, s.day, s.total, s.occupied) for s in body.slots
        ],
        settings=settings,
    )
    return _out(institution_id, items)
