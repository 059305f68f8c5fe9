"""Two sweepers at once on one PostgreSQL: every overdue referral is expired exactly once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from app.db.models import Referral, ReferralEvent
from app.db.session import Database
from app.services.sweeper import sweep_once

REFERRALS = 30


async def test_two_sweepers_expire_each_referral_once(
    api, backend, client, auth, app, db_url
) -> None:
    if backend != "postgresql":
        pytest.skip("needs PostgreSQL (row locks with SKIP LOCKED); SQLite runs one sweeper")
    admin = auth("demo admin")
    ids = await api.ids()
    for code in ("ZH-CH", "ZH-TCM"):
        await api.set_beds(code, {"03": (100, 0)})
    made = []
    for i in range(REFERRALS):
        clinic = ("ZH-THC-TS", "ZH-THC-LY", "ZH-THC-DP")[i % 3]
        made.append((await api.create(f"demo clinic {clinic}")).json()["id"])
    database: Database = app.state.database
    async with database.unit_of_work() as session:
        await session.execute(
            update(Referral).values(respond_by=datetime.now(UTC) - timedelta(minutes=5))
        )
    settings = app.state.settings
    one, two = Database(db_url), Database(db_url)
    try:
        counts = await asyncio.gather(
            sweep_once(one, settings, batch=4), sweep_once(two, settings, batch=4)
        )
    finally:
        await one.dispose()
        await two.dispose()
    assert sum(counts) == REFERRALS, counts
    async with database.unit_of_work(read_only=True) as session:
        per_referral = dict(
            (
                await session.execute(
                    select(ReferralEvent.referral_id, func.count())
                    .where(ReferralEvent.type == "expired")
                    .group_by(ReferralEvent.referral_id)
                )
            ).all()
        )
        held = (
            await session.execute(
                select(Referral.target_institution_id, func.count())
                .where(Referral.status == "pending")
                .group_by(Referral.target_institution_id)
            )
        ).all()
    assert per_referral == dict.fromkeys(made, 1)
    # every referral expired at ZH-CH and moved to ZH-TCM; holds moved with them
    assert dict(held) == {ids["ZH-TCM"]: REFERRALS}
    cap = (await client.get(f"/v1/institutions/{ids['ZH-CH']}/capacity", headers=admin)).json()
    assert next(i for i in cap["items"] if i["specialty_code"] == "03")["held"] == 0
