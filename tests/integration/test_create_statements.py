"""What an up-referral create sends to the database: few statements, the rows after the
referral written together, the hold the last statement before COMMIT (no RELEASE between)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, select

from app.db.models import ReferralEvent, RoutingAttempt, TierRecord
from app.db.webhook_models import WebhookEvent
from app.services.webhook_events import public_type
from tests.factories import STROKE


class Statements:
    """The statements the app's engine runs while the block is open."""

    def __init__(self, app: Any) -> None:
        self.engine = app.state.database.engine.sync_engine
        self.seen: list[str] = []

    def _count(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.seen.append(" ".join(statement.split()))

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._count)


async def test_a_create_writes_its_rows_together_and_holds_last(api, app, backend) -> None:
    await api.set_beds("ZH-CH", {"03": (10, 0)})
    await api.create("demo clinic ZH-THC-TS")  # the key's lookup, cached after the first request
    with Statements(app) as sql:
        ref = (await api.create("demo clinic ZH-THC-TS")).json()
    assert ref["hold"]["specialty_code"] == "03"
    assert sql.seen[-1].startswith("UPDATE bed_capacity SET held="), sql.seen[-3:]
    assert not any(s.startswith("RELEASE SAVEPOINT sa_savepoint_1") for s in sql.seen)
    inserts = [s for s in sql.seen if "INSERT INTO referral_event" in s]
    if backend == "postgresql":
        # 22 for the write path, and one read of the family-doctor signing registry (the
        # patient names no signing in the body)
        assert len(sql.seen) <= 23, sql.seen
        assert sum("FROM family_signing" in s for s in sql.seen) == 1
        (together,) = inserts  # attempt, both events, tier, filing, webhook: one statement
        for table in ("routing_attempt", "tier_record", "webhook_event", "insurance_filing"):
            assert f"INSERT INTO {table} " in together, table
    else:
        assert len(inserts) == 1  # both events in one INSERT
    async with app.state.database.unit_of_work(read_only=True) as session:
        events = (
            await session.scalars(
                select(ReferralEvent.type)
                .where(ReferralEvent.referral_id == ref["id"])
                .order_by(ReferralEvent.at, ReferralEvent.id)
            )
        ).all()
        attempts = (
            await session.scalars(
                select(RoutingAttempt.attempt).where(RoutingAttempt.referral_id == ref["id"])
            )
        ).all()
        tiers = (
            await session.scalars(
                select(TierRecord.tier).where(TierRecord.referral_id == ref["id"])
            )
        ).all()
    assert events == ["created", "tier_decided"] and attempts == [1]
    assert tiers == [ref["tier"]["tier"]]


async def test_webhook_events_keep_their_order(api, app, client, auth) -> None:
    """A green-channel create queues two webhook events; their sequence follows the events."""
    await api.set_beds("HZ-FPH", {"03.03": (10, 0)})
    ref = (await api.create("demo clinic HZ-THC-XB", **STROKE)).json()
    events = await client.get(f"/v1/referrals/{ref['id']}/events", headers=auth("demo admin"))
    assert [e["type"] for e in events.json()] == ["created", "target_notified", "tier_decided"]
    async with app.state.database.unit_of_work(read_only=True) as session:
        queued = (
            await session.scalars(
                select(WebhookEvent.type)
                .where(WebhookEvent.referral_id == ref["id"])
                .order_by(WebhookEvent.seq)
            )
        ).all()
    assert queued == [public_type("created"), public_type("target_notified")]
