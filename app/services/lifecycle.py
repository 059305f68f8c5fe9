"""Referral transitions, re-routing, waitlist retries and the expiry sweeper.

Every change happens in one transaction with its hold effect and its events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db.base import utcnow
from app.db.models import Referral
from app.db.repositories import capacity as capacity_repo
from app.db.repositories import referrals as repo
from app.domain import lifecycle, routing
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
from app.services import down_referrals, events, pathways, referrals, tiers
from app.services.access import can_see
from app.services.auth import Principal
from app.services.crypto import PatientDataProtector

WAITLIST_BATCH = 20
WAITLIST_MAX_BATCHES = 10  # at most 200 referrals tried for one freed place


class TransitionConflict(Conflict):
    kind = "transition-not-allowed"


@dataclass(frozen=True, slots=True)
class Actor:
    institution_id: str | None
    user: str | None


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
    return frozenset(parties)


def allowed_actions(principal: Principal, row: Referral) -> list[str]:
    return lifecycle.actions(
        Status(row.status), row.care_type, parties_of(principal, row), direction=row.direction
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


@dataclass(frozen=True, slots=True)
class FreedPlace:
    """Places that became free: beds of a specialty, or a day's outpatient slots."""

    institution_id: str
    kind: str  # bed | slot
    capacity_code: str
    day: date | None
    count: int = 1

    @property
    def key(self) -> tuple[str, str, date | None]:
        return (self.kind, self.capacity_code, self.day)

    def fits(self, inpatient: bool, specialty_code: str, wanted_day: date | None) -> bool:
        """Whether a referral needing this could take the place (03 takes 03.04)."""
        code = self.capacity_code
        if specialty_code != code and not specialty_code.startswith(code + "."):
            return False
        return inpatient if self.kind == "bed" else not inpatient and wanted_day == self.day


async def _apply_hold(
    session: AsyncSession, row: Referral, effect: HoldEffect
) -> FreedPlace | None:
    """Returns the place given back, if any (so waitlisted referrals may use it)."""
    if effect is HoldEffect.KEEP or not row.hold_kind or not row.target_institution_id:
        return None
    assert row.hold_specialty_code is not None
    args = (row.hold_kind, row.target_institution_id, row.hold_specialty_code, row.hold_day)
    if effect is HoldEffect.RELEASE:
        await capacity_repo.release_hold(session, *args)
    else:
        await capacity_repo.occupy_hold(session, *args)
    row.hold_kind = row.hold_specialty_code = None
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


async def place(
    session: AsyncSession,
    settings: Settings,
    row: Referral,
    actor: Actor,
    now: datetime,
    *,
    event_type: str,
    record_waitlisted: bool = True,
    cause: str | None = None,
) -> routing.RoutingDecision:
    """Route (again) with the declined hospitals excluded; pending with a hold, or waitlisted."""
    if row.direction == "down":
        parent = await repo.get(session, row.parent_referral_id) if row.parent_referral_id else None
        placed = await down_referrals.place_down(
            session,
            row,
            signed=tuple(row.signed_institution_ids or ()),
            episode_origin=parent.source_institution_id if parent else None,
            requested=None,
        )
    else:
        source = await referrals.load_source(session, row.source_institution_id)
        data = referrals.RoutingInput(
            specialty_code=row.specialty_code,
            care_type=row.care_type,
            wanted_day=row.wanted_day,
            signed_institution_ids=tuple(row.signed_institution_ids or ()),
            patient_choice_id=None,  # the patient's choice applied to the first routing only
            centre=await pathways.centre_of(session, row.pathway_code),
        )
        placed = await referrals.route_and_hold(
            session, settings, source, data, now, frozenset(row.declined_institution_ids or ())
        )
    target = placed.target
    if target is None and not record_waitlisted:
        return placed.decision
    previous = row.status
    previous_target = row.declined_institution_ids[-1] if row.declined_institution_ids else None
    referrals.apply_placement(row, placed, settings, now)
    decision = routing.decision_to_dict(placed.decision)
    repo.add_attempt(
        session,
        referral_id=row.id,
        attempt=await repo.count_attempts(session, row.id) + 1,
        outcome=str(placed.decision.outcome),
        target_institution_id=row.target_institution_id,
        decision=decision,
        created_at=now,
    )
    kind = event_type if target else "waitlisted"
    _event(
        session,
        row,
        kind,
        previous,
        actor,
        now,
        reason=placed.decision.explanation,
        reason_code=cause,  # why it was routed again: the rejection reason, or expired
        previous_target=previous_target,
    )
    if target is not None:  # a new target: its tier, as a new record
        await tiers.record_for(session, row, now)
    return placed.decision


