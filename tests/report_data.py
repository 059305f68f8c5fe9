"""A generated year of referrals with known figures, written straight into the tables.

Used by the report test (which recomputes every figure from the generated specs, not from
the database) and by bench/report_bench.py (100,000 referrals).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.base import new_id
from app.db.models import (
    FollowUp,
    Institution,
    Referral,
    ReferralEvent,
    RoutingAttempt,
)
from app.domain.localtime import local_date, local_month

ZONE = "Asia/Shanghai"  # the demo consortia's time zone
REASONS = (
    "no_bed",
    "no_specialist_on_duty",
    "beyond_capability",
    "incomplete_information",
    "patient_declined",
)


@dataclass
class Spec:
    id: str
    direction: str
    source: str
    target: str | None
    created_at: datetime
    specialty: str
    status: str
    out_of_consortium: bool = False
    overflow: bool = False
    accepted_at: datetime | None = None
    closed_at: datetime | None = None
    rejected_by: str | None = None
    reject_reason: str | None = None
    rejected_at: datetime | None = None
    expired_at: str | None = None
    waitlisted: bool = False  # created on the waitlist
    left_waitlist_at: datetime | None = None  # then placed from it
    planned: list[tuple[date, date | None]] = field(default_factory=list)
    attempts: list[tuple[str, datetime]] = field(default_factory=list)
    leaks: list[Leak] = field(default_factory=list)


#: the near-miss reasons a leaking decision gives a member (full most often)
LEAK_REASONS = (
    "no_free_capacity",
    "no_free_capacity",
    "no_free_capacity",
    "stale_census",
    "only_parent_specialty",
)


@dataclass
class Leak:
    """A routing decision that sent the patient out of the consortium (``target``: the
    partner) or onto the waitlist (``target`` None), with the members it left out."""

    at: datetime
    outcome: str
    target: str | None
    excluded: list[tuple[str, str, bool]]  # (institution, reason, in consortium)


async def generate(
    session: AsyncSession, consortium_id: str, n: int, year: int, seed: int = 7
) -> list[Spec]:
    rng = random.Random(seed)
    rows = (
        await session.execute(select(Institution.id, Institution.level, Institution.consortium_id))
    ).all()
    members = [r for r in rows if r.consortium_id == consortium_id]
    primary = [r.id for r in members if r.level == "primary"]
    hospitals = [r.id for r in members if r.level in ("secondary", "tertiary")]
    partner = next(r.id for r in rows if r.consortium_id is None)
    # the year of the consortium (Asia/Shanghai): its report months are local months
    start = datetime(year, 1, 1, tzinfo=ZoneInfo(ZONE)).astimezone(UTC)
    specs: list[Spec] = []
    for _ in range(n):
        created = start + timedelta(seconds=rng.randrange(365 * 86400 - 7200))
        up = rng.random() < 0.8
        source = rng.choice(primary) if up else rng.choice(hospitals)
        spec = Spec(
            id=new_id(),
            direction="up" if up else "down",
            source=source,
            target=None,
            created_at=created,
            specialty=rng.choice(("03", "04", "03.04")),
            status="waitlisted",
        )
        roll = rng.random()
        if up and roll < 0.05:
            spec.waitlisted = True
        elif up and roll < 0.08:  # waitlisted, then a place appeared
            spec.waitlisted = True
            spec.left_waitlist_at = created + timedelta(minutes=rng.randrange(5, 3000))
            spec.target = rng.choice(hospitals)
            spec.attempts.append((spec.target, spec.left_waitlist_at))
            spec.status = "pending"
            if rng.random() < 0.8:
                spec.accepted_at = spec.left_waitlist_at + timedelta(minutes=rng.randrange(1, 600))
                spec.status = "accepted"
        else:
            first = rng.choice(hospitals) if up else rng.choice(primary)
            spec.attempts.append((first, created))
            target = first
            if rng.random() < 0.15:  # rejected, re-routed
                spec.rejected_by, spec.reject_reason = first, rng.choice(REASONS)
                spec.rejected_at = created + timedelta(minutes=rng.randrange(5, 120))
                target = (
                    partner
                    if up and rng.random() < 0.3
                    else (rng.choice(hospitals) if up else rng.choice(primary))
                )
                spec.attempts.append((target, spec.rejected_at))
            elif rng.random() < 0.05:  # expired, re-routed
                spec.expired_at = first
                later = created + timedelta(hours=3)
                target = rng.choice(hospitals) if up else rng.choice(primary)
                spec.attempts.append((target, later))
            spec.target = target
            spec.out_of_consortium = target == partner
            spec.overflow = up and rng.random() < 0.02
            spec.status = "pending"
            if rng.random() < 0.8:
                offered = spec.attempts[-1][1]
                spec.accepted_at = offered + timedelta(minutes=rng.randrange(1, 600))
                spec.status = "accepted"
                if rng.random() < 0.7:
                    spec.status = "completed"
                    spec.closed_at = spec.accepted_at + timedelta(days=rng.randrange(1, 10))
        if not up and spec.target is not None:
            for k in range(2):
                due = (created + timedelta(days=14 * (k + 1))).date()
                done = (
                    due - timedelta(days=1)
                    if rng.random() < 0.6
                    else (due + timedelta(days=3) if rng.random() < 0.5 else None)
                )
                spec.planned.append((due, done))
        specs.append(spec)
    _leaks(random.Random(seed + 1000), specs, hospitals, partner)
    await _write(session, consortium_id, specs, year)
    return specs


def _leaks(rng: random.Random, specs: list[Spec], hospitals: list[str], partner: str) -> None:
    """The stored decisions of the up-referrals created on the waitlist and of those re-routed
    to the partner: which members they left out and why (a separate random stream, so the
    other figures stay as they were)."""

    def excluded(source: str, declined: str | None) -> list[tuple[str, str, bool]]:
        out = [(source, "is_source", True)]
        if rng.random() < 0.15:  # nobody offers it: no near miss
            out += [(h, "specialty_not_offered", True) for h in hospitals if h != declined]
        else:
            out += [(h, rng.choice(LEAK_REASONS), True) for h in hospitals if h != declined]
        if declined is not None:
            out.insert(1, (declined, "previously_declined", True))
        out.append((partner, "no_free_capacity", False))  # partners are not members
        return out

    for s in specs:
        if s.direction != "up":
            continue
        if s.waitlisted:
            s.leaks.append(Leak(s.created_at, "waitlisted", None, excluded(s.source, None)))
        if s.out_of_consortium and s.rejected_at is not None:
            s.leaks.append(
                Leak(s.rejected_at, "out_of_consortium", partner, excluded(s.source, s.rejected_by))
            )


async def _write(session: AsyncSession, consortium_id: str, specs: list[Spec], year: int) -> None:
    referrals: list[dict[str, Any]] = []
    attempts: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    follow_ups: list[dict[str, Any]] = []
    for i, s in enumerate(specs):
        referrals.append(
            {
                "id": s.id,
                "number": f"GEN-{consortium_id[-8:]}-{year}-{i:07d}",
                "consortium_id": consortium_id,
                "direction": s.direction,
                "status": s.status,
                "source_institution_id": s.source,
                "target_institution_id": s.target,
                "out_of_consortium": s.out_of_consortium,
                "specialty_code": s.specialty,
                "care_type": "inpatient",
                "urgency": "routine",
                "insurance_scheme": "390",
                "diagnosis_code": "I10.x00",
                "diagnosis_code_system": "clinical_2_0",
                "patient_sex": "2",
                "patient_birth_date": date(1960, 1, 1),
                # each generated referral its own patient: one patient's live up-referrals
                # for one specialty would break uq_referral_live_need (no figure reads it)
                "resident_id_hmac": f"{i:064x}",
                "sensitive": "v1.",
                "version": 1,
                "created_at": s.created_at,
                "updated_at": s.created_at,
                "priority": 3,
                "signed_institution_ids": [],
                "declined_institution_ids": [],
                "overflow": s.overflow,
                "accepted_at": s.accepted_at,
                "closed_at": s.closed_at,
                "routed_at": s.attempts[-1][1] if s.attempts else None,
            }
        )
        leaks = {(leak.target, leak.at): leak for leak in s.leaks}
        tried: list[tuple[datetime, str | None, str, dict[str, Any]]] = []
        for target, at in s.attempts:
            leak = leaks.pop((target, at), None)
            outcome = leak.outcome if leak else "routed"
            tried.append((at, target, outcome, _decision(leak) if leak else {}))
        tried += [(x.at, None, x.outcome, _decision(x)) for x in leaks.values()]
        for n, (at, tried_target, outcome, decision) in enumerate(
            sorted(tried, key=lambda t: t[0]), start=1
        ):
            attempts.append(
                {
                    "id": new_id(),
                    "referral_id": s.id,
                    "attempt": n,
                    "outcome": outcome,
                    "target_institution_id": tried_target,
                    "decision": decision,
                    "created_at": at,
                }
            )
        if s.rejected_by:
            events.append(
                _event(
                    s,
                    "rejected",
                    s.rejected_at,
                    actor=s.rejected_by,
                    target=s.rejected_by,
                    reason=s.reject_reason,
                )
            )
            events.append(_event(s, "rerouted", s.rejected_at, target=s.target))
        if s.expired_at:
            at = s.attempts[-1][1]
            events.append(_event(s, "expired", at, target=s.expired_at))
            events.append(_event(s, "rerouted", at, target=s.target))
        events.append(
            _event(
                s,
                "created",
                s.created_at,
                to_status="waitlisted" if s.waitlisted else "pending",
                target=None if s.waitlisted else s.attempts[0][0],
            )
        )
        if s.left_waitlist_at:
            events.append(
                _event(
                    s,
                    "routed",
                    s.left_waitlist_at,
                    from_status="waitlisted",
                    to_status="pending",
                    target=s.target,
                )
            )
        for due, done in s.planned:
            follow_ups.append(
                {
                    "id": new_id(),
                    "referral_id": s.id,
                    "kind": "planned",
                    "due_date": due,
                    "done_at": done,
                    "created_at": s.created_at,
                }
            )
    for table, rows in (
        (Referral, referrals),
        (RoutingAttempt, attempts),
        (ReferralEvent, events),
        (FollowUp, follow_ups),
    ):
        for chunk in range(0, len(rows), 5000):
            if rows[chunk : chunk + 5000]:
                await session.execute(insert(table), rows[chunk : chunk + 5000])


def _decision(leak: Leak) -> dict[str, Any]:
    """The stored form of a leaking decision (the fields leak analytics reads)."""
    return {
        "outcome": leak.outcome,
        "target": None if leak.target is None else {"institution_id": leak.target},
        "alternatives": [],
        "excluded": [
            {
                "institution_id": member,
                "code": "",
                "name": "",
                "reason": reason,
                "detail": "",
                "in_consortium": inside,
                "distance_km": None,
            }
            for member, reason, inside in leak.excluded
        ],
        "excluded_total": len(leak.excluded),
        "excluded_counts": dict(Counter(reason for _, reason, _ in leak.excluded)),
        "excluded_truncated": False,
        "explanation": "",
        "overflow": False,
    }


def _event(
    s: Spec,
    type_: str,
    at: datetime | None,
    *,
    actor: str | None = None,
    target: str | None = None,
    reason: str | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "referral_id": s.id,
        "type": type_,
        "from_status": from_status,
        "to_status": to_status,
        "actor_institution_id": actor,
        "actor_user": None,
        "reason": None,
        "reason_code": reason,
        "target_institution_id": target,
        "at": at,
    }


def month_of(moment: datetime | date) -> str:
    """The report month: an instant's month in the consortium's zone; a day's own month."""
    if isinstance(moment, datetime):
        return local_month(moment, ZONE)
    return f"{moment:%Y-%m}"


