"""The expiry sweeper: runs in every service process, safe with several replicas.

Each pass claims due rows with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL), so two sweepers never
process the same referral; on SQLite the write lock serialises them.
"""

from __future__ import annotations

import asyncio
import logging
import time

from app.config import Settings
from app.db.session import Database
from app.services import lifecycle
from app.services.housekeeping import housekeeping_once

log = logging.getLogger("app.sweeper")
HOUSEKEEPING_EVERY_SECONDS = 3600  # the housekeeping deletes (app/services/housekeeping.py)


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
    next_housekeeping = time.monotonic()
    while True:
        try:
            expired = await sweep_once(database, settings)
            if expired:
                log.info("expired and re-routed %d referrals", expired)
            if time.monotonic() >= next_housekeeping:
                next_housekeeping = time.monotonic() + HOUSEKEEPING_EVERY_SECONDS
                purged = await housekeeping_once(database, settings)
                if purged.total:
                    log.info("housekeeping deleted %s", purged.summary())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("sweep failed: %s", type(exc).__name__)
        await asyncio.sleep(interval)
