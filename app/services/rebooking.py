"""Moving or cancelling an accepted referral's appointment (the referral stays accepted):
the current target moves it to another session of the day (``booked`` again, the old place
given back); the target or the source cancels it (``appointment_cancelled``, the place given
back; accepting again is not needed: a new ``reschedule`` books anew). Both need the referral's
ETag, as transitions do."""

from __future__ import annotations

from app.db.base import utcnow
from app.db.models import Referral
from app.db.repositories import referrals as repo
from app.domain.errors import (
    Conflict,
    Forbidden,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
)
from app.domain.lifecycle import Party, Status
from app.services import appointments, views
from app.services.access import can_see
from app.services.context import Context
from app.services.lifecycle import etag_of, parties_of
from app.services.waitlist import Actor


async def _locked(
    ctx: Context, referral_id: str, if_match: str | None, parties: set[Party]
) -> Referral:
    row = await repo.get_for_update(ctx.session, referral_id)
    if row is None or not can_see(ctx.principal, row):
        raise NotFound("No referral with this id.")
    if if_match is None:
        raise PreconditionRequired("Send If-Match with the referral's ETag.")
    if if_match.strip() != etag_of(row):
        raise PreconditionFailed(
            "The referral has changed since it was read; fetch it again.", etag=etag_of(row)
        )
    if not parties & parties_of(ctx.principal, row):
        raise Forbidden("Only the current target (or, to cancel, the source) may do this.")
    if row.status is not Status.ACCEPTED:
        raise Conflict(
            "Only an accepted referral's appointment is moved or cancelled.",
            current_status=str(row.status),
        )
    return row


async def reschedule(
    ctx: Context, referral_id: str, if_match: str | None, session_id: str | None, user: str | None
) -> views.ReferralView:
    row = await _locked(ctx, referral_id, if_match, {Party.TARGET})
    now = utcnow()
    before = await appointments.current(ctx.session, row)
    if before is not None and before.session_id == session_id:
        raise Conflict("The appointment is already in this session.")
    exclude = before.session_id if before is not None else None
    booked = await appointments.book(ctx.session, row, session_id, now, exclude=exclude)
    if booked is None:
        raise Conflict("The hospital keeps no sessions for this referral's day.")
    row.acceptance = {**(row.acceptance or {}), "appointment_at": booked.appointment_at.isoformat()}
    appointments.record(ctx.session, row, "booked", Actor(ctx.principal.institution_id, user), now)
    row.version += 1
    row.updated_at = now
    await ctx.session.flush()
    return await views.get_referral(ctx.session, ctx.protector, ctx.principal, row.id)


async def cancel(
    ctx: Context, referral_id: str, if_match: str | None, user: str | None
) -> views.ReferralView:
    row = await _locked(ctx, referral_id, if_match, {Party.TARGET, Party.SOURCE})
    now = utcnow()
    if not await appointments.release(ctx.session, row, "cancelled", now):
        raise Conflict("The referral has no booked appointment.")
    row.acceptance = {k: v for k, v in (row.acceptance or {}).items() if k != "appointment_at"}
    actor = Actor(ctx.principal.institution_id, user)
    appointments.record(ctx.session, row, "appointment_cancelled", actor, now)
    row.version += 1
    row.updated_at = now
    await ctx.session.flush()
    return await views.get_referral(ctx.session, ctx.protector, ctx.principal, row.id)
