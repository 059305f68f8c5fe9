"""SQL for referrals, their routing attempts, events and numbers; idempotency records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, or_, select, tuple_, union_all, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import (
    LIVE_NEED,
    IdempotencyRecord,
    Referral,
    ReferralCounter,
    ReferralEvent,
    RoutingAttempt,
)
from app.domain.enums import CareType
from app.domain.lifecycle import EXPIRING


async def next_sequence(session: AsyncSession, consortium_id: str, day: date) -> int:
    """Atomically take the next number of the day (an upsert that returns the new value)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(ReferralCounter)
        .values(consortium_id=consortium_id, day=day, last=1)
        .on_conflict_do_update(
            index_elements=[ReferralCounter.consortium_id, ReferralCounter.day],
            set_={"last": ReferralCounter.last + 1},
        )
        .returning(ReferralCounter.last)
    )
    return int((await session.execute(stmt)).scalar_one())


def add(session: AsyncSession, referral: Referral) -> None:
    session.add(referral)


async def live_referral_number(
    session: AsyncSession, consortium_id: str, resident_hmac: str, specialty_code: str
) -> str | None:
    """The number of the patient's live up-referral for this specialty, if there is one (read
    through ``uq_referral_live_need``)."""
    stmt = (
        select(Referral.number)
        .where(
            Referral.consortium_id == consortium_id,
            Referral.resident_id_hmac == resident_hmac,
            Referral.specialty_code == specialty_code,
            LIVE_NEED,
        )
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


def add_attempt(session: AsyncSession, **values: Any) -> None:
    session.add(RoutingAttempt(**values))


def add_event(session: AsyncSession, **values: Any) -> None:
    session.add(ReferralEvent(**values))


async def get(session: AsyncSession, referral_id: str) -> Referral | None:
    return await session.get(Referral, referral_id)


async def latest_attempt(session: AsyncSession, referral_id: str) -> RoutingAttempt | None:
    stmt = (
        select(RoutingAttempt)
        .where(RoutingAttempt.referral_id == referral_id)
        .order_by(RoutingAttempt.attempt.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


# --- idempotency -------------------------------------------------------------------------


async def claim_idempotency(
    session: AsyncSession,
    *,
    scope_id: str,
    key: str,
    request_hash: str,
    token: str,
    now: datetime,
    expires_at: datetime,
) -> bool:
    """Insert an in-flight record holding ``token``; False when one exists already."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(IdempotencyRecord)
        .values(
            scope_id=scope_id,
            key=key,
            request_hash=request_hash,
            state="in_flight",
            claim_token=token,
            created_at=now,
            expires_at=expires_at,
        )
        .on_conflict_do_nothing(index_elements=[IdempotencyRecord.scope_id, IdempotencyRecord.key])
    )
    result = await session.execute(stmt)
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def get_idempotency(
    session: AsyncSession, scope_id: str, key: str
) -> IdempotencyRecord | None:
    stmt = select(IdempotencyRecord).where(
        IdempotencyRecord.scope_id == scope_id, IdempotencyRecord.key == key
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def take_over_stale_claim(
    session: AsyncSession,
    scope_id: str,
    key: str,
    older_than: datetime,
    now: datetime,
    token: str,
) -> bool:
    """A claim in flight for too long becomes ours, with a new token: the stalled request's
    own token no longer matches, so it cannot finish (:func:`complete_idempotency`)."""
    result = await session.execute(
        update(IdempotencyRecord)
        .where(
            IdempotencyRecord.scope_id == scope_id,
            IdempotencyRecord.key == key,
            IdempotencyRecord.state == "in_flight",
            IdempotencyRecord.created_at < older_than,
        )
        .values(created_at=now, claim_token=token)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def complete_idempotency(
    session: AsyncSession,
    scope_id: str,
    key: str,
    token: str,
    *,
    status: int,
    headers: dict[str, str],
    referral_id: str,
) -> bool:
    """Mark the claim done, in the transaction that writes the referral; False when the claim
    is no longer ours (taken over), and then that transaction must not commit."""
    result = await session.execute(
        update(IdempotencyRecord)
        .where(
            IdempotencyRecord.scope_id == scope_id,
            IdempotencyRecord.key == key,
            IdempotencyRecord.state == "in_flight",
            IdempotencyRecord.claim_token == token,
        )
        .values(
            state="done", response_status=status, response_headers=headers, referral_id=referral_id
        )
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def release_idempotency(session: AsyncSession, scope_id: str, key: str, token: str) -> None:
    await session.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.scope_id == scope_id,
            IdempotencyRecord.key == key,
            IdempotencyRecord.state == "in_flight",
            IdempotencyRecord.claim_token == token,
        )
    )


# --- lifecycle ---------------------------------------------------------------------------


async def get_for_update(session: AsyncSession, referral_id: str) -> Referral | None:
    stmt = select(Referral).where(Referral.id == referral_id).with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def count_attempts(session: AsyncSession, referral_id: str) -> int:
    stmt = select(func.count()).where(RoutingAttempt.referral_id == referral_id)
    return int((await session.execute(stmt)).scalar_one())


async def claim_expired(session: AsyncSession, now: datetime, limit: int) -> Sequence[Referral]:
    """Referrals past their answer time (pending: the target's; needs information: the
    source's), locked; rows other sweepers hold are skipped."""
    stmt = (
        select(Referral)
        .where(Referral.status.in_(sorted(EXPIRING)), Referral.respond_by < now)
        .order_by(Referral.respond_by)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (await session.execute(stmt)).scalars().all()


def _fits_place(kind: str, capacity_code: str, day: date | None) -> list[Any]:
    """Waitlisted referrals that a free bed (or a day's slot) of ``capacity_code`` can take:
    the same care kind, and the code itself or one of its sub-specialties (03 takes 03.04)."""
    where: list[Any] = [
        Referral.status == "waitlisted",
        or_(
            Referral.specialty_code == capacity_code,
            Referral.specialty_code.startswith(capacity_code + ".", autoescape=True),
        ),
    ]
    remote = {"read": "remote_read", "consult": "consult"}.get(kind)
    if remote is not None:  # a reader's slot: remote requests of that kind and day
        where += [Referral.kind == remote, Referral.wanted_day == day]
    elif kind == "bed":
        where += [Referral.kind == "transfer", Referral.care_type == CareType.INPATIENT]
    else:
        where += [
            Referral.kind == "transfer",
            Referral.care_type != CareType.INPATIENT,
            Referral.wanted_day == day,
        ]
    return where


async def claim_waitlisted_for(
    session: AsyncSession,
    consortium_id: str,
    place: tuple[str, str, date | None],
    limit: int,
    exclude: Sequence[str] = (),
    max_priority: int | None = None,
) -> Sequence[Referral]:
    """Waitlisted referrals that fit a freed ``(kind, capacity code, day)``, most urgent then
    oldest first (none less urgent than ``max_priority``), locked."""
    stmt = (
        select(Referral)
        .where(Referral.consortium_id == consortium_id, *_fits_place(*place))
        .order_by(Referral.priority, Referral.created_at, Referral.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if exclude:
        stmt = stmt.where(Referral.id.not_in(list(exclude)))
    if max_priority is not None:
        stmt = stmt.where(Referral.priority <= max_priority)
    return (await session.execute(stmt)).scalars().all()


async def waitlisted_wants(
    session: AsyncSession, consortium_id: str
) -> set[tuple[str, str, date | None]]:
    """What the consortium's waitlisted referrals need: (the kind of place: bed, slot, read
    or consult; specialty; wanted day)."""
    stmt = (
        select(Referral.kind, Referral.care_type, Referral.specialty_code, Referral.wanted_day)
        .where(Referral.consortium_id == consortium_id, Referral.status == "waitlisted")
        .distinct()
    )
    holds = {"remote_read": "read", "consult": "consult"}
    out: set[tuple[str, str, date | None]] = set()
    for kind, care_type, code, day in (await session.execute(stmt)).all():
        place = holds.get(kind) or ("bed" if care_type == CareType.INPATIENT else "slot")
        out.add((place, code, day))
    return out


async def waitlisted_fits(
    session: AsyncSession, consortium_id: str, place: tuple[str, str, date | None], priority: int
) -> bool:
    """Whether a waitlisted referral at least as urgent as ``priority`` fits the place."""
    stmt = (
        select(Referral.id)
        .where(
            Referral.consortium_id == consortium_id,
            Referral.priority <= priority,
            *_fits_place(*place),
        )
        .limit(1)
    )
    return (await session.execute(stmt)).first() is not None


async def events_of(session: AsyncSession, referral_id: str) -> Sequence[ReferralEvent]:
    stmt = (
        select(ReferralEvent)
        .where(ReferralEvent.referral_id == referral_id)
        .order_by(ReferralEvent.at, ReferralEvent.id)
    )
    return (await session.execute(stmt)).scalars().all()


#: Events the service records for itself (the tier it decided, the target it notified): the
#: worklist shows the last event a person acts on instead (created, re-routed, accepted, ...).
BOOKKEEPING_EVENTS = ("tier_decided", "target_notified")


async def last_events(
    session: AsyncSession, referral_ids: Sequence[str]
) -> dict[str, ReferralEvent]:
    if not referral_ids:
        return {}
    stmt = (
        select(ReferralEvent)
        .where(
            ReferralEvent.referral_id.in_(list(referral_ids)),
            ReferralEvent.type.not_in(BOOKKEEPING_EVENTS),
        )
        .order_by(ReferralEvent.referral_id, ReferralEvent.at, ReferralEvent.id)
    )
    out: dict[str, ReferralEvent] = {}
    for event in (await session.execute(stmt)).scalars():
        out[event.referral_id] = event
    return out


@dataclass(frozen=True, slots=True)
class WorklistQuery:
    involving: str | None = None  # institution: source, current or earlier target
    box: str = "all"  # incoming | outgoing | all
    consortium_id: str | None = None
    direction: str | None = None
    kind: str | None = None  # transfer, consult or remote_read
    statuses: tuple[str, ...] = ()
    urgency: str | None = None
    specialty: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    counterpart: str | None = None
    after: tuple[int, datetime, str] | None = None
    limit: int = 50


WORKLIST_ORDER = (Referral.priority, Referral.created_at, Referral.id)


def _worklist_filters(q: WorklistQuery) -> list[ColumnElement[bool]]:
    """The filters every shape shares, the keyset position included (not the statuses)."""
    where: list[ColumnElement[bool]] = []
    if q.consortium_id is not None:
        where.append(Referral.consortium_id == q.consortium_id)
    if q.direction:
        where.append(Referral.direction == q.direction)
    if q.kind:
        where.append(Referral.kind == q.kind)
    if q.urgency:
        where.append(Referral.urgency == q.urgency)
    if q.specialty:
        where.append(Referral.specialty_code == q.specialty)
    if q.created_from:
        where.append(Referral.created_at >= q.created_from)
    if q.created_to:
        where.append(Referral.created_at < q.created_to)
    if q.counterpart:
        where.append(
            or_(
                Referral.source_institution_id == q.counterpart,
                Referral.target_institution_id == q.counterpart,
            )
        )
    if q.after is not None:
        # After the cursor row: ">=" and "not that row" (ids are unique), not ">". PostgreSQL
        # estimates a row comparison from its first column alone, and "priority > 3" (the
        # cursor in the routine referrals, most pages) looks empty: the plan then takes any
        # index in worklist order, even one that filters out nearly every row it reads (the
        # busiest hospital's pending box walked ix_referral_all_worklist, 2,970 rows a page).
        # "priority >= 3" is estimated as what it is, and the shape's own index is chosen.
        p, c, i = q.after
        where.append(tuple_(*WORKLIST_ORDER) >= tuple_(p, c, i))
        where.append(Referral.id != i)
    return where


def worklist_statement(q: WorklistQuery) -> Select[Any]:
    """One page of a worklist, each shape read in index order and stopped at the page size.

    Every shape is an equality on one or two leading columns followed by the worklist order
    (priority, created_at, id), so the page comes from an index range scan whatever the table
    size: incoming = the current target (``ix_referral_worklist``), outgoing = the source
    (``ix_referral_source_worklist``), the council = its consortium
    (``ix_referral_consortium_worklist``), admin and insurer = every referral
    (``ix_referral_all_worklist``); with a status, the institution's or the consortium's
    (``ix_referral_target_status_worklist``, ``ix_referral_source_status_worklist``,
    ``ix_referral_consortium_status_worklist``).

    A page that needs several such ranges is their merge: "all" for an institution is its two
    boxes (an institution is never both source and target of one referral), several statuses
    are one range each. Each range is read up to the page size (its ids and order columns,
    from the index), the page is the first rows of their merge, and only those are read whole.
    """
    where = _worklist_filters(q)
    if q.involving is None:
        boxes: list[ColumnElement[bool] | None] = [None]
    else:
        boxes = [
            column == q.involving
            for box, column in (
                ("incoming", Referral.target_institution_id),
                ("outgoing", Referral.source_institution_id),
            )
            if q.box in (box, "all")
        ]
    by_status = q.involving is not None or q.consortium_id is not None  # a status index
    statuses: list[ColumnElement[bool] | None]
    if by_status and q.statuses:
        statuses = [Referral.status == status for status in dict.fromkeys(q.statuses)]
    else:
        statuses = [Referral.status.in_(q.statuses) if q.statuses else None]
    ranges = [
        [*where, *(c for c in (box, status) if c is not None)]
        for box in boxes
        for status in statuses
    ]
    if len(ranges) == 1:
        return select(Referral).where(*ranges[0]).order_by(*WORKLIST_ORDER).limit(q.limit)
    parts = [
        select(Referral.id, *WORKLIST_ORDER[:2])
        .where(*conditions)
        .order_by(*WORKLIST_ORDER)
        .limit(q.limit)
        .subquery()
        for conditions in ranges
    ]
    merged = union_all(*(select(part) for part in parts)).subquery()
    page = (
        select(merged.c.id)
        .order_by(merged.c.priority, merged.c.created_at, merged.c.id)
        .limit(q.limit)
    )
    return select(Referral).where(Referral.id.in_(page)).order_by(*WORKLIST_ORDER).limit(q.limit)


async def worklist(session: AsyncSession, q: WorklistQuery) -> Sequence[Referral]:
    rows: Sequence[Referral] = (await session.execute(worklist_statement(q))).scalars().all()
    return rows
