"""The one owner of placing a referral: route, try the hold, and on a lost race route again
without that place, up to ``MAX_HOLD_ATTEMPTS`` times, then a clear 409.

Every placement goes through here: the up- and down-referral create, the escalation, the
re-route after a rejection or an expiry, and the waitlist placement when a place frees.

Two ways to hold:

- :func:`place` holds at once (re-routes and the waitlist, inside a transition whose
  referral row is already locked);
- :func:`plan` returns the hold as a step, and :func:`hold_last` runs a create's whole write
  in a SAVEPOINT with that step as its last statement before COMMIT. The hold's conditional
  UPDATE locks the capacity row every create for that hospital and specialty writes; run
  last, it is locked for one statement and the commit instead of for the whole write. A lost
  race rolls back to the SAVEPOINT and the create is written again, routed afresh.

After a placement, :func:`record` writes what it decided: the referral's target, state, hold
and answer time, the routing attempt, the event and the tier.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db.models import Referral, TierRecord
from app.db.repositories import capacity as capacity_repo
from app.db.repositories import referrals as repo
from app.db.repositories import remote as remote_repo
from app.db.session import commit_keeping_savepoint
from app.domain import lifecycle, routing
from app.domain.capacity import CONSORTIUM_POOL, SIGNED_POOL
from app.domain.enums import CareType
from app.domain.errors import Conflict
from app.domain.remote import RequestKind
from app.services import events, filings, remote_levels, service_levels, tiers
from app.services.candidates import Candidates, without_capacity

MAX_HOLD_ATTEMPTS = 8

#: a decision over (possibly narrowed) candidates: the up-routing rules or the down-routing ones
Decide = Callable[[Candidates], routing.RoutingDecision]
HoldStep = Callable[[], Awaitable[bool]]


class CapacityKeptChanging(Conflict):
    """409: every place routing chose was taken by other requests first."""

    def __init__(self) -> None:
        super().__init__("Capacity kept changing while routing; retry the request.")


@dataclass(frozen=True, slots=True)
class Need:
    """What a placement takes at its target: a bed (inpatient), the wanted day's outpatient or
    examination slot, or nothing (a down-referral to outpatient care, which has no day)."""

    care_type: CareType
    wanted_day: date | None
    #: a green-channel patient is received at a full centre all the same (no hold: overflow)
    green_channel: bool = False
    #: the council placed the patient there: received even when full (no hold), flagged
    council_directed: bool = False
    #: a remote request's read or consult slot of the day (``app.domain.remote``), not a
    #: bed or an outpatient slot
    remote: str | None = None
    #: the institutions the patient is signed with: at those an outpatient or examination
    #: slot is taken from the signed reserve first (``app.domain.capacity``)
    signed_ids: frozenset[str] = frozenset()

    def holds(self, target: routing.RankedCandidate | None) -> bool:
        """Whether placing at ``target`` takes a place."""
        if target is None:
            return False
        if (self.green_channel or self.council_directed) and not target.capacity_free:
            return False
        return self.care_type is CareType.INPATIENT or self.wanted_day is not None

    @property
    def hold_kind(self) -> str:
        if self.remote is not None:
            return self.remote
        return "bed" if self.care_type is CareType.INPATIENT else "slot"


@dataclass(frozen=True, slots=True)
class Placement:
    decision: routing.RoutingDecision
    candidates: Candidates
    held: bool

    @property
    def target(self) -> routing.RankedCandidate | None:
        return self.decision.target

    #: green channel: a target without a free place is still the target (overflow)
    green_channel: bool = False
    #: the pool a slot hold is taken from (``SIGNED_POOL`` or ``CONSORTIUM_POOL``)
    pool: str | None = None

    @property
    def overflow(self) -> bool:
        """A green-channel patient placed at a centre without a free place: for the council.
        Nothing else is overflow (a down-referral to outpatient care holds nothing either)."""
        return self.green_channel and self.target is not None and not self.held

    def hold_code(self) -> str | None:
        target = self.decision.target
        if target is None or not self.held:
            return None
        return self.candidates.capacity_code[target.institution_id]


def _slot_need(need: Need) -> bool:
    return need.remote is None and need.care_type is not CareType.INPATIENT


def pool_of(need: Need, cands: Candidates, institution_id: str) -> str | None:
    """The pool a slot hold at ``institution_id`` is tried in first: the signed reserve when
    the patient is signed there and routing read a reserve place left, else the consortium's
    places (None: not a slot hold)."""
    if not _slot_need(need):
        return None
    if institution_id in need.signed_ids and institution_id in cands.signed_pool:
        return SIGNED_POOL
    return CONSORTIUM_POOL


async def try_hold(
    session: AsyncSession,
    need: Need,
    institution_id: str,
    code: str,
    pool: str | None = None,
) -> bool:
    """One conditional UPDATE on the bed (inpatient), the day's slot (outpatient: in ``pool``)
    or the day's read or consult slot (a remote request)."""
    if need.remote is not None:
        assert need.wanted_day is not None
        return await remote_repo.try_hold(
            session, need.remote, institution_id, code, need.wanted_day
        )
    if need.care_type is CareType.INPATIENT:
        return await capacity_repo.try_hold_bed(session, institution_id, code)
    assert need.wanted_day is not None
    return await capacity_repo.try_hold_slot(
        session, institution_id, code, need.wanted_day, pool=pool or CONSORTIUM_POOL
    )


