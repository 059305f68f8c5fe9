"""Idempotent creates: the same key and body replay the first answer byte for byte.

The claim is committed in a transaction of its own before the work starts, so a retry that
arrives while the first request is still running sees it (409) instead of waiting for it.
The stored answer is written in the same transaction as the work itself.
"""

from __future__ import annotations

import hashlib
import json
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
    status: int
    headers: dict[str, str]
    body: bytes


def request_hash(body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def claim(
    database: Database,
    *,
    institution_id: str,
    key: str,
    body_hash: str,
    ttl: timedelta,
    in_flight_timeout: timedelta,
    on_claim: Callable[[AsyncSession], Awaitable[None]] | None = None,
) -> Replay | None:
    """None: the caller owns the key now and must do the work. Else the stored answer.

    ``on_claim`` runs in the claim's own short transaction once the key is ours (the create
    takes its referral number there)."""
    now = utcnow()
    async with database.unit_of_work() as session:
        if await repo.claim_idempotency(
            session,
            institution_id=institution_id,
            key=key,
            request_hash=body_hash,
            now=now,
            expires_at=now + ttl,
        ):
            if on_claim is not None:
                await on_claim(session)
            return None
        record = await repo.get_idempotency(session, institution_id, key)
        if record is None:  # expired and purged in between: claim again next time
            raise RequestInFlight("The request is being processed; retry shortly.")
        if record.request_hash != body_hash:
            raise KeyReused(
                "This Idempotency-Key was used with a different request body.",
                [{"loc": ["header", "Idempotency-Key"], "msg": "reused with another body"}],
            )
        if record.state == "done" and record.response_body is not None:
            return Replay(
                int(record.response_status or 200),
                dict(record.response_headers or {}),
                bytes(record.response_body),
            )
        if await repo.take_over_stale_claim(
            session, institution_id, key, now - in_flight_timeout, now
        ):
            if on_claim is not None:
                await on_claim(session)
            return None
    raise RequestInFlight("A request with this Idempotency-Key is still being processed.")


async def release(database: Database, *, institution_id: str, key: str) -> None:
    async with database.unit_of_work() as session:
        await repo.release_idempotency(session, institution_id, key)
