"""Benchmark: the monthly referral report over a generated year of 100,000 referrals.

Not a test. Creates a scratch PostgreSQL database (or uses SQLite with --sqlite), runs the
migrations, loads the demo consortia, writes a generated year of referrals for ZHENGHE
(tests/report_data.py), then times, in the same run:
  - baseline: one SELECT count(*) over the consortium's referrals of the year;
  - the report: GET /v1/reports/referrals for the year (ASGI, in process: the whole request,
    SQL aggregation and JSON included), grouped by institution and by month.
Prints the median of the runs and the ratio to the baseline.

    .venv/bin/python bench/report_bench.py                 # 100,000 referrals, PostgreSQL
    .venv/bin/python bench/report_bench.py --referrals 20000 --sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.db import migrate
from app.db.models import Consortium, Referral
from app.db.session import Database
from app.domain.enums import Role
from app.main import create_app
from app.services import auth, demo
from tests.report_data import generate
from tests.support import pg_database_url, pg_execute, pg_scalar, settings_for

YEAR = 2025


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--referrals", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument(
        "--keep",
        metavar="NAME",
        help="PostgreSQL only: use (and keep) the database NAME; generate only if it is empty",
    )
    args = parser.parse_args()

    name = args.keep or f"referral_bench_{uuid.uuid4().hex[:8]}"
    tmp = tempfile.mkdtemp()
    if args.sqlite:
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
    else:
        exists = await pg_scalar(
            args.pg_url, f"SELECT count(*) FROM pg_database WHERE datname = '{name}'"
        )
        if not exists:
            await pg_execute(args.pg_url, f'CREATE DATABASE "{name}"')
        url = pg_database_url(args.pg_url, name)
    try:
        await asyncio.to_thread(migrate.upgrade, url)
        settings = settings_for(url)
        database = Database(url)
        async with database.unit_of_work() as session:
            loaded = await session.scalar(select(func.count()).select_from(Consortium))
            if not loaded:
                await demo.load_demo(
                    session, pepper=settings.secret("api_key_pepper"), seed=b"bench"
                )
            consortium = (
                await session.execute(select(Consortium).where(Consortium.code == "ZHENGHE"))
            ).scalar_one()
            present = await session.scalar(select(func.count()).select_from(Referral))
            council = (
                await auth.issue_key(
                    session,
                    pepper=settings.secret("api_key_pepper"),
                    name="demo council ZHENGHE",
                    role=Role.COUNCIL,
                    institution_id=None,
                    consortium_id=consortium.id,
                    material=auth.derive_demo_key(b"bench", "demo council ZHENGHE"),
                )
            ).key
        if present:
            print(f"reusing {present} referrals in {name}")
        else:
            started = time.perf_counter()
            async with database.unit_of_work() as session:
                await generate(session, consortium.id, args.referrals, YEAR)
            print(
                f"generated {args.referrals} referrals in {time.perf_counter() - started:.1f} s "
                f"({'SQLite' if args.sqlite else 'PostgreSQL'})"
            )
        if not args.sqlite:
            async with database.engine.begin() as conn:  # committed: fresh planner statistics
                await conn.exec_driver_sql("ANALYZE")

        async def baseline() -> float:
            t = time.perf_counter()
            async with database.unit_of_work(read_only=True) as session:
                await session.execute(
                    select(func.count())
                    .select_from(Referral)
                    .where(Referral.consortium_id == consortium.id)
                )
            return time.perf_counter() - t

        app = create_app(settings)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

            async def report(group_by: str) -> float:
                t = time.perf_counter()
                r = await client.get(
                    "/v1/reports/referrals",
                    params={
                        "from": f"{YEAR}-01-01",
                        "to": f"{YEAR + 1}-01-01",
                        "group_by": group_by,
                    },
                    headers={"Authorization": f"Bearer {council}"},
                )
                assert r.status_code == 200, r.text
                return time.perf_counter() - t

            await report("institution")  # warm-up
            base = statistics.median([await baseline() for _ in range(args.runs)])
            by_member = statistics.median([await report("institution") for _ in range(args.runs)])
            by_month = statistics.median([await report("month") for _ in range(args.runs)])
        await app.state.database.dispose()
        await database.dispose()
        print(f"baseline count(*):              {base * 1000:8.1f} ms")
        print(
            f"report, per member and month:   {by_member * 1000:8.1f} ms "
            f"({by_member / base:.0f}x baseline)"
        )
        print(
            f"report, per month:              {by_month * 1000:8.1f} ms "
            f"({by_month / base:.0f}x baseline)"
        )
        print(
            f"target: under 1 s for a year of {args.referrals} referrals: "
            f"{'met' if by_member < 1 else 'NOT met'}"
        )
    finally:
        if not args.sqlite and not args.keep:
            await pg_execute(args.pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