async def place(session: AsyncSession, cands: Candidates, decide: Decide, need: Need) -> Placement:
    """Route and hold now; a place lost to another request is routed around. A signed
    patient who lost the signed reserve's last place tries the consortium's places there."""
    decision = decide(cands)
    green = need.green_channel
    for _ in range(MAX_HOLD_ATTEMPTS):
        target = decision.target
        if target is None or not need.holds(target):
            return Placement(decision, cands, held=False, green_channel=green)
        iid = target.institution_id
        code = cands.capacity_code[iid]
        pool = pool_of(need, cands, iid)
        if await try_hold(session, need, iid, code, pool):
            return Placement(decision, cands, held=True, green_channel=green, pool=pool)
        if pool == SIGNED_POOL and await try_hold(session, need, iid, code, CONSORTIUM_POOL):
            return Placement(decision, cands, held=True, green_channel=green, pool=CONSORTIUM_POOL)
        cands = without_capacity(cands, iid)
        decision = decide(cands)
    raise CapacityKeptChanging()


def plan(
    session: AsyncSession, cands: Candidates, decide: Decide, need: Need
) -> tuple[Placement, HoldStep | None]:
    """Route a new referral; its hold is returned as a step for :func:`hold_last`. The pool
    is chosen here (the referral row records it before its INSERT); a lost signed place is a
    lost race like any other: the create is written again and routed afresh."""
    decision = decide(cands)
    target = decision.target
    if target is None or not need.holds(target):
        return Placement(decision, cands, held=False, green_channel=need.green_channel), None
    institution_id = target.institution_id
    code = cands.capacity_code[institution_id]
    pool = pool_of(need, cands, institution_id)

    async def hold() -> bool:
        return await try_hold(session, need, institution_id, code, pool)

    placed = Placement(decision, cands, held=True, green_channel=need.green_channel, pool=pool)
    return placed, hold


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Written(Generic[T]):
    """A create's result and its pending hold (None: nothing to hold)."""

    value: T
    hold: HoldStep | None


async def hold_last(
    session: AsyncSession,
    write: Callable[[], Awaitable[Written[T]]],
    before_hold: Callable[[T], Awaitable[None]] | None = None,
) -> T:
    """Run ``write`` in a SAVEPOINT, then ``before_hold`` (the idempotency record), then the
    hold as the last statement; a lost race undoes the attempt and writes it again."""
    for _ in range(MAX_HOLD_ATTEMPTS):
        attempt = await session.begin_nested()
        written = await write()
        if before_hold is not None:
            await before_hold(written.value)
        if written.hold is None or await written.hold():
            await commit_keeping_savepoint(session, attempt)  # the hold, then only COMMIT
            return written.value
        await attempt.rollback()  # another request took that place since it was read
    raise CapacityKeptChanging()


