"""The webhook relay: fans the outbox out to subscriptions and delivers, at least once.

One pass (``relay_once``) repeats three short steps until nothing is due:

1. **Fan out** outbox rows (``webhook_event``) not yet handled: one ``webhook_delivery`` per
   matching subscription (institution among the recipients, event type wanted, subscribed
   before the event happened).
2. **Claim** due deliveries in a short transaction: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL
   (several replicas never take the same row; on SQLite the write lock serialises relays),
   count the attempt and push ``next_attempt_at`` forward by a lease. A delivery is claimed
   only when no earlier event of the same referral is still pending for the same
   subscription, so each subscriber gets a referral's events in order.
3. **Send** outside any transaction (httpx, Standard Webhooks headers), then **record** the
   outcomes in another short transaction: 2xx → delivered; otherwise retry with exponential
   backoff, or dead-letter once the give-up time has passed.

A relay that dies after claiming loses nothing: its rows become due again when the lease
ends. An outcome is stored only while the row is still on the same attempt, so a relay that
lost its lease cannot overwrite a newer result.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from app import __version__
from app.config import Settings
from app.db.base import utcnow
from app.db.repositories import webhooks as repo
from app.db.session import Database
from app.db.webhook_models import WebhookDelivery
from app.services import outbound
from app.services.egress import Resolver
from app.services.egress import system_resolve as default_resolver
from app.services.outbound import after_failure, failure_class, lease
from app.services.webhooks import SecretBox, body_of, secret_key, signature

log = logging.getLogger("app.webhooks")

FAN_OUT_BATCH = 200
CLAIM_BATCH = 50
MAX_ROUNDS = 200  # per pass, so one pass always ends
USER_AGENT = f"referral-service-webhooks/{__version__}"


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery taken by this relay for one attempt."""

    delivery_id: str
    subscription_id: str
    attempt: int
    claimed_at: datetime
    give_up_at: datetime
    url: str
    webhook_id: str
    body: bytes
    # the current secret's key, then the previous one's during a rotation overlap; empty when
    # the secret cannot be opened (the data key changed): the attempt fails without sending
    keys: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Outcome:
    status_code: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def fan_out(database: Database, settings: Settings) -> int:
    """Turn outbox rows into deliveries; returns how many outbox rows were handled."""
    total = 0
    while True:
        now = utcnow()
        give_up_at = outbound.give_up_at(settings, now)
        async with database.unit_of_work() as session:
            events = await repo.claim_unfanned(session, FAN_OUT_BATCH)
            recipients = sorted({i for e in events for i in e.recipients})
            subscriptions = await repo.subscriptions_of(session, recipients)
            for event in events:
                for sub in subscriptions:
                    if (
                        sub.institution_id in event.recipients
                        and event.type in sub.event_types
                        and sub.created_at <= event.occurred_at
                    ):
                        repo.add_delivery(
                            session,
                            WebhookDelivery(
                                subscription_id=sub.id,
                                event_seq=event.seq,
                                referral_id=event.referral_id,
                                state=repo.PENDING,
                                attempts=0,
                                next_attempt_at=now,
                                give_up_at=give_up_at,
                                created_at=now,
                            ),
                        )
                event.fanned_out_at = now
        total += len(events)
        if len(events) < FAN_OUT_BATCH:
            return total


