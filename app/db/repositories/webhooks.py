"""SQL for webhook subscriptions, the outbox (webhook_event) and deliveries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.db.models import Institution
from app.db.webhook_models import WebhookDelivery, WebhookEvent, WebhookSubscription

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"


# --- subscriptions -----------------------------------------------------------------------


def add_subscription(session: AsyncSession, row: WebhookSubscription) -> None:
    session.add(row)


async def get_subscription(
    session: AsyncSession, subscription_id: str
) -> WebhookSubscription | None:
    return await session.get(WebhookSubscription, subscription_id)


async def get_subscription_for_update(
    session: AsyncSession, subscription_id: str
) -> WebhookSubscription | None:
    stmt = (
        select(WebhookSubscription)
        .where(WebhookSubscription.id == subscription_id)
        .with_for_update()
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def delete_subscription(session: AsyncSession, row: WebhookSubscription) -> None:
    await session.delete(row)


async def institution_consortium(
    session: AsyncSession, institution_id: str
) -> tuple[bool, str | None]:
    """(exists, consortium id) of an institution."""
    stmt = select(Institution.consortium_id).where(Institution.id == institution_id)
    found = (await session.execute(stmt)).first()
    return (found is not None, found[0] if found is not None else None)


async def list_subscriptions(
    session: AsyncSession,
    *,
    institution_id: str | None,
    consortium_id: str | None,
    after: str | None,
    limit: int,
) -> Sequence[WebhookSubscription]:
    stmt = select(WebhookSubscription)
    if institution_id is not None:
        stmt = stmt.where(WebhookSubscription.institution_id == institution_id)
    if consortium_id is not None:
        members = select(Institution.id).where(Institution.consortium_id == consortium_id)
        stmt = stmt.where(WebhookSubscription.institution_id.in_(members))
    if after is not None:
        stmt = stmt.where(WebhookSubscription.id > after)
    stmt = stmt.order_by(WebhookSubscription.id).limit(limit)
    return (await session.execute(stmt)).scalars().all()


async def subscriptions_of(
    session: AsyncSession, institution_ids: Sequence[str]
) -> Sequence[WebhookSubscription]:
    if not institution_ids:
        return []
    stmt = select(WebhookSubscription).where(
        WebhookSubscription.institution_id.in_(list(institution_ids))
    )
    return (await session.execute(stmt)).scalars().all()


async def subscriptions_by_id(
    session: AsyncSession, ids: Sequence[str]
) -> dict[str, WebhookSubscription]:
    if not ids:
        return {}
    stmt = select(WebhookSubscription).where(WebhookSubscription.id.in_(list(ids)))
    return {s.id: s for s in (await session.execute(stmt)).scalars()}


# --- the outbox --------------------------------------------------------------------------


def add_event(session: AsyncSession, row: WebhookEvent) -> None:
    session.add(row)


async def claim_unfanned(session: AsyncSession, limit: int) -> Sequence[WebhookEvent]:
    """Outbox rows not yet fanned out, oldest first, locked (other relays skip them)."""
    stmt = (
        select(WebhookEvent)
        .where(WebhookEvent.fanned_out_at.is_(None))
        .order_by(WebhookEvent.seq)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (await session.execute(stmt)).scalars().all()


async def events_by_seq(session: AsyncSession, seqs: Sequence[int]) -> dict[int, WebhookEvent]:
    if not seqs:
        return {}
    stmt = select(WebhookEvent).where(WebhookEvent.seq.in_(list(seqs)))
    return {e.seq: e for e in (await session.execute(stmt)).scalars()}


# --- deliveries --------------------------------------------------------------------------


def add_delivery(session: AsyncSession, row: WebhookDelivery) -> None:
    session.add(row)


async def claim_due(session: AsyncSession, now: datetime, limit: int) -> Sequence[WebhookDelivery]:
    """Due pending deliveries that are first in line for their subscription and referral.

    A delivery waits while an earlier event of the same referral is still pending for the
    same subscription, or not yet fanned out; rows another relay holds are skipped.
    """
    d = WebhookDelivery
    earlier = aliased(WebhookDelivery)
    earlier_pending = exists().where(
        earlier.subscription_id == d.subscription_id,
        earlier.referral_id == d.referral_id,
        earlier.event_seq < d.event_seq,
        earlier.state == PENDING,
    )
    unfanned = exists().where(
        WebhookEvent.referral_id == d.referral_id,
        WebhookEvent.seq < d.event_seq,
        WebhookEvent.fanned_out_at.is_(None),
    )
    stmt = (
        select(d)
        .where(d.state == PENDING, d.next_attempt_at <= now, ~earlier_pending, ~unfanned)
        .order_by(d.next_attempt_at, d.event_seq)
        .limit(limit)
        .with_for_update(skip_locked=True, of=d)
    )
    return (await session.execute(stmt)).scalars().all()


async def record_attempt(
    session: AsyncSession,
    delivery_id: str,
    *,
    attempt: int,
    claimed_at: datetime,
    values: dict[str, Any],
) -> bool:
    """Store an attempt's outcome unless the delivery moved on (lease lost, replayed, deleted).

    The attempt number and the claim time fence the update: a relay that lost its lease
    (another relay claimed the row since) changes nothing.
    """
    result = await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.attempts == attempt,
            WebhookDelivery.last_attempt_at == claimed_at,
            WebhookDelivery.state == PENDING,
        )
        .values(**values)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def get_delivery(
    session: AsyncSession, subscription_id: str, delivery_id: str
) -> WebhookDelivery | None:
    stmt = select(WebhookDelivery).where(
        WebhookDelivery.id == delivery_id, WebhookDelivery.subscription_id == subscription_id
    )
    return (await session.execute(stmt)).scalar_one_or_none()


def deliveries_statement(
    subscription_id: str, *, state: str | None, before: str | None, limit: int
) -> Select[WebhookDelivery, WebhookEvent]:
    """A page of a subscription's deliveries, newest first (ids are time-ordered): a backward
    range of ``ix_webhook_delivery_log`` (or ``_state_log`` for one state), each delivery's
    event read by its primary key."""
    stmt = (
        select(WebhookDelivery, WebhookEvent)
        .join(WebhookEvent, WebhookEvent.seq == WebhookDelivery.event_seq)
        .where(WebhookDelivery.subscription_id == subscription_id)
    )
    if state is not None:
        stmt = stmt.where(WebhookDelivery.state == state)
    if before is not None:
        stmt = stmt.where(WebhookDelivery.id < before)
    return stmt.order_by(WebhookDelivery.id.desc()).limit(limit)


async def list_deliveries(
    session: AsyncSession,
    subscription_id: str,
    *,
    state: str | None,
    before: str | None,
    limit: int,
) -> Sequence[tuple[WebhookDelivery, WebhookEvent]]:
    stmt = deliveries_statement(subscription_id, state=state, before=before, limit=limit)
    return [(d, e) for d, e in (await session.execute(stmt)).all()]


async def replay_dead(
    session: AsyncSession, subscription_id: str, now: datetime, give_up_at: datetime
) -> int:
    result = await session.execute(
        update(WebhookDelivery)
        .where(
            and_(WebhookDelivery.subscription_id == subscription_id, WebhookDelivery.state == DEAD)
        )
        .values(state=PENDING, attempts=0, next_attempt_at=now, give_up_at=give_up_at, dead_at=None)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
