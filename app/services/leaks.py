"""Leak analytics: why up-referrals left the consortium or waited, from the routing decisions
the service stored.

Every routing attempt of an up-referral whose outcome was ``out_of_consortium`` (sent to an
upstream partner) or ``waitlisted`` is a leak. Its stored decision lists the members that were
left out and why; a member that offers the care but failed on this referral's particulars (a
near miss: full, stale census, only the parent subject, it declined this referral) explains
the leak. Rows are specialty × member × reason × local month: on how many days a leaking
decision found that member so, how many referrals (patients) it concerned and where they went.
A leaking decision without any near-miss member (no member offers the care at a level above
the source) counts in one row without member, reason ``no_member_offers``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.repositories import registry as registry_repo
from app.db.repositories import reports as repo
from app.domain.localtime import local_date, local_month
from app.domain.routing import NEAR_MISSES
from app.services import reports
from app.services.auth import Principal

NO_MEMBER_OFFERS = "no_member_offers"
WAITLIST = "waitlist"
#: near-miss reasons in the order a council reads them
REASONS = (
    "no_free_capacity",
    "stale_census",
    "only_parent_specialty",
    "previously_declined",
)
assert set(REASONS) == {r.value for r in NEAR_MISSES}


@dataclass
class LeakRow:
    month: str
    specialty_code: str
    institution_id: str | None
    reason: str
    days: set[date] = field(default_factory=set)
    #: referral id -> (time, destination) of its last leaking decision in the month
    latest: dict[str, tuple[datetime, str]] = field(default_factory=dict)
    decisions: int = 0
    institution_code: str | None = None
    institution_name: str | None = None
    specialty_name: str | None = None
    specialty_name_en: str | None = None

    @property
    def referrals(self) -> int:
        return len(self.latest)

    def destinations(self) -> Counter[str]:
        return Counter(dest for _, dest in self.latest.values())


@dataclass(frozen=True, slots=True)
class Destination:
    institution_id: str | None  # None: the waitlist
    code: str | None
    name: str | None
    referrals: int


def near_misses(decision: dict[str, Any]) -> list[tuple[str, str]]:
    """(member id, reason) of the near misses among the members a stored decision lists."""
    out = []
    seen: set[str] = set()
    for x in decision.get("excluded") or []:
        if not isinstance(x, dict) or not x.get("in_consortium", True):
            continue
        reason, member = x.get("reason"), x.get("institution_id")
        if reason in REASONS and isinstance(member, str) and member not in seen:
            seen.add(member)
            out.append((member, str(reason)))
    return out


async def report(
    session: AsyncSession,
    principal: Principal,
    *,
    consortium_id: str | None,
    start: date,
    end: date,
) -> tuple[list[LeakRow], dict[str, Destination]]:
    """The rows by month, specialty, member and reason, and the destinations they name."""
    scope = await reports.scope_of(session, principal, "Leak figures", consortium_id, start, end)
    rows: dict[tuple[str, str, str | None, str], LeakRow] = {}
    for attempt in await repo.leaking_attempts(session, scope):
        at = repo.aware(attempt.created_at)
        month = local_month(at, scope.time_zone)
        dest = (
            attempt.target_institution_id
            if attempt.outcome == "out_of_consortium" and attempt.target_institution_id
            else WAITLIST
        )
        decision = attempt.decision if isinstance(attempt.decision, dict) else {}
        explained: list[tuple[str | None, str]] = list(near_misses(decision))
        if not explained:
            explained = [(None, NO_MEMBER_OFFERS)]
        for member, reason in explained:
            key = (month, str(attempt.specialty_code), member, reason)
            row = rows.get(key)
            if row is None:
                row = rows[key] = LeakRow(month, key[1], member, reason)
            row.decisions += 1
            row.days.add(local_date(at, scope.time_zone))
            previous = row.latest.get(attempt.referral_id)
            if previous is None or previous[0] <= at:
                row.latest[attempt.referral_id] = (at, dest)
    member_ids = {r.institution_id for r in rows.values() if r.institution_id}
    dest_ids = {d for r in rows.values() for d in r.destinations() if d != WAITLIST}
    found = {
        i.id: i for i in await registry_repo.get_institutions(session, [*member_ids, *dest_ids])
    }
    specialties = {
        s.code: s
        for s in await registry_repo.get_specialties(
            session, {r.specialty_code for r in rows.values()}
        )
    }
    for r in rows.values():
        inst = found.get(r.institution_id or "")
        if inst is not None:
            r.institution_code, r.institution_name = inst.code, inst.name
        spec = specialties.get(r.specialty_code)
        if spec is not None:
            r.specialty_name, r.specialty_name_en = spec.name, spec.name_en
    destinations = {
        d: Destination(d, found[d].code, found[d].name, 0) for d in dest_ids if d in found
    }
    order = {reason: i for i, reason in enumerate((*REASONS, NO_MEMBER_OFFERS))}
    ordered = sorted(
        rows.values(),
        key=lambda r: (
            r.month,
            r.specialty_code,
            -r.referrals,
            order[r.reason],
            r.institution_code or "",
        ),
    )
    return ordered, destinations


def sentence(row: LeakRow, destinations: dict[str, Destination]) -> tuple[str, str]:
    """The row in words, English and Chinese: "Cardiology: 政和县医院 full on 14 days → 23
    patients: 20 to 南平市第一医院, 3 waited"."""
    parts_en, parts_zh = [], []
    for dest, n in row.destinations().most_common():
        if dest == WAITLIST:
            parts_en.append(f"{n} waited")
            parts_zh.append(f"{n} 人候床")
        else:
            name = destinations[dest].name if dest in destinations else dest
            parts_en.append(f"{n} to {name}")
            parts_zh.append(f"{n} 人转往{name}")
    what_en = {
        "no_free_capacity": "full",
        "stale_census": "without a current census",
        "only_parent_specialty": "offering only the parent subject",
        "previously_declined": "declined",
        NO_MEMBER_OFFERS: "",
    }[row.reason]
    what_zh = {
        "no_free_capacity": "满床",
        "stale_census": "床位数据过期",
        "only_parent_specialty": "仅有上级科目",
        "previously_declined": "已拒收",
        NO_MEMBER_OFFERS: "",
    }[row.reason]
    spec_en = row.specialty_name_en or row.specialty_code
    spec_zh = row.specialty_name or row.specialty_code
    days = len(row.days)
    if row.reason == NO_MEMBER_OFFERS:
        head_en = f"{spec_en}: no member offers it"
        head_zh = f"{spec_zh}：医共体内无成员可接收"
    else:
        who = row.institution_name or row.institution_id or ""
        head_en = f"{spec_en}: {who} {what_en} on {days} day{'s' if days != 1 else ''}"
        head_zh = f"{spec_zh}：{who}{days} 天{what_zh}"
    patients = row.referrals
    return (
        f"{head_en} → {patients} patient{'s' if patients != 1 else ''}: {', '.join(parts_en)}",
        f"{head_zh} → {patients} 名患者：{'，'.join(parts_zh)}",
    )