def _place_held(row: Referral, kind: RequestKind) -> str:
    """What a held place of the referral is: a reader's slot, a bed or an outpatient slot."""
    if kind.remote:
        return kind.hold_kind
    return "bed" if row.care_type == CareType.INPATIENT else "slot"


def apply(row: Referral, placed: Placement, settings: Settings, now: datetime) -> None:
    """Target, state, hold, overflow and answer time of a (re-)routed referral."""
    target = placed.target
    row.target_institution_id = target.institution_id if target else None
    row.to_signed = bool(target and target.institution_id in (row.signed_institution_ids or ()))
    row.out_of_consortium = bool(target and not target.in_consortium)
    row.status = lifecycle.routed(target is not None)
    held = placed.hold_code()
    kind = RequestKind(row.kind or RequestKind.TRANSFER)
    row.hold_specialty_code = held
    row.hold_kind = None if held is None else _place_held(row, kind)
    row.hold_day = row.wanted_day if row.hold_kind not in (None, "bed") else None
    row.hold_pool = placed.pool if row.hold_kind == "slot" else None
    row.overflow = row.overflow or placed.overflow
    if target is not None:
        row.routed_at = now
    green = row.pathway_code is not None
    if kind.remote:  # a reader's answer time, from the remote service levels
        row.respond_by = now + remote_levels.of(row, settings).answer if target else None
        return
    row.respond_by = (
        now + service_levels.respond_within(row.urgency, settings, green_channel=green)
        if target
        else None
    )


async def record(
    session: AsyncSession,
    row: Referral,
    placed: Placement,
    settings: Settings,
    now: datetime,
    *,
    attempt: int,
    event_type: str,
    from_status: str | None,
    actor_institution_id: str | None,
    actor_user: str | None,
    reason_code: str | None = None,
    previous_target: str | None = None,
    tier: bool = True,
    new_episode: bool = False,
    applied: bool = False,
) -> tuple[dict[str, object], TierRecord | None]:
    """Apply the placement to ``row`` (unless a create ``applied`` it before inserting the
    row) and write its routing attempt, its event and (when ``tier``) its reimbursement tier.
    Returns the decision as stored and the tier."""
    if not applied:
        apply(row, placed, settings, now)
    decision = routing.decision_to_dict(placed.decision)
    repo.add_attempt(
        session,
        referral_id=row.id,
        attempt=attempt,
        outcome=str(placed.decision.outcome),
        target_institution_id=row.target_institution_id,
        decision=decision,
        created_at=now,
    )
    events.record(
        session,
        row,
        event_type,
        from_status,
        at=now,
        actor_institution_id=actor_institution_id,
        actor_user=actor_user,
        reason=placed.decision.explanation,
        reason_code=reason_code,
        previous_target=previous_target,
    )
    transfer = row.kind in (None, RequestKind.TRANSFER)  # a remote request moves no patient
    tier = tier and transfer
    recorded = await tiers.record_for(session, row, now, new_episode=new_episode) if tier else None
    if transfer and (tier or not applied):  # a new target, or none: the filing follows it
        await filings.follow(session, settings, row, recorded, now)
    return decision, recorded


async def record_created(
    session: AsyncSession,
    row: Referral,
    placed: Placement,
    settings: Settings,
    now: datetime,
    *,
    actor_institution_id: str,
    actor_user: str | None,
    tier: bool = True,
) -> tuple[dict[str, object], TierRecord | None]:
    """A new referral's first routing attempt, its ``created`` event and (when ``tier``) its
    tier; the placement was applied to the row before its INSERT."""
    return await record(
        session,
        row,
        placed,
        settings,
        now,
        attempt=1,
        applied=True,
        event_type="created",
        from_status=None,
        actor_institution_id=actor_institution_id,
        actor_user=actor_user,
        tier=tier,
    )
