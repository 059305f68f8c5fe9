"""The expiry sweeper: runs in every service process, safe with several replicas.

Each pass claims due rows with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL), so two sweepers never
process the same referral; on SQLite the write lock serialises them.
"""

from __future__ import annotations

import asyncio
import logging

from app.config import Settings
from app.db.session import Database
from app.services import lifecycle

log = logging.getLogger("app.sweeper")


async def sweep_once(database: Database, settings: Settings, batch: int = 50) -> int:
    """Expire and re-route every overdue referral; returns how many."""
    total = 0
    while True:
        async with database.unit_of_work() as session:
            done = await lifecycle.expire_due(session, settings, limit=batch)
        total += done
        if done < batch:
            return total


async def run_forever(database: Database, settings: Settings) -> None:
    interval = settings.sweep_interval_seconds
    while True:
        try:
            expired = await sweep_once(database, settings)
            if expired:
                log.info("expired and re-routed %d referrals", expired)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("sweep failed: %s", type(exc).__name__)
        await asyncio.sleep(interval)
