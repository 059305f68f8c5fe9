"""Placing a referral again: the re-route after a rejection or an expiry, and the waitlist
placement when places free. Both go through ``placement`` and record what they decided."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db.models import Referral
from app.db.repositories import episodes as episode_repo
from app.db.repositories import referrals as repo
from app.domain import routing
from app.domain.lifecycle import Direction
from app.domain.remote import RequestKind
from app.services import (
    candidates,
    down_referrals,
    pathways,
    placement,
    remote_requests,
    routing_inputs,
)
from app.services.candidates import Candidates, RoutingInput

WAITLIST_BATCH = 20
WAITLIST_MAX_BATCHES = 10  # at most 200 referrals tried for one freed place


@dataclass(frozen=True, slots=True)
class Actor:
    institution_id: str | None
    user: str | None


SYSTEM = Actor(None, None)


@dataclass(frozen=True, slots=True)
class FreedPlace:
    """Places that became free: beds of a specialty, or a day's outpatient slots."""

    institution_id: str
    kind: str  # bed | slot | read | consult (a remote request's slot)
    capacity_code: str
    day: date | None
    count: int = 1

    @property
    def key(self) -> tuple[str, str, date | None]:
        return (self.kind, self.capacity_code, self.day)

    def fits(self, hold_kind: str, specialty_code: str, wanted_day: date | None) -> bool:
        """Whether a referral needing this could take the place (03 takes 03.04)."""
        code = self.capacity_code
        if specialty_code != code and not specialty_code.startswith(code + "."):
            return False
        return hold_kind == self.kind and (self.kind == "bed" or wanted_day == self.day)


async def _up_inputs(
    session: AsyncSession,
    settings: Settings,
    row: Referral,
    now: datetime,
    named: str | None = None,
    directed: bool = False,
) -> tuple[Candidates, placement.Decide, placement.Need]:
    source = await routing_inputs.load_source(session, row.source_institution_id, row.consortium_id)
    data = RoutingInput(
        specialty_code=row.specialty_code,
        care_type=row.care_type,
        wanted_day=row.wanted_day,
        signed_institution_ids=tuple(row.signed_institution_ids or ()),
        # the patient's choice applied to the first routing only; a forwarding target names one
        patient_choice_id=named,
        centre=await pathways.centre_of(session, row.pathway_code),
        choice_by="council" if directed else "target",
    )
    excluded = frozenset(row.declined_institution_ids or ())
    decide = candidates.decider(settings, source, data, now, excluded)
    cands = await candidates.candidates(
        session, source, data, declined=excluded, census=candidates.CensusWindows.of(settings)
    )
    need = placement.Need(
        data.care_type,
        data.wanted_day,
        green_channel=data.centre is not None,
        council_directed=directed,
        signed_ids=frozenset(data.signed_institution_ids),
    )
    return cands, decide, need


async def place_again(
    session: AsyncSession,
    settings: Settings,
    row: Referral,
    actor: Actor,
    now: datetime,
    *,
    event_type: str,
    record_waitlisted: bool = True,
    cause: str | None = None,
    named: str | None = None,
    directed: bool = False,
) -> routing.RoutingDecision:
    """Route (again) with the declined hospitals excluded; pending with a hold, or waitlisted.
    ``named``: the institution a forwarding target named (it must be eligible: else 422)."""
    if row.kind != RequestKind.TRANSFER:  # a consult or remote read: its readers
        cands, decide, need = await remote_requests.placement_inputs(
            session, settings, row, now, named
        )
    elif row.direction is Direction.DOWN:
        parent = await repo.get(session, row.parent_referral_id) if row.parent_referral_id else None
        cands, decide, need = await down_referrals.down_placement_inputs(
            session,
            row,
            signed=tuple(row.signed_institution_ids or ()),
            episode_origin=parent.source_institution_id if parent else None,
            requested=named,
        )
    else:
        cands, decide, need = await _up_inputs(session, settings, row, now, named, directed)
    placed = await placement.place(session, cands, decide, need)
    target = placed.target
    if target is None and not record_waitlisted:
        return placed.decision
    previous_target = row.declined_institution_ids[-1] if row.declined_institution_ids else None
    await placement.record(
        session,
        row,
        placed,
        settings,
        now,
        attempt=await repo.count_attempts(session, row.id) + 1,
        event_type=event_type if target else "waitlisted",
        from_status=row.status,
        actor_institution_id=actor.institution_id,
        actor_user=actor.user,
        reason_code=cause,  # why it was routed again: the rejection reason, or expired
        previous_target=previous_target,
        tier=target is not None,  # a new target: its tier, as a new record
    )
    await episode_repo.sync_follow_ups(session, row)  # their target and state follow it
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
                decision = await place_again(
                    session,
                    settings,
                    row,
                    SYSTEM,
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
