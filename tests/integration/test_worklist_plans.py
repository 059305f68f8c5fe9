"""Worklist pages come from an index, not a scan of the referral table (PostgreSQL).

60,000 generated referrals (tests/worklist_data.py; the lead hospital the target of 60 %),
ANALYZE, then for every worklist shape the service runs (incoming, outgoing and both for a
hospital and a clinic, a single status and several, the council's consortium, admin and
insurer, a second page, filters): EXPLAIN shows no sequential scan of ``referral`` and the page
is the one the plain query (no index-friendly rewrite) returns.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import or_, select, text
from sqlalchemy.dialects import postgresql

from app.db.models import Referral
from app.db.repositories.referrals import WORKLIST_ORDER, WorklistQuery, worklist_statement
from app.db.session import Database, Timeouts
from tests import worklist_data

pytestmark = pytest.mark.postgres_only
ROWS = 60_000


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _plain(q: WorklistQuery) -> Any:
    """The same page written without the rewrite: the expected answer."""
    stmt = select(Referral.id)
    if q.involving is not None:
        me = q.involving
        stmt = stmt.where(
            {
                "incoming": Referral.target_institution_id == me,
                "outgoing": Referral.source_institution_id == me,
                "all": or_(
                    Referral.target_institution_id == me, Referral.source_institution_id == me
                ),
            }[q.box]
        )
    if q.consortium_id is not None:
        stmt = stmt.where(Referral.consortium_id == q.consortium_id)
    if q.statuses:
        stmt = stmt.where(Referral.status.in_(q.statuses))
    if q.urgency:
        stmt = stmt.where(Referral.urgency == q.urgency)
    if q.after is not None:
        from sqlalchemy import tuple_

        stmt = stmt.where(tuple_(*WORKLIST_ORDER) > tuple_(*q.after))
    return stmt.order_by(*WORKLIST_ORDER).limit(q.limit)


async def test_worklist_pages_use_an_index(db_url: str, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("query plans are checked on PostgreSQL (the production back end)")
    database = Database(db_url, timeouts=Timeouts(statement_ms=0))  # bulk generation
    try:
        async with database.unit_of_work() as session:
            gen = await worklist_data.generate(session, "ZHENGHE", ROWS)
        async with database.engine.begin() as conn:
            await conn.exec_driver_sql("ANALYZE referral")
        clinic = gen.clinic_ids[0]
        shapes = {
            "incoming, busiest hospital": WorklistQuery(involving=gen.busiest_id, box="incoming"),
            "incoming, small hospital": WorklistQuery(involving=gen.small_id, box="incoming"),
            "incoming, pending": WorklistQuery(
                involving=gen.busiest_id, box="incoming", statuses=("pending",)
            ),
            "incoming, open states": WorklistQuery(
                involving=gen.busiest_id, box="incoming", statuses=("pending", "accepted")
            ),
            "incoming, emergency": WorklistQuery(
                involving=gen.busiest_id, box="incoming", urgency="emergency"
            ),
            "all, busiest hospital": WorklistQuery(involving=gen.busiest_id, box="all"),
            "outgoing, clinic": WorklistQuery(involving=clinic, box="outgoing"),
            "outgoing, clinic, pending": WorklistQuery(
                involving=clinic, box="outgoing", statuses=("pending",)
            ),
            "all, clinic": WorklistQuery(involving=clinic, box="all"),
            "council": WorklistQuery(consortium_id=gen.consortium_id),
            "council, pending": WorklistQuery(
                consortium_id=gen.consortium_id, statuses=("pending",)
            ),
            "admin and insurer": WorklistQuery(),
        }
        seen: dict[str, list[str]] = {}
        async with database.unit_of_work(read_only=True) as session:
            for name, q in shapes.items():
                page1 = list((await session.execute(worklist_statement(q))).scalars())
                assert len(page1) == q.limit, name
                last = page1[-1]
                second = replace(q, after=(last.priority, last.created_at, last.id))
                for label, query in ((name, q), (name + ", page 2", second)):
                    sql = worklist_statement(query).compile(
                        dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
                    )
                    plan = (
                        await session.execute(text(f"EXPLAIN (FORMAT JSON) {sql}"))
                    ).scalar_one()
                    nodes = list(_nodes(plan[0]["Plan"]))
                    scans = [
                        n
                        for n in nodes
                        if n["Node Type"] == "Seq Scan" and n.get("Relation Name") == "referral"
                    ]
                    assert not scans, f"{label}: sequential scan of referral\n{plan}"
                    got = [
                        r.id for r in (await session.execute(worklist_statement(query))).scalars()
                    ]
                    want = list((await session.execute(_plain(query))).scalars())
                    assert got == want, label
                    seen[label] = [n["Node Type"] for n in nodes]
        assert len(seen) == 2 * len(shapes)
    finally:
        await database.dispose()
