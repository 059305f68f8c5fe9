"""Census updates from hospital HIS systems, and reading capacity."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db.base import utcnow
from app.db.models import BedCapacity, SlotCapacity
from app.db.repositories import capacity as repo
from app.db.repositories import registry as registry_repo
from app.domain.capacity import apply_census, free, released, slot_free
from app.domain.enums import Role
from app.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.domain.localtime import DEFAULT_TIME_ZONE, today
from app.services import slot_reservation, waitlist
from app.services.auth import Principal

CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class BedFigure:
    specialty_code: str
    total: int
    occupied: int


@dataclass(frozen=True, slots=True)
class SlotFigure:
    """A day's slot figures as the HIS sends them: ``total`` (the places offered to consortium
    referrals) or ``sources`` (all specialist places: the policy's share is offered), the
    signed reserve and its release time if the HIS fixes them (else the policy's)."""

    specialty_code: str
    day: date
    total: int | None
    occupied: int
    sources: int | None = None
    reserved_signed: int | None = None
    release_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CapacityItem:
    kind: str
    specialty_code: str
    day: date | None
    total: int
    occupied: int
    held: int
    free: int
    overflow: int
    as_of: datetime | None
    stale: bool
    #: slots: the signed reserve (0 and None for beds and slots without one)
    reserved_signed: int = 0
    signed_used: int = 0
    released: bool = False
    released_count: int = 0
    release_at: datetime | None = None
    sources: int | None = None


def _reserve_fields(
    reserve: repo.Reserve, release_at: datetime | None, sources: int | None, now: datetime
) -> dict[str, Any]:
    gone = released(release_at, now)
    left = max(0, reserve.reserved_signed - reserve.held_signed - reserve.used_signed)
    return {
        "reserved_signed": reserve.reserved_signed,
        "signed_used": reserve.held_signed + reserve.used_signed,
        "released": gone,
        "released_count": left if gone else 0,
        "release_at": release_at,
        "sources": sources,
    }


def item_of(row: BedCapacity | SlotCapacity, now: datetime, stale_after: timedelta) -> CapacityItem:
    """A capacity row as it is read: free, overflow, whether its census is stale, and for
    slots the signed reserve (kept, used, released)."""
    extra: dict[str, Any] = {}
    if isinstance(row, SlotCapacity):
        reserve = repo.Reserve(
            row.reserved_signed, row.held_signed, row.used_signed, row.release_at
        )
        extra = _reserve_fields(reserve, row.release_at, row.sources, now)
    return CapacityItem(
        kind="slots" if isinstance(row, SlotCapacity) else "beds",
        specialty_code=row.specialty_code,
        day=row.day if isinstance(row, SlotCapacity) else None,
        total=row.total,
        occupied=row.occupied,
        held=row.held,
        free=free(row.total, row.occupied, row.held),
        overflow=row.overflow,
        as_of=row.as_of,
        stale=row.as_of is None or now - row.as_of > stale_after,
        **extra,
    )


async def institution_for_write(
    session: AsyncSession, principal: Principal, institution_id: str
) -> str | None:
    """Check the caller may report this census; returns the institution's consortium."""
    inst = await registry_repo.get_institution(session, institution_id)
    if inst is None:
        raise NotFound("No institution with this id.")
    allowed = (
        principal.role is Role.ADMIN
        or (principal.role is Role.COUNCIL and principal.consortium_id == inst.consortium_id)
        or (principal.role is Role.HOSPITAL and principal.institution_id == institution_id)
    )
    if allowed:
        return inst.consortium_id
    raise Forbidden("Only the hospital itself, its council or an admin may report its census.")


async def read(
    session: AsyncSession, institution_id: str, *, stale_after: timedelta
) -> list[CapacityItem]:
    if await registry_repo.get_institution(session, institution_id) is None:
        raise NotFound("No institution with this id.")
    now = utcnow()
    zone = await registry_repo.institution_time_zone(session, institution_id)
    rows: list[BedCapacity | SlotCapacity] = [*await repo.beds_of(session, institution_id)]
    # slot days are the consortium's days: from today there on
    rows += await repo.slots_of(session, institution_id, today(now, zone or DEFAULT_TIME_ZONE))
    return [item_of(r, now, stale_after) for r in rows]


def _check_figures(
    beds: list[BedFigure], slots: list[SlotFigure], today: date, settings: Settings
) -> None:
    """One entry per specialty (and day); slot days inside the configured window."""
    errors: list[dict[str, Any]] = []
    seen_beds: set[str] = set()
    for i, b in enumerate(beds):
        if b.specialty_code in seen_beds:
            errors.append({"loc": ["body", "beds", i, "specialty_code"], "msg": "listed twice"})
        seen_beds.add(b.specialty_code)
    first = today - timedelta(days=settings.census_slot_days_back)
    last = today + timedelta(days=settings.census_slot_days_ahead)
    seen_slots: set[tuple[str, date]] = set()
    for i, s in enumerate(slots):
        if not first <= s.day <= last:
            errors.append(
                {
                    "loc": ["body", "slots", i, "day"],
                    "msg": f"must lie between today - {settings.census_slot_days_back} and "
                    f"today + {settings.census_slot_days_ahead} days (the consortium's local days)",
                }
            )
        elif (s.specialty_code, s.day) in seen_slots:
            errors.append({"loc": ["body", "slots", i, "day"], "msg": "listed twice"})
        seen_slots.add((s.specialty_code, s.day))
    if errors:
        raise InvalidInput("The census has invalid entries.", errors[:50])


async def _check_specialties(
    session: AsyncSession, beds: list[BedFigure], slots: list[SlotFigure]
) -> None:
    codes = {b.specialty_code for b in beds} | {s.specialty_code for s in slots}
    unknown = codes - await registry_repo.existing_specialty_codes(session, codes)
    if unknown:
        listed: list[tuple[str, list[BedFigure | SlotFigure]]] = [
            ("beds", list(beds)),
            ("slots", list(slots)),
        ]
        errors = [
            {"loc": ["body", kind, i, "specialty_code"], "msg": "unknown specialty code"}
            for kind, figs in listed
            for i, f in enumerate(figs)
            if f.specialty_code in unknown
        ]
        raise InvalidInput("Unknown specialty code.", errors[:50])


@dataclass(frozen=True, slots=True)
class _Write:
    kind: str
    figure: BedFigure | SlotFigure
    stored: repo.StoredFigures | None
    reserve: repo.Reserve | None = None  # a stored slot row's signed reserve


@dataclass(frozen=True, slots=True)
class _Slot:
    """A slot figure with the policy applied: the places offered, the signed reserve and its
    release time."""

    total: int
    reserved_signed: int
    release_at: datetime | None


def _resolve_slots(
    slots: list[SlotFigure],
    policy: slot_reservation.Policy,
    consortium_code: str | None,
    tz: str,
) -> list[_Slot]:
    """``total`` from ``sources`` and the reserve from the policy in force on each day;
    422 naming the fields that do not fit (values never echoed)."""
    errors: list[dict[str, Any]] = []
    out: list[_Slot] = []
    for i, s in enumerate(slots):
        loc = ["body", "slots", i]
        figures = policy.figures(s.day, consortium_code)
        reserved_by_policy = s.sources is not None and s.reserved_signed is None
        if figures is None and (s.total is None or reserved_by_policy):
            errors.append({"loc": [*loc, "sources"], "msg": "no slot reservation policy that day"})
            out.append(_Slot(0, 0, None))
            continue
        if s.total is not None:
            total = s.total
        elif s.sources is not None and figures is not None:
            total = figures.total_of(s.sources)
        else:
            errors.append({"loc": [*loc, "total"], "msg": "required unless sources is sent"})
            out.append(_Slot(0, 0, None))
            continue
        if s.reserved_signed is not None:
            reserved = s.reserved_signed
        elif s.sources is not None and figures is not None:
            reserved = figures.reserved_of(total)
        else:
            reserved = 0  # no reserve: every place is a consortium place, as before reserves
        if s.occupied > total:
            errors.append({"loc": [*loc, "occupied"], "msg": "must not exceed total"})
        if reserved > total:
            errors.append({"loc": [*loc, "reserved_signed"], "msg": "must not exceed total"})
        release_at = s.release_at
        if release_at is None and reserved and figures is not None:
            release_at = figures.release_at(s.day, tz)
        out.append(_Slot(total, reserved, release_at if reserved else None))
    if errors:
        raise InvalidInput("The census has invalid entries.", errors[:50])
    return out


def _apply(
    w: _Write, institution_id: str, as_of: datetime, now: datetime, slot: _Slot | None = None
) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any], CapacityItem]:
    """The row to write, the figures before and after (history), and the item returned."""
    fig = w.figure
    held = w.stored[2] if w.stored else 0
    reported_total = slot.total if slot is not None else fig.total
    assert reported_total is not None
    result = apply_census(reported_total, fig.occupied, held)
    day = fig.day if isinstance(fig, SlotFigure) else None
    row: dict[str, Any] = {
        "institution_id": institution_id,
        "specialty_code": fig.specialty_code,
        "total": result.total,
        "occupied": result.occupied,
        "held": held,
        "overflow": result.overflow,
        "as_of": as_of,
        "updated_at": now,
    }
    extra: dict[str, Any] = {}
    before = None
    if w.stored is not None:
        total, occupied, _, overflow, _ = w.stored
        before = {"total": total, "occupied": occupied, "held": held, "overflow": overflow}
    after: dict[str, Any] = {
        "total": result.total,
        "occupied": result.occupied,
        "held": held,
        "overflow": result.overflow,
        "reported_total": reported_total,
        "reported_occupied": fig.occupied,
    }
    if isinstance(fig, SlotFigure) and slot is not None:
        stored = w.reserve or repo.Reserve()
        reserve = repo.Reserve(
            slot.reserved_signed, stored.held_signed, stored.used_signed, slot.release_at
        )
        row.update(
            day=fig.day,
            reserved_signed=slot.reserved_signed,
            release_at=slot.release_at,
            sources=fig.sources,
        )
        extra = _reserve_fields(reserve, slot.release_at, fig.sources, now)
        if before is not None and w.reserve is not None:
            before["reserved_signed"] = w.reserve.reserved_signed
        if slot.reserved_signed or fig.sources is not None:
            after.update(
                reserved_signed=slot.reserved_signed,
                release_at=slot.release_at.isoformat() if slot.release_at else None,
                sources=fig.sources,
            )
    item = CapacityItem(
        kind=w.kind,
        specialty_code=fig.specialty_code,
        day=day,
        total=result.total,
        occupied=result.occupied,
        held=held,
        free=free(result.total, result.occupied, held),
        overflow=result.overflow,
        as_of=as_of,
        stale=False,
        **extra,
    )
    return row, before, after, item


