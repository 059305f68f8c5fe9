"""The monthly referral report the consortium's performance appraisal uses.

Counts are aggregated in SQL; so are the percentiles of time to accept on PostgreSQL
(SQLite has no percentile function: they are computed from the per-referral values there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.base import utcnow
from app.db.repositories import registry as registry_repo
from app.db.repositories import reports as repo
from app.domain.errors import InvalidInput
from app.domain.lifecycle import RejectReason
from app.domain.localtime import today
from app.services import remote_figures, zones
from app.services.access import figures_consortium
from app.services.auth import Principal
from app.services.remote_figures import RemoteFigures

REPORT_WORK_MEM = "64MB"
COUNTS = (
    "up_sent",
    "up_received",
    "down_sent",
    "down_received",
    "accepted",
    "expired",
    "rerouted",
    "waitlisted",
    "waitlist_placed",
    "overflow",
    "out_of_consortium",
    "up_placed",
    "up_in_consortium",
    "up_in_county",
    "up_placed_signed",
    "up_to_signed",
    "up_completed_received",
    "follow_ups_due",
    "follow_ups_on_time",
    "satisfaction_count",
    "tests_recognised",
    "tests_repeated",
    "fen_not_spent_twice",
    "reserved_slots",
    "reserved_used",
    "reserved_released",
)


@dataclass
class ReportRow:
    key: str | None
    name: str | None
    month: str
    counts: dict[str, int] = field(default_factory=dict)
    rejections: dict[str, int] = field(default_factory=dict)
    accept_minutes_median: float | None = None
    accept_minutes_p90: float | None = None
    waitlist_minutes_median: float | None = None
    waitlist_minutes_p90: float | None = None
    satisfaction_mean: float | None = None
    #: consults and remote reads (``remote_figures``)
    remote: RemoteFigures = field(default_factory=RemoteFigures)

    def ratio(self, numerator: str, denominator: str) -> float | None:
        d = self.counts.get(denominator, 0)
        return round(self.counts.get(numerator, 0) / d, 4) if d else None

    @property
    def acceptance_rate(self) -> float | None:
        offered = self.counts.get("up_received", 0) + self.counts.get("down_received", 0)
        return round(self.counts.get("accepted", 0) / offered, 4) if offered else None

    @property
    def rejected(self) -> int:
        return sum(self.rejections.values())


async def scope_of(
    session: AsyncSession,
    principal: Principal,
    what: str,
    consortium_id: str | None,
    start: date,
    end: date,
    group_by: str = "institution",
) -> repo.Scope:
    """The consortium the caller reads ``what`` of, and the local days from ``start`` to
    ``end`` (exclusive, at most three years) as instants of its time zone."""
    consortium_id = await figures_consortium(session, principal, consortium_id, what)
    if end <= start:
        raise InvalidInput("The period is empty.", [{"loc": ["query", "to"], "msg": "after from"}])
    if (end - start).days > 366 * 3:
        raise InvalidInput(
            "At most three years per report.", [{"loc": ["query", "to"], "msg": "period too long"}]
        )
    days = await zones.period(session, consortium_id, start, end)
    return repo.Scope(
        consortium_id=consortium_id,
        start=days.start_at,
        end=days.end_at,
        group_by=group_by,
        dialect=session.get_bind().dialect.name,
        time_zone=days.time_zone,
        first_day=start,
        end_day=end,
    )


async def monthly(
    session: AsyncSession,
    principal: Principal,
    *,
    consortium_id: str | None,
    start: date,
    end: date,
    group_by: str,
) -> list[ReportRow]:
    scope = await scope_of(
        session, principal, "Referral figures", consortium_id, start, end, group_by
    )
    if scope.dialect == "postgresql":
        # the grouped passes hash a year of rows: give this transaction room to do it in memory
        await session.execute(text(f"SET LOCAL work_mem = '{REPORT_WORK_MEM}'"))
    figures = await repo.referral_counts(session, scope)
    figures |= await repo.event_counts(session, scope)
    figures |= await repo.follow_up_counts(session, scope, today(utcnow(), scope.time_zone))
    figures |= await repo.recognition_sums(session, scope)
    figures |= await repo.reserved_slot_sums(session, scope, utcnow())
    rows: dict[repo.Key, ReportRow] = {}

    def row(key: repo.Key) -> ReportRow:
        if key not in rows:
            rows[key] = ReportRow(
                key=key[0], name=None, month=key[1], counts=dict.fromkeys(COUNTS, 0)
            )
        return rows[key]

    for name, by_key in figures.items():
        for key, n in by_key.items():
            row(key).counts[name] = n
    for key, reasons in (await repo.rejections(session, scope)).items():
        row(key).rejections = {r.value: reasons.get(r.value, 0) for r in RejectReason}
    for key, accepted in (await repo.acceptances(session, scope)).items():
        r = row(key)
        r.counts["accepted"] = accepted.count
        r.accept_minutes_median = accepted.minutes_p50
        r.accept_minutes_p90 = accepted.minutes_p90
    for key, placed in (await repo.waitlist_placements(session, scope)).items():
        r = row(key)
        r.counts["waitlist_placed"] = placed.count
        r.waitlist_minutes_median = placed.minutes_p50
        r.waitlist_minutes_p90 = placed.minutes_p90
    for key, (count, mean) in (await repo.satisfaction(session, scope)).items():
        r = row(key)
        r.counts["satisfaction_count"] = count
        r.satisfaction_mean = mean
    for key, remote in (await remote_figures.figures(session, scope)).items():
        if scope.group_by != "institution" or key[0] is not None:
            row(key).remote = remote
    for r in rows.values():
        r.rejections = r.rejections or {x.value: 0 for x in RejectReason}
    if group_by == "institution":
        names = {
            i.id: i.name
            for i in await registry_repo.get_institutions(session, [k for k, _ in rows if k])
        }
        for r in rows.values():
            r.name = names.get(r.key or "")
    return sorted(rows.values(), key=lambda r: (r.month, r.name or r.key or ""))
