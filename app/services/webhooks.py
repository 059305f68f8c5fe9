"""Push notifications to HIS systems (webhooks through a transactional outbox)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Referral


def enqueue(
    session: AsyncSession,
    row: Referral,
    event_type: str,
    at: datetime,
    *,
    previous_target: str | None = None,
) -> None:
    """Queue the event for the institutions concerned (delivery comes with subscriptions)."""
    del session, row, event_type, at, previous_target