def _open_places(item: CapacityItem) -> int:
    """Free places outside the unused signed reserve (all free places of a bed row)."""
    unused = 0 if item.released else max(0, item.reserved_signed - item.signed_used)
    return slot_free(item.total, item.occupied, item.held, unused, signed=False)


def _open_places_stored(w: _Write, now: datetime) -> int:
    if w.stored is None:
        return 0
    total, occupied, held = w.stored[:3]
    unused = w.reserve.unused(now) if w.reserve is not None else 0
    return slot_free(total, occupied, held, unused, signed=False)


async def report_census(
    session: AsyncSession,
    principal: Principal,
    institution_id: str,
    *,
    as_of: datetime,
    beds: list[BedFigure],
    slots: list[SlotFigure],
    settings: Settings,
) -> list[CapacityItem]:
    """Store the census in one statement per table; places that became free go to the
    waitlisted referrals that fit them first."""
    stale_after = settings.census_stale_after
    consortium_id = await institution_for_write(session, principal, institution_id)
    now = utcnow()
    if as_of > now + CLOCK_SKEW:
        raise InvalidInput(
            "The census time is in the future.",
            [{"loc": ["body", "as_of"], "msg": "must not be in the future"}],
        )
    zone = await registry_repo.institution_time_zone(session, institution_id)
    tz = zone or DEFAULT_TIME_ZONE
    _check_figures(beds, slots, today(now, tz), settings)
    await _check_specialties(session, beds, slots)
    consortium = (
        await registry_repo.get_consortium(session, consortium_id) if consortium_id else None
    )
    resolved = _resolve_slots(
        slots, slot_reservation.policy_of(settings), consortium.code if consortium else None, tz
    )
    stored_beds = await repo.lock_beds(session, institution_id, [b.specialty_code for b in beds])
    stored_slots = await repo.lock_slots(
        session, institution_id, [(s.specialty_code, s.day) for s in slots]
    )
    writes = [_Write("beds", b, stored_beds.get(b.specialty_code)) for b in beds]
    for s in slots:
        stored = stored_slots.get((s.specialty_code, s.day))
        writes.append(
            _Write("slots", s, stored[0] if stored else None, stored[1] if stored else None)
        )
    slot_of = {(s.specialty_code, s.day): r for s, r in zip(slots, resolved, strict=True)}
    newest = max((w.stored[4] for w in writes if w.stored and w.stored[4]), default=None)
    if newest is not None and newest > as_of:
        raise Conflict(
            "A newer census is already stored; this one is out of date.",
            current_as_of=newest.isoformat(),
        )
    out: list[CapacityItem] = []
    rows: dict[str, list[dict[str, Any]]] = {"beds": [], "slots": []}
    changes: list[dict[str, Any]] = []
    freed: list[waitlist.FreedPlace] = []
    for w in writes:
        slot = (
            slot_of[(w.figure.specialty_code, w.figure.day)]
            if isinstance(w.figure, SlotFigure)
            else None
        )
        row, before, after, item = _apply(w, institution_id, as_of, now, slot)
        rows[w.kind].append(row)
        changes.append(
            {
                "institution_id": institution_id,
                "kind": w.kind,
                "specialty_code": item.specialty_code,
                "day": item.day,
                "before": before,
                "after": after,
                "as_of": as_of,
                "changed_at": now,
                "actor_key_id": principal.key_id,
                "actor_institution_id": principal.institution_id,
            }
        )
        was_free = free(*w.stored[:3]) if w.stored else 0
        # slots: also the places every referral may take (outside the unused signed reserve),
        # which grow when a census releases the reserve
        open_now = _open_places(item)
        was_open = _open_places_stored(w, now)
        if item.free > was_free or open_now > was_open:
            freed.append(
                waitlist.FreedPlace(
                    institution_id,
                    "bed" if w.kind == "beds" else "slot",
                    item.specialty_code,
                    item.day,
                    item.free,
                )
            )
        out.append(dataclasses.replace(item, stale=now - as_of > stale_after))
    await repo.upsert_census(session, BedCapacity, rows["beds"])
    await repo.upsert_census(session, SlotCapacity, rows["slots"])
    await repo.record_changes(session, changes)
    if consortium_id is not None and freed:
        await waitlist.retry_waitlist(session, settings, consortium_id, now, freed=freed)
    return out
