"""Revision 0029 fills the follow-ups stored before it from their referrals, on both back ends.

The demo database is taken back to the revision before (the copies and the overdue indexes
go), down-referrals and follow-ups are written as that schema stores them, and the upgrade
gives every follow-up its referral's consortium, source, target and liveness; the overdue
lists then show the live referral's visits and nothing else. Downgrading again keeps the
follow-ups.
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.db import migrate as migrations
from app.db.repositories.episodes import overdue_statement
from app.db.session import Database

REVISION = "0029"
COLUMNS = (
    "id, number, consortium_id, direction, status, source_institution_id,"
    " target_institution_id, out_of_consortium, specialty_code, care_type, urgency,"
    " insurance_scheme, diagnosis_code, patient_sex, patient_birth_date, resident_id_hmac,"
    " sensitive, priority, version, created_at, updated_at, signed_institution_ids,"
    " declined_institution_ids, overflow"
)


async def _sql(url: str, *statements: tuple[str, dict[str, Any]]) -> list[Any]:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            out: list[Any] = []
            for sql, params in statements:
                result = await conn.execute(text(sql), params)
                out = list(result.all()) if result.returns_rows else []
            return out
    finally:
        await engine.dispose()


def _referral(ref: str, status: str, source: str, target: str | None) -> tuple[str, dict[str, Any]]:
    return (
        f"INSERT INTO referral ({COLUMNS}) VALUES (:id, :number, :cons, 'down', :status,"
        " :source, :target, false, '02', 'outpatient', 'routine', '390', 'I25.1', '1',"
        " '1950-01-01', 'h', 'sealed', 3, 1, '2026-01-05 08:00:00+00:00',"
        " '2026-01-05 08:00:00+00:00', '[]', '[]', false)",
        {"id": ref, "number": f"MIG-{ref}", "status": status, "source": source, "target": target},
    )


def _follow_up(fid: str, ref: str, due: date, done: date | None) -> tuple[str, dict[str, Any]]:
    return (
        "INSERT INTO follow_up (id, referral_id, kind, due_date, done_at, created_at)"
        " VALUES (:id, :ref, 'planned', :due, :done, '2026-01-05 08:00:00+00:00')",
        {"id": fid, "ref": ref, "due": due, "done": done},
    )


async def test_stored_follow_ups_are_filled_from_their_referrals(db_url: str) -> None:
    before = migrations.revision_before(REVISION)
    await asyncio.to_thread(migrations.downgrade, db_url, before)
    members = dict(
        await _sql(
            db_url,
            (
                "SELECT i.code, i.id FROM institution i JOIN consortium c"
                " ON c.id = i.consortium_id WHERE c.code = 'HUANGZHONG-1'",
                {},
            ),
        )
    )
    (cons,) = await _sql(db_url, ("SELECT id FROM consortium WHERE code = 'HUANGZHONG-1'", {}))
    hospital, clinic, other = members["HZ-FPH"], members["HZ-THC-SXZ"], members["HZ-THC-TJZ"]
    past = date.today() - timedelta(days=5)
    rows = [
        _referral("r-live", "in_follow_up", hospital, clinic),
        _referral("r-done", "completed", hospital, other),
        _referral("r-wait", "waitlisted", hospital, None),
        _follow_up("f-1", "r-live", past, None),
        _follow_up("f-2", "r-live", past - timedelta(days=1), past),  # done
        _follow_up("f-3", "r-done", past, None),  # missed, referral closed
        _follow_up("f-4", "r-wait", past, None),
    ]
    await _sql(db_url, *((sql, {**params, "cons": cons[0]}) for sql, params in rows))

    await asyncio.to_thread(migrations.upgrade, db_url)
    copied = await _sql(
        db_url,
        (
            "SELECT id, consortium_id, source_institution_id, target_institution_id, live"
            " FROM follow_up WHERE id LIKE 'f-%' ORDER BY id",
            {},
        ),
    )
    assert [(r[0], r[1], r[2], r[3], bool(r[4])) for r in copied] == [
        ("f-1", cons[0], hospital, clinic, True),
        ("f-2", cons[0], hospital, clinic, True),
        ("f-3", cons[0], hospital, other, False),
        ("f-4", cons[0], hospital, None, False),
    ]
    database = Database(db_url)
    try:
        async with database.unit_of_work(read_only=True) as session:
            for scope in (
                {"target_id": clinic},
                {"source_id": hospital},
                {"consortium_id": cons[0]},
                {},
            ):
                kw: dict[str, Any] = {
                    "target_id": None,
                    "source_id": None,
                    "consortium_id": None,
                    **scope,
                }
                stmt = overdue_statement(date.today(), limit=50, **kw)
                assert [f.id for f, _ in (await session.execute(stmt)).all()] == ["f-1"], scope
    finally:
        await database.dispose()

    await asyncio.to_thread(migrations.downgrade, db_url, before)
    kept = await _sql(db_url, ("SELECT id FROM follow_up WHERE id LIKE 'f-%' ORDER BY id", {}))
    assert [r[0] for r in kept] == ["f-1", "f-2", "f-3", "f-4"]
    await asyncio.to_thread(migrations.upgrade, db_url)
