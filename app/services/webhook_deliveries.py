"""The webhook delivery log of a subscription, and replays of what was dead-lettered."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db.base import utcnow
from app.db.repositories import webhooks as repo
from app.db.webhook_models import WebhookDelivery, WebhookEvent
from app.domain.errors import Conflict, NotFound
from app.services.auth import Principal
from app.services.webhooks import owned as _owned


@dataclass(frozen=True, slots=True)
class DeliveryView:
    delivery: WebhookDelivery
    event: WebhookEvent


async def list_deliveries(
    session: AsyncSession,
    principal: Principal,
    subscription_id: str,
    *,
    state: str | None,
    before: str | None,
    limit: int,
) -> list[DeliveryView]:
    await _owned(session, principal, subscription_id)
    rows = await repo.list_deliveries(
        session, subscription_id, state=state, before=before, limit=limit
    )
    return [DeliveryView(d, e) for d, e in rows]


async def replay_delivery(
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    subscription_id: str,
    delivery_id: str,
) -> DeliveryView:
    """Send a dead (or delivered) delivery again, same webhook-id, with a new give-up time."""
    await _owned(session, principal, subscription_id, lock=True)
    row = await repo.get_delivery(session, subscription_id, delivery_id)
    if row is None:
        raise NotFound("No delivery with this id for this subscription.")
    if row.state == repo.PENDING:
        raise Conflict("The delivery is still pending; it is retried on its own.")
    now = utcnow()
    row.state = repo.PENDING
    row.attempts = 0
    row.next_attempt_at = now
    row.give_up_at = now + timedelta(seconds=settings.webhook_give_up_after_seconds)
    row.delivered_at = row.dead_at = None
    await session.flush()
    event = (await repo.events_by_seq(session, [row.event_seq]))[row.event_seq]
    return DeliveryView(row, event)


async def replay_dead(
    session: AsyncSession, settings: Settings, principal: Principal, subscription_id: str
) -> int:
    """Every dead-lettered delivery of the subscription goes back to pending, in event order."""
    await _owned(session, principal, subscription_id, lock=True)
    now = utcnow()
    give_up_at = now + timedelta(seconds=settings.webhook_give_up_after_seconds)
    return await repo.replay_dead(session, subscription_id, now, give_up_at)
