"""The create use cases behind ``POST /v1/referrals``, ``POST …/escalate``,
``POST /v1/remote-requests`` and ``POST …/convert``: each runs its
write once per Idempotency-Key (``idempotency.create_once``) with the hold last
(``placement.hold_last``), in the request's unit of work."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from app.api.schemas.referrals import DownReferralCreate, EscalateIn, ReferralCreate
from app.api.schemas.remote import ConvertIn, RemoteRequestCreate
from app.domain.enums import Role
from app.domain.errors import Forbidden
from app.services import (
    down_referrals,
    idempotency,
    remote_answers,
    remote_requests,
    up_referrals,
)
from app.services.context import Context
from app.services.idempotency import Created
from app.services.numbering import Number
from app.services.placement import Written
from app.services.views import ReferralView, visible


async def create_referral(
    ctx: Context, body: ReferralCreate | DownReferralCreate, key: str
) -> Created:
    """An up-referral (clinics and hospitals) or a down-referral (hospitals)."""
    if isinstance(body, DownReferralCreate) and ctx.principal.role is not Role.HOSPITAL:
        raise Forbidden("Down-referrals are sent by hospitals.")  # before any key is claimed

    async def write(number: Number | None) -> Written[ReferralView]:
        if isinstance(body, DownReferralCreate):
            return await down_referrals.create(
                ctx.session, ctx.settings, ctx.protector, ctx.principal, body, number=number
            )
        return await up_referrals.create(
            ctx.session, ctx.settings, ctx.protector, ctx.principal, body, number=number
        )

    return await idempotency.create_once(ctx, key, body.model_dump(mode="json"), write)


async def _after_visible(
    ctx: Context,
    referral_id: str,
    body: Any,
    key: str,
    use_case: Callable[..., Awaitable[Written[ReferralView]]],
) -> Created:
    """A create that follows on from a referral the caller must see (``use_case`` takes the
    session, settings, protector, principal, that referral's id and ``body``): 404 before
    anything else, in a read-only transaction of its own (the request's write transaction must
    not start before the idempotency claim: SQLite's write lock), then written once per key."""
    async with ctx.database.unit_of_work(read_only=True) as check:
        await visible(check, ctx.principal, referral_id)

    async def write(number: Number | None) -> Written[ReferralView]:
        return await use_case(
            ctx.session,
            ctx.settings,
            ctx.protector,
            ctx.principal,
            referral_id,
            body,
            number=number,
        )

    return await idempotency.create_once(ctx, key, body.model_dump(mode="json"), write)


async def escalate(ctx: Context, referral_id: str, body: EscalateIn, key: str) -> Created:
    """A new up-referral in the down-referral's episode, pre-filled from it."""
    return await _after_visible(ctx, referral_id, body, key, down_referrals.escalate)


async def create_remote(ctx: Context, body: RemoteRequestCreate, key: str) -> Created:
    """A consult or remote read (clinics and hospitals): routed to a reader, its slot held."""

    async def write(number: Number | None) -> Written[ReferralView]:
        return await remote_requests.create(
            ctx.session, ctx.settings, ctx.protector, ctx.principal, body, number=number
        )

    return await idempotency.create_once(ctx, key, body.model_dump(mode="json"), write)


async def convert(ctx: Context, referral_id: str, body: ConvertIn, key: str) -> Created:
    """A reported consult or remote read becomes an up-referral in the same episode."""
    return await _after_visible(ctx, referral_id, body, key, remote_answers.convert)