async def retry_waitlist(
    session: AsyncSession,
    settings: Settings,
    consortium_id: str,
    now: datetime,
    *,
    freed: Sequence[FreedPlace],
    exclude: Sequence[str] = (),
    max_priority: int | None = None,
) -> int:
    """Places became free: the waitlisted referrals that fit them (same care kind, specialty
    and day), most urgent then oldest first, are routed again until the places are taken or
    no waitlisted referral fits. Referrals of other specialties never hold up the queue."""
    placed = 0
    system = Actor(None, None)
    tried = set(exclude)
    wants = await repo.waitlisted_wants(session, consortium_id)
    for place_ in [p for p in freed if any(p.fits(*w) for w in wants)]:
        remaining = place_.count
        for _ in range(WAITLIST_MAX_BATCHES):
            if remaining <= 0:
                break
            batch = await repo.claim_waitlisted_for(
                session, consortium_id, place_.key, WAITLIST_BATCH, sorted(tried), max_priority
            )
            if not batch:
                break
            for row in batch:
                tried.add(row.id)
                decision = await place(
                    session,
                    settings,
                    row,
                    system,
                    now,
                    event_type="routed",
                    record_waitlisted=False,
                )
                if decision.target is None:  # still no place: nothing is recorded again
                    continue
                row.version += 1
                row.updated_at = now
                placed += 1
                if row.target_institution_id == place_.institution_id:
                    remaining -= 1
                    if remaining <= 0:
                        break
    return placed


async def waitlist_first(
    session: AsyncSession,
    settings: Settings,
    consortium_id: str,
    place_: FreedPlace,
    priority: int,
    now: datetime,
) -> bool:
    """Before a new referral takes ``place_``: waitlisted referrals at least as urgent that
    fit it are placed first. True when any was, so the new one must route again."""
    if not await repo.waitlisted_fits(session, consortium_id, place_.key, priority):
        return False
    placed = await retry_waitlist(
        session, settings, consortium_id, now, freed=[place_], max_priority=priority
    )
    return placed > 0


async def transition(
    session: AsyncSession,
    settings: Settings,
    protector: PatientDataProtector,
    principal: Principal,
    referral_id: str,
    action: Action,
    *,
    if_match: str | None,
    actor_user: str | None,
    details: dict[str, Any],
) -> referrals.ReferralView:
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
        step = lifecycle.find(status, action, row.care_type, row.direction)
    except lifecycle.TransitionNotAllowed as exc:
        raise TransitionConflict(
            f"'{action}' is not allowed while the referral is {status}.",
            current_status=str(status),
            allowed_actions=exc.allowed,
        ) from exc
    if step.party not in parties_of(principal, row):
        who = "the current target" if step.party is Party.TARGET else "the source or its council"
        raise Forbidden(f"Only {who} may {action} this referral.")
    if action is Action.REJECT:
        code = details.get("reason_code")
        if code == "other" and not details.get("reason_text"):
            raise InvalidInput(
                "A rejection with reason 'other' needs a reason_text.",
                [{"loc": ["body", "reason_text"], "msg": "required when reason_code is other"}],
            )
    now = utcnow()
    actor = Actor(principal.institution_id, actor_user)
    released = await _apply_hold(session, row, step.hold)
    previous = row.status
    row.status = step.to
    if action is Action.ACCEPT:
        row.accepted_at = now
        row.acceptance = {k: v for k, v in details.items() if v is not None} or None
        row.respond_by = None
    if step.to in lifecycle.FINAL:
        row.closed_at = now
        row.respond_by = None
    _event(
        session,
        row,
        str(step.to),
        previous,
        actor,
        now,
        reason=details.get("reason_text") or details.get("note"),
        reason_code=details.get("reason_code"),
    )
    if step.reroute:
        _decline_current_target(row)
        await place(
            session,
            settings,
            row,
            actor,
            now,
            event_type="rerouted",
            cause=details.get("reason_code") or str(action),
        )
    row.version += 1
    row.updated_at = now
    await session.flush()
    if released is not None:
        await retry_waitlist(
            session, settings, row.consortium_id, now, freed=[released], exclude=[row.id]
        )
    return await referrals.get_referral(session, protector, principal, row.id, just_declined=True)


async def expire_due(session: AsyncSession, settings: Settings, limit: int = 50) -> int:
    """Expire pending referrals past their answer time and re-route them (exactly once each)."""
    now = utcnow()
    rows = await repo.claim_expired(session, now, limit)
    system = Actor(None, None)
    freed: dict[str, list[FreedPlace]] = {}
    for row in rows:
        step = lifecycle.find(Status(row.status), Action.EXPIRE, row.care_type, row.direction)
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
            system,
            now,
            reason="No answer within the service-level time.",
        )
        _decline_current_target(row)
        await place(session, settings, row, system, now, event_type="rerouted", cause="expired")
        row.version += 1
        row.updated_at = now
    await session.flush()
    for consortium_id, places in freed.items():
        await retry_waitlist(
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