async def claim_batch(
    database: Database, settings: Settings, limit: int = CLAIM_BATCH
) -> list[Claimed]:
    """Claim due deliveries (committed lease); the caller sends them and records outcomes."""
    now = utcnow()
    box = SecretBox.of(settings)
    claimed: list[Claimed] = []
    async with database.unit_of_work() as session:
        rows = await repo.claim_due(session, now, limit)
        if not rows:
            return []
        events = await repo.events_by_seq(session, [r.event_seq for r in rows])
        subs = await repo.subscriptions_by_id(session, sorted({r.subscription_id for r in rows}))
        for row in rows:
            row.attempts += 1
            row.last_attempt_at = now
            row.next_attempt_at = now + lease(settings)
            sub = subs[row.subscription_id]
            sealed = [sub.secret_sealed]
            if (
                sub.previous_secret_sealed
                and sub.previous_secret_expires_at
                and sub.previous_secret_expires_at > now
            ):
                sealed.append(sub.previous_secret_sealed)
            event = events[row.event_seq]
            try:
                keys = tuple(secret_key(box.open(s, subscription_id=sub.id)) for s in sealed)
            except ValueError:  # sealed under another data key: this attempt fails, not the pass
                keys = ()
            claimed.append(
                Claimed(
                    delivery_id=row.id,
                    subscription_id=sub.id,
                    attempt=row.attempts,
                    claimed_at=now,
                    give_up_at=row.give_up_at,
                    url=sub.url,
                    webhook_id=event.id,
                    body=body_of(event.payload),
                    keys=keys,
                )
            )
    return claimed


async def send(client: httpx.AsyncClient, item: Claimed, settings: Settings) -> Outcome:
    """One POST with Standard Webhooks headers; never raises."""
    if not item.keys:
        return Outcome(None, "secret_unreadable")
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": item.webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(item.keys, item.webhook_id, timestamp, item.body),
    }
    try:
        async with asyncio.timeout(settings.webhook_timeout_seconds):
            async with client.stream("POST", item.url, content=item.body, headers=headers) as r:
                code = r.status_code
        return Outcome(code, None if 200 <= code < 300 else "http_status")
    except Exception as exc:  # any failure is a failed attempt, retried like the rest
        return Outcome(None, failure_class(exc))


async def record(
    database: Database, settings: Settings, results: Iterable[tuple[Claimed, Outcome]]
) -> int:
    """Store the outcomes; returns how many were stored (stale leases are ignored)."""
    now = utcnow()
    stored = 0
    async with database.unit_of_work() as session:
        for item, outcome in results:
            values: dict[str, Any] = {
                "last_status_code": outcome.status_code,
                "last_error": outcome.error,
            }
            if outcome.ok:
                values.update(state=repo.DELIVERED, delivered_at=now, next_attempt_at=None)
            else:
                values.update(after_failure(settings, now, item.attempt, item.give_up_at))
                if values.pop("dead", False):
                    values["state"] = repo.DEAD
            if await repo.record_attempt(
                session,
                item.delivery_id,
                attempt=item.attempt,
                claimed_at=item.claimed_at,
                values=values,
            ):
                stored += 1
            if not outcome.ok:
                log.info(
                    "webhook delivery %s (subscription %s) attempt %d failed: %s%s",
                    item.delivery_id,
                    item.subscription_id,
                    item.attempt,
                    outcome.error,
                    "; dead-lettered" if values.get("state") == repo.DEAD else "",
                )
    return stored


async def relay_once(
    database: Database, settings: Settings, resolver: Resolver = default_resolver
) -> int:
    """Fan out and deliver until nothing is due; returns the number of attempts made.

    Every connection goes through the egress policy (``app.services.egress``): the host is
    resolved and checked at connect time and the connection pinned to the checked address;
    redirects are never followed.
    """
    attempts = 0
    async with outbound.client(settings, resolver) as client:
        for _ in range(MAX_ROUNDS):
            await fan_out(database, settings)
            claimed = await claim_batch(database, settings)
            if not claimed:
                break
            outcomes = await asyncio.gather(*(send(client, c, settings) for c in claimed))
            await record(database, settings, zip(claimed, outcomes, strict=True))
            attempts += len(claimed)
    return attempts


async def run_forever(
    database: Database, settings: Settings, resolver: Resolver = default_resolver
) -> None:
    """Webhooks and insurance filings, one pass of each every interval."""
    from app.services import filing_relay

    async def one_pass() -> None:
        await relay_once(database, settings, resolver)
        await filing_relay.deliver_once(database, settings, resolver)

    await outbound.every(settings.webhook_relay_interval_seconds, one_pass, log, "webhook relay")
