"""Worklist pages come from an index, not a scan of the referral table (PostgreSQL).

60,000 generated referrals (tests/worklist_data.py; the lead hospital the target of 60 %),
ANALYZE, then for every worklist shape the service runs (incoming, outgoing and both for a
hospital and a clinic, a single status and several, the council's consortium, admin and
insurer, a second page, a page deep in the routine referrals, filters): EXPLAIN shows no
sequential scan of ``referral``, an institution's page is read from an index that starts with
the institution, and the page is the one the plain query (no index-friendly rewrite) returns.

The overdue follow-up lists (generated down-referrals with four follow-up rows each) and a
subscription's webhook deliveries are checked the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from sqlalchemy import or_, select, text, tuple_
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import FollowUp, Referral
from app.db.repositories.episodes import overdue_statement
from app.db.repositories.referrals import WORKLIST_ORDER, WorklistQuery, worklist_statement
from app.db.repositories.webhooks import deliveries_statement
from app.db.session import Database, Timeouts
from tests import worklist_data

pytestmark = pytest.mark.postgres_only
ROWS = 60_000


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _plan(session: AsyncSession, stmt: Any) -> list[dict[str, Any]]:
    """The nodes of the statement's plan as PostgreSQL runs it with these values (ANALYZE:
    with the rows each node read and filtered out)."""
    sql = stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    plan = (await session.execute(text(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}"))).scalar_one()
    return list(_nodes(plan[0]["Plan"]))


def _filtered_out(nodes: list[dict[str, Any]], table: str) -> int:
    """Rows of ``table`` the plan read and threw away (index rows that were not the caller's)."""
    return sum(
        int(n.get("Rows Removed by Filter", 0)) * int(n.get("Actual Loops", 1))
        for n in nodes
        if n.get("Relation Name") == table
    )


def _seq_scans(nodes: list[dict[str, Any]], *tables: str) -> list[dict[str, Any]]:
    return [n for n in nodes if n["Node Type"] == "Seq Scan" and n.get("Relation Name") in tables]


def _indexes(nodes: list[dict[str, Any]]) -> set[str]:
    """Every index the plan reads (index scans and the bitmap scans under a heap scan)."""
    return {n["Index Name"] for n in nodes if "Index Name" in n}


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
            "council, open states": WorklistQuery(
                consortium_id=gen.consortium_id, statuses=("pending", "accepted", "arrived")
            ),
            "all, busiest hospital, open states": WorklistQuery(
                involving=gen.busiest_id, box="all", statuses=("pending", "accepted")
            ),
            "incoming, a status given twice": WorklistQuery(
                involving=gen.busiest_id, box="incoming", statuses=("pending", "pending")
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
                everything = list((await session.execute(_plain(replace(q, limit=ROWS)))).scalars())
                middle = await session.get(Referral, everything[len(everything) // 2])
                assert middle is not None, name
                deep = replace(q, after=(middle.priority, middle.created_at, middle.id))
                pages = ((name, q), (name + ", page 2", second), (name + ", deep page", deep))
                for label, query in pages:
                    nodes = await _plan(session, worklist_statement(query))
                    scans = _seq_scans(nodes, "referral")
                    assert not scans, f"{label}: sequential scan of referral\n{nodes}"
                    # at most ten rows read for each row of the page: an index that is not the
                    # shape's (ix_referral_all_worklist for the busiest hospital's pending box
                    # once the cursor was in the routine referrals) reads far more. An urgency
                    # is a filter on the shape's index (the generated priorities are not tied
                    # to the urgencies as the service's are): not bounded here.
                    wasted = _filtered_out(nodes, "referral")
                    if query.urgency is None:
                        assert wasted <= 10 * query.limit, (
                            f"{label}: {wasted} rows read and dropped"
                        )
                    got = [
                        r.id for r in (await session.execute(worklist_statement(query))).scalars()
                    ]
                    want = list((await session.execute(_plain(query))).scalars())
                    assert got == want, label
                    seen[label] = [n["Node Type"] for n in nodes]
        assert len(seen) == 3 * len(shapes)
    finally:
        await database.dispose()


def _overdue_plain(
    today: date, target: str | None, source: str | None, consortium: str | None
) -> Any:
    """The overdue list by its definition, from the referral's own columns: the answer."""
    stmt = (
        select(FollowUp.id)
        .join(Referral, Referral.id == FollowUp.referral_id)
        .where(
            FollowUp.kind == "planned",
            FollowUp.done_at.is_(None),
            FollowUp.due_date < today,
            Referral.status.in_(("accepted", "arrived", "in_follow_up")),
        )
        .order_by(FollowUp.due_date, FollowUp.id)
        .limit(50)
    )
    if target is not None:
        stmt = stmt.where(Referral.target_institution_id == target)
    if source is not None:
        stmt = stmt.where(Referral.source_institution_id == source)
    if consortium is not None:
        stmt = stmt.where(Referral.consortium_id == consortium)
    return stmt


async def test_overdue_follow_up_lists_use_an_index(db_url: str, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("query plans are checked on PostgreSQL (the production back end)")
    database = Database(db_url, timeouts=Timeouts(statement_ms=0))  # bulk generation
    try:
        async with database.unit_of_work() as session:
            gen = await worklist_data.members(session, "ZHENGHE")
            made = await worklist_data.generate_follow_ups(session, gen, ROWS // 4)
        async with database.engine.begin() as conn:
            await conn.exec_driver_sql("ANALYZE referral")
            await conn.exec_driver_sql("ANALYZE follow_up")
        # the closed referrals' missed visits (years old) come first in due order: a list that
        # is not read from an index of its own walks them all before its first row
        today = date.today()
        lists = {
            "busiest clinic, receiving": (made.busiest_clinic_id, None, None),
            "small clinic, receiving": (made.small_clinic_id, None, None),
            "lead hospital, referring": (None, gen.busiest_id, None),
            "small hospital, referring": (None, gen.small_id, None),
            "council": (None, None, gen.consortium_id),
            "admin": (None, None, None),
        }
        async with database.unit_of_work(read_only=True) as session:
            for label, (target, source, consortium) in lists.items():
                stmt = overdue_statement(
                    today, target_id=target, source_id=source, consortium_id=consortium, limit=50
                )
                nodes = await _plan(session, stmt)
                scans = _seq_scans(nodes, "follow_up", "referral")
                assert not scans, f"{label}: sequential scan\n{nodes}"
                used = {i for i in _indexes(nodes) if i.startswith("ix_follow_up")}
                assert len(used) == 1 and used.pop().startswith("ix_follow_up_overdue_"), label
                got = [f.id for f, _ in (await session.execute(stmt)).all()]
                plain = _overdue_plain(today, target, source, consortium)
                want = list((await session.execute(plain)).scalars())
                assert got == want, label
                if label != "small clinic, receiving":
                    assert len(got) == 50, label
    finally:
        await database.dispose()


async def test_webhook_delivery_pages_use_an_index(db_url: str, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("query plans are checked on PostgreSQL (the production back end)")
    database = Database(db_url, timeouts=Timeouts(statement_ms=0))  # bulk generation
    try:
        async with database.unit_of_work() as session:
            gen = await worklist_data.generate(session, "ZHENGHE", ROWS // 2)
            made = await worklist_data.generate_deliveries(session, gen, ROWS // 2)
        async with database.engine.begin() as conn:
            for table in ("webhook_subscription", "webhook_event", "webhook_delivery"):
                await conn.exec_driver_sql(f"ANALYZE {table}")
        async with database.unit_of_work(read_only=True) as session:
            for sub in (made.busy_subscription_id, made.small_subscription_id):
                for state in (None, "delivered", "pending", "dead"):
                    first = deliveries_statement(sub, state=state, before=None, limit=50)
                    page = [d.id for d, _ in (await session.execute(first)).all()]
                    assert page, (sub, state)
                    after = deliveries_statement(sub, state=state, before=page[-1], limit=50)
                    for label, stmt in (("page 1", first), ("page 2", after)):
                        nodes = await _plan(session, stmt)
                        scans = _seq_scans(nodes, "webhook_delivery", "webhook_event")
                        assert not scans, f"{sub} {state} {label}: sequential scan\n{nodes}"
                        assert not any(n["Node Type"] == "Sort" for n in nodes), nodes
    finally:
        await database.dispose()
