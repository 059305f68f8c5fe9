"""Capacity census: pushed by the hospital's HIS, read by anyone in the registry."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import Field

from app.api import csv_export
from app.api.deps import PrincipalDep, SessionDep, SettingsDep
from app.api.errors import problem_responses
from app.api.schemas.capacity import CapacityItemOut, CapacityOut, CensusIn
from app.api.schemas.common import IsoDate, ResponseModel
from app.services import bed_board, capacity

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
            capacity.SlotFigure(
                s.specialty_code,
                s.day,
                s.total,
                s.occupied,
                sources=s.sources,
                reserved_signed=s.reserved_signed,
                release_at=s.release_at,
            )
            for s in body.slots
        ],
        settings=settings,
    )
    return _out(institution_id, items)


class BoardRowOut(CapacityItemOut):
    institution_id: str
    institution_code: str
    institution_name: str


class BedBoardOut(ResponseModel):
    consortium_id: str
    day: date = Field(description="The local day of the slots shown.")
    items: list[BoardRowOut]


@router.get(
    "/consortia/{consortium_id}/bed-board",
    response_model=BedBoardOut,
    responses={**problem_responses(403), 200: {"content": {"text/csv": {}}}},
)
async def get_bed_board(
    consortium_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    day: Annotated[IsoDate | None, Query(description="Slot day (default: today there).")] = None,
) -> Response:
    """Every member × specialty: beds (total, occupied, held, free, overflow, stale, as_of) and
    the day's outpatient slots, for the council (its consortium) and admins. `Accept: text/csv`
    gives the same rows as CSV (UTF-8 with BOM)."""
    cid, slot_day, rows = await bed_board.board(
        session, principal, consortium_id, day=day, stale_after=settings.census_stale_after
    )
    items = [
        BoardRowOut(
            institution_id=r.institution_id,
            institution_code=r.institution_code,
            institution_name=r.institution_name,
            **CapacityItemOut.model_validate(r.capacity, from_attributes=True).model_dump(),
        )
        for r in rows
    ]
    if csv_export.wants_csv(request):
        cells = [i.model_dump(mode="json") for i in items]
        table = csv_export.to_csv(list(BoardRowOut.model_fields), cells)
        return csv_export.csv_response(table, "bed-board.csv")
    body = BedBoardOut(consortium_id=cid, day=slot_day, items=items)
    return Response(body.model_dump_json(), media_type="application/json")