def expected(
    specs: list[Spec], today: date, regions: dict[str, str | None] | None = None
) -> dict[tuple[str, str], Counter[str]]:
    """Every count figure per (institution, month), computed from the specs alone (and, for
    the in-county share, the institutions' region codes)."""
    out: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)

    def add(member: str | None, moment: datetime | date | None, name: str, n: int = 1) -> None:
        if member is not None and moment is not None:
            out[(member, month_of(moment))][name] += n

    for s in specs:
        add(s.source, s.created_at, f"{s.direction}_sent")
        for target, at in s.attempts:
            add(target, at, f"{s.direction}_received")
        add(s.target, s.accepted_at, "accepted")
        if s.overflow:
            add(s.target, s.created_at, "overflow")
        if s.direction == "up" and s.out_of_consortium:
            add(s.source, s.created_at, "out_of_consortium")
        if s.direction == "up" and s.target is not None:
            add(s.source, s.created_at, "up_placed")
            if not s.out_of_consortium:
                add(s.source, s.created_at, "up_in_consortium")
            if (
                regions is not None
                and (regions.get(s.source) or "")[:6] == (regions.get(s.target) or "")[:6]
            ):
                add(s.source, s.created_at, "up_in_county")
        if s.rejected_by:
            add(s.rejected_by, s.rejected_at, f"rejected:{s.reject_reason}")
            add(s.source, s.rejected_at, "rerouted")
        if s.expired_at:
            add(s.expired_at, s.attempts[-1][1], "expired")
            add(s.source, s.attempts[-1][1], "rerouted")
        if s.waitlisted:
            add(s.source, s.created_at, "waitlisted")
        if s.left_waitlist_at:
            add(s.source, s.left_waitlist_at, "waitlist_placed")
        if s.direction == "up" and s.status == "completed":
            add(s.target, s.closed_at, "up_completed_received")
        for due, done in s.planned:
            if due < today:
                add(s.target, due, "follow_ups_due")
                if done is not None and done <= due:
                    add(s.target, due, "follow_ups_on_time")
    return out


