"""The placement owner (``app.services.placement``) without HTTP: a hold lost to another
request is routed around, and a create whose hold keeps failing ends in a clear 409.

The lost race is made real and portable: the candidates are read in one transaction, then
another transaction takes the last bed and commits, then the placement runs on what was read
(as a create does when another commits between its routing read and its hold)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, update

from app.db.base import utcnow
from app.db.models import BedCapacity
from app.db.session import Database
from app.domain.enums import CareType
from app.domain.errors import Conflict
from app.services import candidates, placement, routing_inputs
from app.services.candidates import RoutingInput

NEED = placement.Need(CareType.INPATIENT, None)
DATA = RoutingInput("03", CareType.INPATIENT, None, (), None)


async def _held(database: Database, ids: dict[str, str]) -> dict[str, int]:
    async with database.unit_of_work(read_only=True) as session:
        rows = (await session.execute(select(BedCapacity))).scalars().all()
    by_id = {v: k for k, v in ids.items()}
    return {
        by_id[b.institution_id]: b.held
        for b in rows
        if b.specialty_code == "03" and by_id[b.institution_id] in ("ZH-CH", "ZH-TCM")
    }


async def _read_candidates(app: Any, clinic_id: str) -> tuple[Any, candidates.Candidates]:
    database: Database = app.state.database
    async with database.unit_of_work(read_only=True) as session:
        source = await routing_inputs.load_source(session, clinic_id)
        return source, await candidates.candidates(session, source, DATA)


async def _take_last_bed(database: Database, institution_id: str) -> None:
    async with database.unit_of_work() as other:
        await other.execute(
            update(BedCapacity)
            .where(BedCapacity.institution_id == institution_id, BedCapacity.specialty_code == "03")
            .values(occupied=BedCapacity.total)
        )


async def test_a_lost_hold_is_routed_around(api, app) -> None:
    ids = await api.ids()
    await api.set_beds("ZH-CH", {"03": (4, 3)})  # the last bed
    await api.set_beds("ZH-TCM", {"03": (4, 0)})
    settings, database = app.state.settings, app.state.database
    source, read = await _read_candidates(app, ids["ZH-THC-TS"])
    now = utcnow()

    def decide(cands: candidates.Candidates) -> Any:
        return candidates.decide(settings, source, DATA, cands, now)

    assert decide(read).target.code == "ZH-CH"  # what was read: ZH-CH has the bed
    await _take_last_bed(database, ids["ZH-CH"])
    async with database.unit_of_work() as session:
        placed = await placement.place(session, read, decide, NEED)
    assert placed.held and placed.target.code == "ZH-TCM"
    assert placed.hold_code() == "03" and not placed.overflow
    assert await _held(database, ids) == {"ZH-CH": 0, "ZH-TCM": 1}


async def test_hold_last_writes_again_after_a_lost_race(api, app) -> None:
    """The first attempt's writes are undone with its SAVEPOINT; the second is routed afresh."""
    ids = await api.ids()
    await api.set_beds("ZH-CH", {"03": (4, 3)})
    await api.set_beds("ZH-TCM", {"03": (4, 0)})
    settings, database = app.state.settings, app.state.database
    source, stale = await _read_candidates(app, ids["ZH-THC-TS"])
    await _take_last_bed(database, ids["ZH-CH"])
    now = utcnow()
    attempts: list[str] = []

    def decide(cands: candidates.Candidates) -> Any:
        return candidates.decide(settings, source, DATA, cands, now)

    async with database.unit_of_work() as session:

        async def write() -> placement.Written[str]:
            # the first attempt routes on the stale read, the next on a fresh one
            cands = stale if not attempts else await candidates.candidates(session, source, DATA)
            placed, hold = placement.plan(session, cands, decide, NEED)
            assert placed.target is not None
            attempts.append(placed.target.code)
            # a write of the attempt: it must not survive a lost race
            await session.execute(
                update(BedCapacity)
                .where(
                    BedCapacity.institution_id == ids["ZH-TCM"], BedCapacity.specialty_code == "03"
                )
                .values(total=BedCapacity.total + 100)
            )
            return placement.Written(placed.target.code, hold)

        chosen = await placement.hold_last(session, write)
    assert attempts == ["ZH-CH", "ZH-TCM"] and chosen == "ZH-TCM"
    assert await _held(database, ids) == {"ZH-CH": 0, "ZH-TCM": 1}
    async with database.unit_of_work(read_only=True) as session:
        total = await session.scalar(
            select(BedCapacity.total).where(
                BedCapacity.institution_id == ids["ZH-TCM"], BedCapacity.specialty_code == "03"
            )
        )
    assert total == 4 + 100  # the lost attempt's write was rolled back with its SAVEPOINT


async def test_a_hold_that_keeps_failing_is_a_clear_409(app) -> None:
    database: Database = app.state.database
    calls = []

    async def never() -> bool:
        return False

    async def write() -> placement.Written[int]:
        calls.append(1)
        return placement.Written(len(calls), never)

    with pytest.raises(placement.CapacityKeptChanging) as raised:
        async with database.unit_of_work() as session:
            await placement.hold_last(session, write)
    assert len(calls) == placement.MAX_HOLD_ATTEMPTS
    assert isinstance(raised.value, Conflict) and "retry" in raised.value.detail  # 409
