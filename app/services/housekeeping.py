"""Housekeeping: delete rows whose purpose has passed, so tables stop growing.

Run by the sweeper loop in every service process (safe with several replicas: each batch is a
short transaction and a row is deleted once) and by ``referral-service housekeeping``.

* idempotency records past ``REFERRAL_IDEMPOTENCY_TTL_HOURS`` (their key may be used again);
* webhook deliveries delivered more than ``REFERRAL_WEBHOOK_RETENTION_DAYS`` ago; dead-lettered
  deliveries stay until they are replayed and delivered;
* outbox rows (``webhook_event``) older than that with no delivery left;
* referral number counters of days before yesterday.

Referrals, their events, routing attempts, tiers and capacity history are records and are
never deleted here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db.base import utcnow
from app.db.repositories import housekeeping as repo
from app.db.session import Database

BATCH = 1000


@dataclass
class Purged:
    idempotency_records: int = 0
    webhook_deliveries: int = 0
    webhook_events: int = 0
    referral_counters: int = 0

    @property
    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))

    def summary(self) -> str:
        return ", ".join(
            f"{f.name.replace('_', ' ')} {getattr(self, f.name)}" for f in fields(self)
        )


async def _drain(
    database: Database, step: Callable[[AsyncSession], Awaitable[int]], batch: int
) -> int:
    """Run ``step`` (deleting at most ``batch`` rows) in short transactions until done."""
    total = 0
    while True:
        async with database.unit_of_work() as session:
            done = await step(session)
        total += done
        if done < batch:
            return total


async def housekeeping_once(database: Database, settings: Settings, batch: int = BATCH) -> Purged:
    """Delete everything due, batch by batch (one short transaction each)."""
    now = utcnow()
    before = now - timedelta(days=settings.webhook_retention_days)
    return Purged(
        idempotency_records=await _drain(
            database, lambda s: repo.expired_idempotency_records(s, now, batch), batch
        ),
        webhook_deliveries=await _drain(
            database, lambda s: repo.delivered_webhook_deliveries(s, before, batch), batch
        ),
        webhook_events=await _drain(
            database, lambda s: repo.finished_webhook_events(s, before, batch), batch
        ),
        referral_counters=await _drain(
            database,
            lambda s: repo.old_referral_counters(s, now.date() - timedelta(days=1)),
            batch,
        ),
    )
