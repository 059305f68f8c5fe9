"""Idempotent creates: the same key and body replay the first answer (the same referral).

This module is the one exception to "the request's unit of work owns the transaction":

- the **claim** is committed in a short transaction of its own before the work starts, so a
  retry that arrives while the first request is still running sees it (409) instead of
  waiting for it; the referral number is taken there too (``numbering.take_number``);
- the **completion** (the stored answer) is written in the create's own transaction, by
  :func:`create_once`, just before the hold, and so commits with the referral or not at all;
- if that transaction rolls back (the create failed, or its commit did), the unit of work
  gives the key back (``after_rollback``), so the client may retry with the same key.
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
from app.db.session import Database, after_rollback
from app.domain.enums import Role
from app.domain.errors import Conflict, Forbidden, InvalidInput
from app.services.context import Context
from app.services.numbering import Number, take_number
from app.services.placement import Written, hold_last
from app.services.views import ReferralView, get_referral


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


@dataclass(frozen=True, slots=True)
class Created:
    """A create's answer: the referral, and the status and headers of the first answer."""

    view: ReferralView
    status: int
    headers: dict[str, str]
    replayed: bool = False


async def create_once(
    ctx: Context,
    key: str,
    body_json: dict[str, Any],
    write: Callable[[Number | None], Awaitable[Written[ReferralView]]],
) -> Created:
    """Run a create once per key: a repeated request gets the referral the first one made.

    The record keeps no patient data: the status, ``Location``, ``ETag`` and the referral id;
    a replay renders the referral again for the caller (who may see less by now). Keys are
    scoped by the API key; the role is checked before the claim, so a refused create neither
    claims a key nor takes a number. ``write`` runs in ``placement.hold_last``: the stored
    answer, then the hold, are the last statements before COMMIT. The claim is fenced: if it
    stalled past ``REFERRAL_IDEMPOTENCY_IN_FLIGHT_SECONDS`` and a retry took it over, this
    request cannot mark it done and rolls back (exactly one referral)."""
    principal = ctx.principal
    if principal.institution_id is None or principal.role not in (Role.CLINIC, Role.HOSPITAL):
        raise Forbidden("Only a clinic or hospital key sends referrals.")
    institution_id = principal.institution_id
    taken: list[Number | None] = []

    async def take(claim_session: AsyncSession) -> None:
        taken.append(await take_number(claim_session, institution_id, utcnow()))

    claimed = await claim(
        ctx.database,
        scope_id=principal.key_id,
        key=key,
        body_hash=request_hash({"path": ctx.path, "body": body_json}),
        ttl=ctx.settings.idempotency_ttl,
        in_flight_timeout=ctx.settings.idempotency_in_flight,
        on_claim=take,
    )
    if isinstance(claimed, Replay):
        view = await get_referral(ctx.session, ctx.protector, principal, claimed.referral_id)
        return Created(view, claimed.status, claimed.headers, replayed=True)

    async def give_back() -> None:
        await release(ctx.database, claimed)

    after_rollback(ctx.session, give_back)
    number = taken[0] if taken else None
    headers: dict[str, str] = {}

    async def store_answer(view: ReferralView) -> None:
        headers.clear()
        headers.update(
            {
                "Location": f"{ctx.root_path}/v1/referrals/{view.row.id}",
                "ETag": view.etag,
                "Content-Type": "application/json",
            }
        )
        await complete(ctx.session, claimed, status=201, headers=headers, referral_id=view.row.id)

    async def attempt() -> Written[ReferralView]:
        return await write(number)

    view = await hold_last(ctx.session, attempt, before_hold=store_answer)
    return Created(view, 201, dict(headers))