NEAR_MISS = ("no_free_capacity", "stale_census", "only_parent_specialty", "previously_declined")


@dataclass
class LeakFigure:
    days: set[date] = field(default_factory=set)
    decisions: int = 0
    latest: dict[str, tuple[datetime, str]] = field(default_factory=dict)

    def destinations(self) -> Counter[str | None]:
        return Counter(None if d == "waitlist" else d for _, d in self.latest.values())


def expected_leaks(specs: list[Spec]) -> dict[tuple[str, str, str | None, str], LeakFigure]:
    """Leak rows per (month, specialty, member or None, reason), from the specs alone."""
    out: dict[tuple[str, str, str | None, str], LeakFigure] = defaultdict(LeakFigure)
    for s in specs:
        for leak in s.leaks:
            explained: list[tuple[str | None, str]] = [
                (member, reason)
                for member, reason, inside in leak.excluded
                if inside and reason in NEAR_MISS
            ]
            for member, reason in explained or [(None, "no_member_offers")]:
                figure = out[(month_of(leak.at), s.specialty, member, reason)]
                figure.days.add(local_date(leak.at, ZONE))
                figure.decisions += 1
                dest = leak.target or "waitlist"
                before = figure.latest.get(s.id)
                if before is None or before[0] <= leak.at:
                    figure.latest[s.id] = (leak.at, dest)
    return out
