"""Idempotent creates: the same key and body replay the first answer (the same referral).

The claim is committed in a transaction of its own before the work starts, so a retry that
arrives while the first request is still running sees it (409) instead of waiting for it.
The stored answer is written in the same transaction as the work itself.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.base import utcnow
from app.db.repositories import referrals as repo
from app.db.session import Database
from app.domain.errors import Conflict, InvalidInput


class RequestInFlight(Conflict):
    kind = "request-in-flight"


class KeyReused(InvalidInput):
    kind = "idempotency-key-reused"


@dataclass(frozen=True, slots=True)
class Replay:
    """Where the first answer is: its status, headers and the referral it created."""

    status: int
    headers: dict[str, str]
    referral_id: str


@dataclass(frozen=True, slots=True)
class Claim:
    """The key is ours while ``token`` is the record's: see :func:`complete`."""

    scope_id: str
    key: str
    token: str


class ClaimTakenOver(Conflict):
    kind = "request-in-flight"


def request_hash(body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def claim(
    database: Database,
    *,
    scope_id: str,
    key: str,
    body_hash: str,
    ttl: timedelta,
    in_flight_timeout: timedelta,
    on_claim: Callable[[AsyncSession], Awaitable[None]] | None = None,
) -> Claim | Replay:
    """A :class:`Claim`: the caller owns the key now and must do the work; or the
    :class:`Replay` of the first answer.

    ``scope_id`` is the API key's id: every key has its own namespace. ``on_claim`` runs in the
    claim's own short transaction once the key is ours (the create takes its referral number
    there)."""
    now = utcnow()
    token = secrets.token_hex(16)
    async with database.unit_of_work() as session:
        if await repo.claim_idempotency(
            session,
            scope_id=scope_id,
            key=key,
            request_hash=body_hash,
            token=token,
            now=now,
            expires_at=now + ttl,
        ):
            if on_claim is not None:
                await on_claim(session)
            return Claim(scope_id, key, token)
        record = await repo.get_idempotency(session, scope_id, key)
        if record is None:  # expired and purged in between: claim again next time
            raise RequestInFlight("The request is being processed; retry shortly.")
        if record.request_hash != body_hash:
            raise KeyReused(
                "This Idempotency-Key was used with a different request body.",
                [{"loc": ["header", "Idempotency-Key"], "msg": "reused with another body"}],
            )
        if record.state == "done" and record.referral_id is not None:
            return Replay(
                int(record.response_status or 200),
                dict(record.response_headers or {}),
                record.referral_id,
            )
        if await repo.take_over_stale_claim(
            session, scope_id, key, now - in_flight_timeout, now, token
        ):
            if on_claim is not None:
                await on_claim(session)
            return Claim(scope_id, key, token)
    raise RequestInFlight("A request with this Idempotency-Key is still being processed.")


async def complete(
    session: AsyncSession, claim: Claim, *, status: int, headers: dict[str, str], referral_id: str
) -> None:
    """Record the answer in the transaction that writes the referral. Raises
    :class:`ClaimTakenOver` (and so rolls the referral back) when a retry took the claim over
    after it stalled: exactly one of the two commits a referral."""
    if not await repo.complete_idempotency(
        session,
        claim.scope_id,
        claim.key,
        claim.token,
        status=status,
        headers=headers,
        referral_id=referral_id,
    ):
        raise ClaimTakenOver(
            "This request took too long and a retry with the same Idempotency-Key took it "
            "over; fetch the referral the retry created."
        )


async def release(database: Database, claim: Claim) -> None:
    async with database.unit_of_work() as session:
        await repo.release_idempotency(session, claim.scope_id, claim.key, claim.token)
