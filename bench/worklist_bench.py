"""Benchmark: worklist pages with a million referrals stored (PostgreSQL).

Not a test. Creates a scratch database (or reuses one with --keep NAME), runs the migrations,
loads the demo consortia, writes --referrals referrals (default 1,000,000) for ZHENGHE straight
into the tables (tests/worklist_data.py: one INSERT ... SELECT per table, each referral with a
routing attempt and two events; the lead hospital the target of 60 %), and --down-referrals
down-referrals (default a fifth of that) with four follow-up rows each (three planned visits
and guidance; one clinic the target of 40 %, one of 0.5 %), ANALYZE, then times in the same
run, through the whole HTTP request in process (ASGI: auth, SQL, JSON):
  - baseline: GET /v1/institutions/{id} (authentication plus one primary-key read);
  - worklists: GET /v1/referrals for the busiest and a small hospital (incoming, all, pending,
    pending and accepted), a clinic (outgoing), the council (all, pending) and the admin,
    walking --pages pages by the cursor;
  - overdue follow-ups: GET /v1/follow-ups/overdue (50 rows; the list has no cursor, so the
    first page --pages times) for the busiest and the small clinic (visits they owe), the lead
    and a small hospital (their obligations), the council and the admin.
Prints p50 and p99 per list in ms and the ratio to the baseline's p50; the target is a p99
of at most 20 ms per page.

    .venv/bin/python bench/worklist_bench.py                      # about 2 minutes cold
    .venv/bin/python bench/worklist_bench.py --keep wl1m           # keep and reuse the data
    .venv/bin/python bench/worklist_bench.py --referrals 100000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import percentile

from app.db import migrate
from app.db.models import Consortium, FollowUp, Institution, Referral
from app.db.session import Database, Timeouts
from app.domain.enums import Role
from app.main import create_app
from app.services import auth, demo
from tests import worklist_data
from tests.support import pg_database_url, pg_execute, pg_scalar, settings_for

SEED = b"bench"


async def _key(session: Any, pepper: bytes, name: str, role: Role, **scope: str | None) -> str:
    issued = await auth.issue_key(
        session,
        pepper=pepper,
        name=name,
        role=role,
        institution_id=scope.get("institution_id"),
        consortium_id=scope.get("consortium_id"),
        material=auth.derive_demo_key(SEED, name),
    )
    return issued.key


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--referrals", type=int, default=1_000_000)
    parser.add_argument(
        "--down-referrals", type=int, help="down-referrals with follow-ups (default referrals / 5)"
    )
    parser.add_argument("--pages", type=int, default=100, help="pages per worklist")
    parser.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--keep", metavar="NAME", help="use (and keep) the database NAME")
    args = parser.parse_args()

    name = args.keep or f"referral_bench_{uuid.uuid4().hex[:8]}"
    exists = await pg_scalar(
        args.pg_url, f"SELECT count(*) FROM pg_database WHERE datname = '{name}'"
    )
    if not exists:
        await pg_execute(args.pg_url, f'CREATE DATABASE "{name}"')
    url = pg_database_url(args.pg_url, name)
    try:
        await asyncio.to_thread(migrate.upgrade, url)
        settings = settings_for(url)
        pepper = settings.secret("api_key_pepper")
        # bulk generation: no statement timeout (0 turns PostgreSQL's off)
        database = Database(url, timeouts=Timeouts(command_s=3600, statement_ms=0))
        async with database.unit_of_work() as session:
            if not await session.scalar(select(func.count()).select_from(Consortium)):
                await demo.load_demo(session, pepper=pepper, seed=SEED)
            present = await session.scalar(select(func.count()).select_from(Referral))
        if not present:
            started = time.perf_counter()
            async with database.unit_of_work() as session:
                await worklist_data.generate(session, "ZHENGHE", args.referrals)
            async with database.engine.begin() as conn:
                await conn.exec_driver_sql("ANALYZE")
            print(
                f"generated {args.referrals:,} referrals in {time.perf_counter() - started:.0f} s"
            )
        else:
            print(f"reusing {present:,} referrals in {name}")
        async with database.unit_of_work() as session:
            stored = await session.scalar(select(func.count()).select_from(FollowUp))
        if not stored:
            started = time.perf_counter()
            downs = args.down_referrals or args.referrals // 5
            async with database.unit_of_work() as session:
                gen = await worklist_data.members(session, "ZHENGHE")
                made = await worklist_data.generate_follow_ups(session, gen, downs)
            async with database.engine.begin() as conn:
                await conn.exec_driver_sql("ANALYZE")
            print(
                f"generated {downs:,} down-referrals, {made.follow_ups:,} follow-ups in "
                f"{time.perf_counter() - started:.0f} s"
            )
        else:
            print(f"reusing {stored:,} follow-ups")
        async with database.unit_of_work() as session:
            cons = (
                await session.execute(select(Consortium).where(Consortium.code == "ZHENGHE"))
            ).scalar_one()
            counts = (
                await session.execute(
                    text(
                        "SELECT target_institution_id, count(*) FROM referral "
                        "WHERE consortium_id = :c AND target_institution_id IS NOT NULL "
                        "AND direction = 'up' GROUP BY 1 ORDER BY 2 DESC"
                    ),
                    {"c": cons.id},
                )
            ).all()
            busiest, small = counts[0][0], counts[-1][0]
            clinic = (
                await session.execute(
                    text(
                        "SELECT source_institution_id FROM referral WHERE consortium_id = :c "
                        "AND direction = 'up' GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
                    ),
                    {"c": cons.id},
                )
            ).scalar_one()
            followed = (  # follow-ups stored per primary institution following the patient
                await session.execute(
                    text(
                        "SELECT r.target_institution_id, count(*) FROM follow_up f"
                        " JOIN referral r ON r.id = f.referral_id"
                        " WHERE r.consortium_id = :c AND r.target_institution_id IS NOT NULL"
                        " GROUP BY 1 ORDER BY 2 DESC"
                    ),
                    {"c": cons.id},
                )
            ).all()
            busy_clinic, small_clinic = followed[0][0], followed[-1][0]
            names = {
                i.id: i.code
                for i in (await session.execute(select(Institution))).scalars()
                if i.id in (busiest, small, clinic, busy_clinic, small_clinic)
            }
            tag = uuid.uuid4().hex[:6]
            keys = {
                "busiest": await _key(session, pepper, f"b {tag}", Role.HOSPITAL,
                                      institution_id=busiest, consortium_id=cons.id),
                "small": await _key(session, pepper, f"s {tag}", Role.HOSPITAL,
                                    institution_id=small, consortium_id=cons.id),
                "clinic": await _key(session, pepper, f"c {tag}", Role.CLINIC,
                                     institution_id=clinic, consortium_id=cons.id),
                "council": await _key(session, pepper, f"k {tag}", Role.COUNCIL,
                                      consortium_id=cons.id),
                "admin": await _key(session, pepper, f"a {tag}", Role.ADMIN),
                "busy clinic": await _key(session, pepper, f"bc {tag}", Role.CLINIC,
                                          institution_id=busy_clinic, consortium_id=cons.id),
                "small clinic": await _key(session, pepper, f"sc {tag}", Role.CLINIC,
                                           institution_id=small_clinic, consortium_id=cons.id),
            }  # fmt: skip
        per_target, per_clinic = dict(counts), dict(followed)
        print(
            f"busiest hospital {names[busiest]}: {per_target[busiest]:,} referrals; "
            f"small hospital {names[small]}: {per_target[small]:,}"
        )
        print(
            f"follow-ups stored: busiest clinic {names[busy_clinic]} "
            f"{per_clinic[busy_clinic]:,}, small clinic {names[small_clinic]} "
            f"{per_clinic[small_clinic]:,}, all {sum(per_clinic.values()):,}"
        )
        await database.dispose()

        app = create_app(settings_for(url))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

            async def timed(path: str, key: str, params: dict[str, Any]) -> tuple[float, Any]:
                t = time.perf_counter()
                r = await client.get(
                    path, params=params, headers={"Authorization": f"Bearer {keys[key]}"}
                )
                elapsed = time.perf_counter() - t
                assert r.status_code == 200, r.text
                return elapsed, r.json()

            async def walk(key: str, params: dict[str, Any]) -> list[float]:
                times: list[float] = []
                cursor = None
                for _ in range(args.pages):
                    query = {**params, "limit": 50, **({"cursor": cursor} if cursor else {})}
                    elapsed, body = await timed("/v1/referrals", key, query)
                    times.append(elapsed)
                    cursor = body["next_cursor"]
                    if cursor is None:
                        break
                return times

            for _ in range(20):  # warm-up: connections, caches, prepared statements
                await timed(f"/v1/institutions/{busiest}", "busiest", {})
                await timed("/v1/referrals", "busiest", {"box": "incoming"})
            baseline = sorted(
                [
                    (await timed(f"/v1/institutions/{busiest}", "busiest", {}))[0]
                    for _ in range(args.pages)
                ]
            )
            base_p50 = statistics.median(baseline)
            cases = {
                "busiest hospital, incoming": ("busiest", {"box": "incoming"}),
                "busiest hospital, all": ("busiest", {}),
                "busiest hospital, incoming pending": (
                    "busiest",
                    {"box": "incoming", "status": "pending"},
                ),
                "busiest hospital, incoming open": (
                    "busiest",
                    {"box": "incoming", "status": ["pending", "accepted"]},
                ),
                "small hospital, incoming": ("small", {"box": "incoming"}),
                "clinic, outgoing": ("clinic", {"box": "outgoing"}),
                "council": ("council", {}),
                "council, pending": ("council", {"status": "pending"}),
                "admin": ("admin", {}),
            }
            print(f"{'worklist':38} {'pages':>5} {'p50 ms':>8} {'p99 ms':>8} {'p50/base':>9}")
            print(
                f"{'baseline: GET /v1/institutions/{id}':38} {len(baseline):5} "
                f"{base_p50 * 1000:8.2f} {percentile(baseline, 99) * 1000:8.2f} {1:9.1f}"
            )
            worst = 0.0
            for label, (key, params) in cases.items():
                times = sorted(await walk(key, params))
                p50, p99 = statistics.median(times), percentile(times, 99)
                worst = max(worst, p99)
                print(
                    f"{label:38} {len(times):5} {p50 * 1000:8.2f} {p99 * 1000:8.2f} "
                    f"{p50 / base_p50:9.1f}"
                )
            overdue = {
                "overdue: busiest clinic, receiving": ("busy clinic", {}),
                "overdue: small clinic, receiving": ("small clinic", {}),
                "overdue: lead hospital, referring": ("busiest", {"role": "referring"}),
                "overdue: small hospital, referring": ("small", {"role": "referring"}),
                "overdue: council": ("council", {}),
                "overdue: admin": ("admin", {}),
            }
            for label, (key, params) in overdue.items():
                path, query = "/v1/follow-ups/overdue", {**params, "limit": 50}
                await timed(path, key, query)  # warm-up
                runs = [await timed(path, key, query) for _ in range(args.pages)]
                times = sorted(t for t, _ in runs)
                p50, p99 = statistics.median(times), percentile(times, 99)
                worst = max(worst, p99)
                print(
                    f"{label:38} {len(times):5} {p50 * 1000:8.2f} {p99 * 1000:8.2f} "
                    f"{p50 / base_p50:9.1f}  ({len(runs[0][1])} rows)"
                )
            print(
                f"target: p99 <= 20 ms per page: {'met' if worst <= 0.020 else 'NOT met'} "
                f"(worst p99 {worst * 1000:.1f} ms)"
            )
        await app.state.database.dispose()
    finally:
        if not args.keep:
            await pg_execute(args.pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
