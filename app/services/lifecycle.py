"""Referral transitions, re-routing, waitlist retries and the expiry sweeper.

Every change happens in one transaction with its hold effect and its events.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db.base import utcnow
from app.db.models import Referral
from app.db.repositories import capacity as capacity_repo
from app.db.repositories import episodes as episode_repo
from app.db.repositories import referrals as repo
from app.domain import lifecycle
from app.domain.enums import Role
from app.domain.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
)
from app.domain.lifecycle import Action, HoldEffect, Party, Status
from app.services import (
    appointments,
    events,
    filings,
    information,
    notices,
    outcomes,
    remote_answers,
    views,
    waitlist,
    webhook_events,
)
from app.services.access import can_see
from app.services.auth import Principal
from app.services.context import Context
from app.services.transition_command import TransitionCommand
from app.services.waitlist import SYSTEM, Actor, FreedPlace

#: event types that are not the state entered (an amendment re-enters pending)
EVENT_OF = {
    Action.REQUEST_INFORMATION: "needs_information",
    Action.AMEND: "amended",
    Action.REPORT: "reported",  # the report is clinical text: sealed, never in the event
}


class TransitionConflict(Conflict):
    kind = "transition-not-allowed"


def parties_of(principal: Principal, row: Referral) -> frozenset[Party]:
    """Which sides of this referral the caller speaks for."""
    parties: set[Party] = set()
    hands_on = principal.role in (Role.CLINIC, Role.HOSPITAL)
    if hands_on and principal.institution_id == row.target_institution_id:
        parties.add(Party.TARGET)
    if hands_on and principal.institution_id == row.source_institution_id:
        parties.add(Party.SOURCE)
    if principal.role is Role.COUNCIL and principal.consortium_id == row.consortium_id:
        parties.add(Party.SOURCE)  # the council may cancel on the clinic's behalf
        parties.add(Party.COUNCIL)  # and place the patient where it decides
    if principal.role is Role.ADMIN:
        parties.add(Party.COUNCIL)
    return frozenset(parties)


def allowed_actions(principal: Principal, row: Referral) -> list[str]:
    return lifecycle.actions(
        Status(row.status),
        row.care_type,
        parties_of(principal, row),
        direction=row.direction,
        kind=row.kind,
    )


def etag_of(row: Referral) -> str:
    return f'"{row.id}.{row.version}"'


def _event(
    session: AsyncSession,
    row: Referral,
    type_: str,
    from_status: str | None,
    actor: Actor,
    now: datetime,
    *,
    reason: str | None = None,
    reason_code: str | None = None,
    previous_target: str | None = None,
) -> None:
    events.record(
        session,
        row,
        type_,
        from_status,
        at=now,
        actor_institution_id=actor.institution_id,
        actor_user=actor.user,
        reason=reason,
        reason_code=reason_code,
        previous_target=previous_target,
    )


async def _apply_hold(
    session: AsyncSession, row: Referral, effect: HoldEffect
) -> FreedPlace | None:
    """Returns the place given back, if any (so waitlisted referrals may use it)."""
    if effect is HoldEffect.KEEP or not row.hold_kind or not row.target_institution_id:
        return None
    assert row.hold_specialty_code is not None
    args = (row.hold_kind, row.target_institution_id, row.hold_specialty_code, row.hold_day)
    if effect is HoldEffect.RELEASE:
        await capacity_repo.release_hold(session, *args, row.hold_pool)
    else:
        await capacity_repo.occupy_hold(session, *args, row.hold_pool)
    row.hold_kind = row.hold_specialty_code = row.hold_pool = None
    row.hold_day = None
    if effect is not HoldEffect.RELEASE:
        return None
    return FreedPlace(args[1], args[0], args[2], args[3])


def _decline_current_target(row: Referral) -> None:
    """The rejecting or silent hospital is not asked again for this referral."""
    if row.target_institution_id is not None:
        row.declined_institution_ids = [
            *(row.declined_institution_ids or []),
            row.target_institution_id,
        ]


async def transition(ctx: Context, command: TransitionCommand) -> views.ReferralView:
    """Take ``command.action`` on the referral: the lifecycle table decides the new state,
    the hold effect and whether it is routed on; its events and waitlist retries follow."""
    session, settings, principal = ctx.session, ctx.settings, ctx.principal
    if_match, referral_id = command.if_match, command.referral_id
    action = lifecycle.effective(command.action, command.reason_code)
    row = await repo.get_for_update(session, referral_id)
    if row is None or not can_see(principal, row):
        raise NotFound("No referral with this id.")
    if if_match is None:
        raise PreconditionRequired("Send If-Match with the referral's ETag.")
    if if_match.strip() != etag_of(row):
        raise PreconditionFailed(
            "The referral has changed since it was read; fetch it again.", etag=etag_of(row)
        )
    status = Status(row.status)
    try:
        step = lifecycle.find(status, action, row.care_type, row.direction, row.kind)
    except lifecycle.TransitionNotAllowed as exc:
        raise TransitionConflict(
            f"'{action}' is not allowed while the referral is {status}.",
            current_status=str(status),
            allowed_actions=exc.allowed,
        ) from exc
    if step.party not in parties_of(principal, row):
        who = "the current target" if step.party is Party.TARGET else "the source or its council"
        raise Forbidden(f"Only {who} may {action} this referral.")
    if action is Action.REJECT and command.reason_code == "other" and not command.reason_text:
        raise InvalidInput(
            "A rejection with reason 'other' needs a reason_text.",
            [{"loc": ["body", "reason_text"], "msg": "required when reason_code is other"}],
        )
    now = utcnow()
    actor = Actor(principal.institution_id, command.actor_user)
    released = await _apply_hold(session, row, step.hold)
    booked = await appointments.on_transition(  # booked, released or attended with the place
        session, row, action, step.hold, command.session_id, now
    )
    previous = row.status
    row.status = step.to
    if action is Action.ACCEPT:
        row.accepted_at = now
        row.acceptance = command.acceptance
        row.respond_by = None
        await notices.set_target(session, row, command.coordinator)
        if booked is not None:  # the appointment's time is the one the patient is told
            row.acceptance = {
                **(row.acceptance or {}),
                "appointment_at": booked.appointment_at.isoformat(),
            }
    elif action is Action.REQUEST_INFORMATION:
        question = command.question or command.reason_text or "Incomplete information."
        information.ask(ctx.protector, settings, row, question, now)
    elif action is Action.AMEND:
        information.amend(
            ctx.protector,
            settings,
            row,
            answer=command.answer or "",
            clinical_summary=command.clinical_summary,
            tests_done=command.tests_done,
            now=now,
        )
    elif action is Action.REPORT:
        assert command.report is not None  # the endpoint's body is required
        remote_answers.record_report(
            session, ctx.protector, row, command.report, principal.institution_id or "", now
        )
    if command.outcome is not None:
        await outcomes.record(session, ctx.protector, settings, row, command.outcome, now)
    if lifecycle.closes(step, command.reason_code):
        row.closed_at = now
        row.respond_by = None
        if step.to is not Status.COMPLETED and row.kind == "transfer":  # ended without care:
            # its insurance filing is withdrawn (a remote request has none)
            await filings.withdraw(session, settings, row, now)
    if action is not Action.PLACE:  # a council placement's event is its council_placed one
        _event(
            session,
            row,
            EVENT_OF.get(action, str(step.to)),
            previous,
            actor,
            now,
            # a question or an answer is clinical text: sealed with the referral, not in events
            reason=None if action in EVENT_OF else command.reason_text or command.note,
            reason_code=command.reason_code,
        )
    if booked is not None:
        _event(session, row, "booked", row.status, actor, now, reason=None)
    if action is Action.ACCEPT:  # the patient should be told: a notification, not a state
        webhook_events.enqueue(session, row, "patient_notice", now)
    if command.outcome is not None:  # the referrer is told, with its own webhook event
        _event(session, row, "outcome_sent", row.status, actor, now)
    if action is Action.PLACE:  # at the member the council names: held, or flagged when full
        row.council_directed = True
        await waitlist.place_again(
            session,
            settings,
            row,
            actor,
            now,
            event_type="council_placed",
            cause=command.reason_code,
            named=command.forward_to,
            directed=True,
        )
    if lifecycle.reroutes(step, command.reason_code):
        _decline_current_target(row)
        await waitlist.place_again(
            session,
            settings,
            row,
            actor,
            now,
            event_type="rerouted",
            cause=command.reason_code or str(action),
            named=command.forward_to if action is Action.FORWARD else None,
        )
    else:  # (a re-route keeps the follow-ups in place_again)
        await episode_repo.sync_follow_ups(session, row)
    row.version += 1
    row.updated_at = now
    await session.flush()
    if released is not None:
        await waitlist.retry_waitlist(
            session, settings, row.consortium_id, now, freed=[released], exclude=[row.id]
        )
    return await views.get_referral(session, ctx.protector, principal, row.id, just_declined=True)


async def expire_due(session: AsyncSession, settings: Settings, limit: int = 50) -> int:
    """Expire pending referrals past their answer time and re-route them (exactly once each)."""
    now = utcnow()
    rows = await repo.claim_expired(session, now, limit)
    freed: dict[str, list[FreedPlace]] = {}
    for row in rows:
        step = lifecycle.find(
            Status(row.status), Action.EXPIRE, row.care_type, row.direction, row.kind
        )
        released = await _apply_hold(session, row, step.hold)
        if released is not None:
            freed.setdefault(row.consortium_id, []).append(released)
        previous = row.status
        row.status = step.to
        _event(
            session,
            row,
            "expired",
            previous,
            SYSTEM,
            now,
            reason="No answer within the service-level time.",
        )
        _decline_current_target(row)
        await waitlist.place_again(
            session, settings, row, SYSTEM, now, event_type="rerouted", cause="expired"
        )
        row.version += 1
        row.updated_at = now
    await session.flush()
    for consortium_id, places in freed.items():
        await waitlist.retry_waitlist(
            session, settings, consortium_id, now, freed=places, exclude=[r.id for r in rows]
        )
    return len(rows)


async def list_events(
    session: AsyncSession, principal: Principal, referral_id: str
) -> Sequence[Any]:
    row = await repo.get(session, referral_id)
    if row is None or not can_see(principal, row):
        raise NotFound("No referral with this id.")
    return await repo.events_of(session, referral_id)
