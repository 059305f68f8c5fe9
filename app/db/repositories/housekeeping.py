"""SQL for housekeeping: rows whose purpose has passed, deleted in small batches."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import delete, exists, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import IdempotencyRecord, ReferralCounter
from app.db.repositories.webhooks import DELIVERED
from app.db.webhook_models import WebhookDelivery, WebhookEvent


async def _rowcount(session: AsyncSession, stmt: object) -> int:
    result = await session.execute(stmt)  # type: ignore[call-overload]
    return int(result.rowcount)


async def expired_idempotency_records(session: AsyncSession, now: datetime, limit: int) -> int:
    """Stored answers past their time to live (``expires_at``)."""
    pk = tuple_(IdempotencyRecord.scope_id, IdempotencyRecord.key)
    batch = (
        select(IdempotencyRecord.scope_id, IdempotencyRecord.key)
        .where(IdempotencyRecord.expires_at < now)
        .limit(limit)
    )
    return await _rowcount(
        session,
        delete(IdempotencyRecord)
        .where(pk.in_(batch), IdempotencyRecord.expires_at < now)
        .execution_options(synchronize_session=False),
    )


async def delivered_webhook_deliveries(session: AsyncSession, before: datetime, limit: int) -> int:
    """Deliveries delivered before ``before``; dead ones stay until replayed."""
    ids = (
        select(WebhookDelivery.id)
        .where(WebhookDelivery.state == DELIVERED, WebhookDelivery.delivered_at < before)
        .limit(limit)
        .scalar_subquery()
    )
    return await _rowcount(
        session,
        delete(WebhookDelivery)
        .where(WebhookDelivery.id.in_(ids))
        .execution_options(synchronize_session=False),
    )


async def finished_webhook_events(session: AsyncSession, before: datetime, limit: int) -> int:
    """Outbox rows fanned out before ``before`` with no delivery left (all delivered and
    deleted, or no subscriber)."""
    left = exists().where(WebhookDelivery.event_seq == WebhookEvent.seq)
    seqs = (
        select(WebhookEvent.seq)
        .where(
            WebhookEvent.fanned_out_at.is_not(None),
            WebhookEvent.occurred_at < before,
            ~left,
        )
        .limit(limit)
        .scalar_subquery()
    )
    return await _rowcount(
        session,
        delete(WebhookEvent)
        .where(WebhookEvent.seq.in_(seqs), ~left)
        .execution_options(synchronize_session=False),
    )


async def old_referral_counters(session: AsyncSession, before: date) -> int:
    """Day counters of past days (a new day starts its own row)."""
    return await _rowcount(
        session,
        delete(ReferralCounter)
        .where(ReferralCounter.day < before)
        .execution_options(synchronize_session=False),
    )
