"""What a member offers remotely (consultation, reading, per specialty) and its readers'
capacity per day: read or consult slots pushed by the hospital's HIS like the census, held by
remote requests as beds are held by referrals."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from app.api.schemas.remote import RemoteCapacityFigure, ServiceIn
from app.config import Settings
from app.db.base import utcnow
from app.db.repositories import registry as registry_repo
from app.db.repositories import remote as remote_repo
from app.domain.capacity import apply_census, free
from app.domain.errors import Conflict, InvalidInput, NotFound
from app.domain.localtime import DEFAULT_TIME_ZONE, today
from app.domain.remote import READING_SPECIALTY, Modality, RequestKind
from app.services import waitlist
from app.services.auth import Principal
from app.services.capacity import CLOCK_SKEW, institution_for_write


@dataclass(frozen=True, slots=True)
class RemoteCapacityItem:
    kind: str  # consult | remote_read
    specialty_code: str
    day: Any
    total: int
    occupied: int
    held: int
    free: int
    as_of: datetime | None
    stale: bool


_KIND_OF_HOLD = {k.hold_kind: k.value for k in (RequestKind.CONSULT, RequestKind.REMOTE_READ)}


async def services(session: AsyncSession, institution_id: str) -> list[tuple[str, str]]:
    if await registry_repo.get_institution(session, institution_id) is None:
        raise NotFound("No institution with this id.")
    return [
        (s.kind, s.specialty_code) for s in await remote_repo.services_of(session, institution_id)
    ]


async def set_services(
    session: AsyncSession, principal: Principal, institution_id: str, given: list[ServiceIn]
) -> list[tuple[str, str]]:
    """Replace what the member offers remotely (the hospital itself, its council, admins)."""
    await institution_for_write(session, principal, institution_id)
    codes = {s.specialty_code for s in given}
    known = await registry_repo.existing_specialty_codes(session, codes)
    errors: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for i, s in enumerate(given):
        if s.specialty_code not in known:
            errors.append(
                {"loc": ["body", "services", i, "specialty_code"], "msg": "unknown specialty code"}
            )
        elif (s.kind, s.specialty_code) in seen:
            errors.append({"loc": ["body", "services", i], "msg": "listed twice"})
        seen.add((s.kind, s.specialty_code))
    if errors:
        raise InvalidInput("The remote services have invalid entries.", errors[:50])
    await remote_repo.replace_services(session, institution_id, sorted(seen))
    return sorted(seen)


def _item(
    kind: str, code: str, day: Any, figures: tuple[int, int, int], as_of: Any, stale: bool
) -> RemoteCapacityItem:
    total, occupied, held = figures
    return RemoteCapacityItem(
        _KIND_OF_HOLD.get(kind, kind),
        code,
        day,
        total,
        occupied,
        held,
        free(total, occupied, held),
        as_of,
        stale,
    )


async def read(
    session: AsyncSession, institution_id: str, *, stale_after: timedelta
) -> list[RemoteCapacityItem]:
    if await registry_repo.get_institution(session, institution_id) is None:
        raise NotFound("No institution with this id.")
    now = utcnow()
    zone = await registry_repo.institution_time_zone(session, institution_id)
    rows = await remote_repo.capacity_of(
        session, institution_id, today(now, zone or DEFAULT_TIME_ZONE)
    )
    return [
        _item(
            r.kind,
            r.specialty_code,
            r.day,
            (r.total, r.occupied, r.held),
            r.as_of,
            r.as_of is None or now - r.as_of > stale_after,
        )
        for r in rows
    ]


def _code_of(figure: RemoteCapacityFigure) -> str | None:
    if figure.specialty_code is not None:
        return figure.specialty_code
    return READING_SPECIALTY[Modality(figure.modality)] if figure.modality else None


def _check(
    figures: list[RemoteCapacityFigure], local_today: Any, settings: Settings
) -> list[tuple[str, str, Any]]:
    errors: list[dict[str, Any]] = []
    keys: list[tuple[str, str, Any]] = []
    first = local_today - timedelta(days=settings.census_slot_days_back)
    last = local_today + timedelta(days=settings.census_slot_days_ahead)
    for i, f in enumerate(figures):
        code = _code_of(f)
        if (f.specialty_code is None) == (f.modality is None):
            errors.append(
                {
                    "loc": ["body", "capacity", i, "specialty_code"],
                    "msg": "give either specialty_code or modality",
                }
            )
        elif f.modality is not None and f.kind != "remote_read":
            errors.append({"loc": ["body", "capacity", i, "modality"], "msg": "only for reads"})
        if not first <= f.day <= last:
            errors.append(
                {
                    "loc": ["body", "capacity", i, "day"],
                    "msg": f"must lie between today - {settings.census_slot_days_back} and "
                    f"today + {settings.census_slot_days_ahead} days (the consortium's local days)",
                }
            )
        key = (RequestKind(f.kind).hold_kind, code or "", f.day)
        if key in keys:
            errors.append({"loc": ["body", "capacity", i], "msg": "listed twice"})
        keys.append(key)
    if errors:
        raise InvalidInput("The remote capacity has invalid entries.", errors[:50])
    return keys


async def report(
    session: AsyncSession,
    principal: Principal,
    institution_id: str,
    *,
    as_of: datetime,
    figures: list[RemoteCapacityFigure],
    settings: Settings,
) -> list[RemoteCapacityItem]:
    """Store the readers' capacity in one statement; read or consult slots that became free
    go to the waitlisted requests that fit them first. Holds are kept as a census keeps them."""
    consortium_id = await institution_for_write(session, principal, institution_id)
    now = utcnow()
    if as_of > now + CLOCK_SKEW:
        raise InvalidInput(
            "The capacity time is in the future.",
            [{"loc": ["body", "as_of"], "msg": "must not be in the future"}],
        )
    zone = await registry_repo.institution_time_zone(session, institution_id)
    keys = _check(figures, today(now, zone or DEFAULT_TIME_ZONE), settings)
    known = await registry_repo.existing_specialty_codes(session, {k[1] for k in keys})
    unknown = [
        {"loc": ["body", "capacity", i, "specialty_code"], "msg": "unknown specialty code"}
        for i, k in enumerate(keys)
        if k[1] not in known
    ]
    if unknown:
        raise InvalidInput("The remote capacity has invalid entries.", unknown[:50])
    stored = await remote_repo.lock_capacity(session, institution_id, keys)
    newest = max((v[4] for v in stored.values() if v[4] is not None), default=None)
    if newest is not None and newest > as_of:
        raise Conflict(
            "A newer capacity report is already stored; this one is out of date.",
            current_as_of=newest.isoformat(),
        )
    rows: list[dict[str, Any]] = []
    out: list[RemoteCapacityItem] = []
    freed: list[waitlist.FreedPlace] = []
    for (hold_kind, code, day), f in zip(keys, figures, strict=True):
        before = stored.get((hold_kind, code, day))
        held = before[2] if before else 0
        result = apply_census(f.total, f.occupied, held)
        rows.append(
            {
                "institution_id": institution_id,
                "kind": hold_kind,
                "specialty_code": code,
                "day": day,
                "total": result.total,
                "occupied": result.occupied,
                "held": held,
                "overflow": result.overflow,
                "as_of": as_of,
                "updated_at": now,
            }
        )
        now_free = free(result.total, result.occupied, held)
        if now_free > (free(*before[:3]) if before else 0):
            freed.append(waitlist.FreedPlace(institution_id, hold_kind, code, day, now_free))
        out.append(
            _item(
                hold_kind,
                code,
                day,
                (result.total, result.occupied, held),
                as_of,
                now - as_of > settings.census_stale_after,
            )
        )
    await remote_repo.upsert_capacity(session, rows)
    if consortium_id is not None and freed:
        await waitlist.retry_waitlist(session, settings, consortium_id, now, freed=freed)
    return out


async def offer_from_file(
    session: AsyncSession,
    institution_id: str,
    remote: Mapping[Literal["remote_read", "consult"], dict[str, int]],
) -> None:
    """A consortium file's remote services (``remote``: kind -> specialty -> slots a day)."""
    offered = sorted((kind, code) for kind, per in remote.items() for code in per)
    await remote_repo.replace_services(session, institution_id, offered)


async def seed_from_file(
    session: AsyncSession,
    institution_id: str,
    remote: Mapping[Literal["remote_read", "consult"], dict[str, int]],
    now: datetime,
    time_zone: str,
    days: int,
) -> None:
    """Example read and consult slots from the file for the next ``days`` local days, where
    none are stored yet (demo mode); holds and figures pushed since are kept."""
    first = today(now, time_zone)
    rows = [
        {
            "institution_id": institution_id,
            "kind": RequestKind(kind).hold_kind,
            "specialty_code": code,
            "day": first + timedelta(days=offset),
            "total": per_day,
            "occupied": 0,
            "held": 0,
            "overflow": 0,
            "as_of": now,
            "updated_at": now,
        }
        for kind, per in remote.items()
        for code, per_day in per.items()
        for offset in range(days)
    ]
    await remote_repo.insert_missing_capacity(session, rows)
