"""The insurance filing relay: sends queued 2501 filings and 2502 cancellations to each
consortium's insurance gateway, at least once, with the webhook relay's lease, backoff,
give-up time and failure classes (``outbound``).

One pass (``deliver_once``) repeats until nothing is due: **claim** due filings in a short
transaction (``FOR UPDATE SKIP LOCKED``; a referral's new filing waits for the cancellation
of its old one), **send** each message outside any transaction (JSON, ``Authorization:
Bearer`` with the gateway's token when it has one, ``X-Request-ID`` the filing id with the
operation, the same on every retry), then **record**: HTTP 2xx with ``infcode`` 0 (and, for
2501, ``output.trt_dcla_detl_sn``) is success; anything else is retried with backoff and
dead-lettered after the give-up time. An outcome is stored only while the filing is still on
the attempt that was claimed. A filing withdrawn while its 2501 was in flight and that the
platform filed after all gets its number stored and its cancellation queued.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

import httpx

from app import __version__
from app.config import Settings
from app.db.base import utcnow
from app.db.repositories import filings as repo
from app.db.session import Database
from app.domain import insurance_filing as nhsa
from app.services import outbound
from app.services.egress import Resolver
from app.services.egress import system_resolve as default_resolver
from app.services.filings import protector_of, token_box
from app.services.webhooks import body_of

log = logging.getLogger("app.filings")

CLAIM_BATCH = 20
MAX_ROUNDS = 100
USER_AGENT = f"referral-service-filings/{__version__}"
ANSWER_MAX_BYTES = 65_536


@dataclass(frozen=True, slots=True)
class Claimed:
    filing_id: str
    operation: str
    attempt: int
    claimed_at: datetime
    url: str | None  # None: the consortium has no gateway (any more)
    token: str | None
    body: bytes


@dataclass(frozen=True, slots=True)
class Outcome:
    status_code: int | None
    answer: nhsa.Answer | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.answer is not None and self.answer.ok


async def claim_batch(
    database: Database, settings: Settings, limit: int = CLAIM_BATCH
) -> list[Claimed]:
    now = utcnow()
    protector = protector_of(settings)
    box = token_box(settings)
    claimed: list[Claimed] = []
    async with database.unit_of_work() as session:
        rows = await repo.claim_due(session, now, limit)
        gateways = await repo.gateways_by_consortium(
            session, sorted({r.consortium_id for r in rows})
        )
        for row in rows:
            row.attempts += 1
            row.last_attempt_at = now
            row.next_attempt_at = now + outbound.lease(settings)
            filed = protector.open(row.payload_sealed, associated=row.id)
            if row.operation == repo.CANCEL:
                assert row.filing_number is not None
                message = nhsa.cancel_message(filed, row.filing_number, now, row.generation)
            else:
                message = filed
            gateway = gateways.get(row.consortium_id)
            token = None
            if gateway is not None and gateway.token_sealed:
                try:
                    token = box.open(gateway.token_sealed, subscription_id=gateway.consortium_id)
                except ValueError:  # sealed under another data key: sent without, and refused
                    token = None
            claimed.append(
                Claimed(
                    filing_id=row.id,
                    operation=row.operation,
                    attempt=row.attempts,
                    claimed_at=now,
                    url=gateway.url if gateway is not None else None,
                    token=token,
                    body=body_of(message),
                )
            )
    return claimed


async def send(client: httpx.AsyncClient, item: Claimed, settings: Settings) -> Outcome:
    """One POST of the message; never raises."""
    if item.url is None:
        return Outcome(None, None, "no_gateway")
    headers = {
        "content-type": "application/json; charset=utf-8",
        "user-agent": USER_AGENT,
        "x-request-id": f"{item.filing_id}.{item.operation}",
    }
    if item.token:
        headers["authorization"] = f"Bearer {item.token}"
    try:
        async with asyncio.timeout(settings.webhook_timeout_seconds):
            async with client.stream("POST", item.url, content=item.body, headers=headers) as r:
                code = r.status_code
                body = b""
                async for chunk in r.aiter_bytes():
                    body += chunk
                    if len(body) > ANSWER_MAX_BYTES:
                        break
    except Exception as exc:  # any failure is a failed attempt, retried like the rest
        return Outcome(None, None, outbound.failure_class(exc))
    if not 200 <= code < 300:
        return Outcome(code, None, "http_status")
    answer = nhsa.read_answer(body, expect_number=item.operation == repo.FILE)
    return Outcome(code, answer, answer.failure)


async def record(
    database: Database, settings: Settings, results: list[tuple[Claimed, Outcome]]
) -> int:
    """Store the outcomes; returns how many were stored (stale leases are ignored)."""
    now = utcnow()
    stored = 0
    async with database.unit_of_work() as session:
        for item, outcome in results:
            row = await repo.get_for_update(session, item.filing_id)
            if (
                row is None
                or row.attempts != item.attempt
                or row.last_attempt_at != item.claimed_at
                or row.operation != item.operation
            ):
                continue  # the lease was lost, or the filing was replayed since
            stored += 1
            row.last_status_code = outcome.status_code
            row.last_infcode = outcome.answer.infcode if outcome.answer else None
            row.last_error = outcome.error
            if row.state == repo.SUPERSEDED:  # withdrawn while this 2501 was in flight
                row.next_attempt_at = None
                if outcome.ok and outcome.answer and outcome.answer.filing_number:
                    row.filing_number = outcome.answer.filing_number
                    row.filed_at = now
                    row.state, row.operation = repo.CANCEL_PENDING, repo.CANCEL
                    row.attempts = 0
                    row.next_attempt_at = now
                    row.give_up_at = outbound.give_up_at(settings, now)
                    row.cancel_requested_at = now
                continue
            if outcome.ok:
                row.next_attempt_at = None
                if row.operation == repo.FILE:
                    assert outcome.answer is not None
                    row.state, row.filing_number, row.filed_at = (
                        repo.FILED,
                        outcome.answer.filing_number,
                        now,
                    )
                else:
                    row.state, row.cancelled_at = repo.CANCELLED, now
                continue
            give_up = row.give_up_at or now
            values = outbound.after_failure(settings, now, item.attempt, give_up)
            row.next_attempt_at = values["next_attempt_at"]
            if values.get("dead"):
                row.state, row.dead_at = repo.DEAD, now
            log.info(
                "insurance filing %s (%s) attempt %d failed: %s%s",
                item.filing_id,
                item.operation,
                item.attempt,
                outcome.error,
                "; dead-lettered" if row.state == repo.DEAD else "",
            )
    return stored


async def deliver_once(
    database: Database, settings: Settings, resolver: Resolver = default_resolver
) -> int:
    """Send until nothing is due; returns the number of attempts made."""
    attempts = 0
    async with outbound.client(settings, resolver) as client:
        for _ in range(MAX_ROUNDS):
            claimed = await claim_batch(database, settings)
            if not claimed:
                break
            outcomes = await asyncio.gather(*(send(client, c, settings) for c in claimed))
            await record(database, settings, list(zip(claimed, outcomes, strict=True)))
            attempts += len(claimed)
    return attempts
